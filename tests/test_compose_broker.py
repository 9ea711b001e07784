"""The compose stack's Mosquitto configuration, run by a real Mosquitto: devices over TLS, services plain.

No Docker engine runs here, so the test runs deploy/mosquitto/compose.conf itself with its container
paths and ports mapped to a private folder and free loopback ports.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carebed.mqtt import MqttClient, Outbound
from carebed.provisioning import hash_password, write_auth_files
from carebed.settings import Settings
from carebed_app.broker import free_port, wait_for_port
from tests.conftest import ROOT
from tests.support import Observer, make_certificates

pytestmark = pytest.mark.integration

DEVICE, DEVICE_PASSWORD = "watch-1", "device-password"
OBSERVER_PASSWORD = "observer-password"


@dataclass
class ComposeBroker:
    plain: int
    tls: int
    ca: Path


def mapped_config(tmp_path: Path, certs: Path, plain: int, tls: int) -> str:
    text = (ROOT / "deploy" / "mosquitto" / "compose.conf").read_text()
    mapping = {
        "/carebed/mosquitto/": f"{tmp_path / 'auth'}/",
        "/mosquitto/certs/": f"{certs}/",
        "/mosquitto/data/": f"{tmp_path / 'data'}/",
        "listener 1883 0.0.0.0": f"listener {plain} 127.0.0.1",
        "listener 8883 0.0.0.0": f"listener {tls} 127.0.0.1",
    }
    for container, here in mapping.items():
        assert container in text, f"compose.conf no longer has {container!r}: update this test"
        text = text.replace(container, here)
    return f"user {getpass.getuser()}\n{text}"


@pytest.fixture
def compose_broker(tmp_path: Path) -> Iterator[ComposeBroker]:
    certs = make_certificates(tmp_path / "certs")
    (tmp_path / "data").mkdir()
    write_auth_files(
        tmp_path / "auth",
        {"carebed-observer": hash_password(OBSERVER_PASSWORD)},
        {DEVICE: hash_password(DEVICE_PASSWORD)},
    )
    plain, tls = free_port(), free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(mapped_config(tmp_path, certs, plain, tls))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL)
    try:
        wait_for_port(plain, 10, process)
        wait_for_port(tls, 10, process)
        yield ComposeBroker(plain, tls, certs / "ca.crt")
    finally:
        process.kill()
        process.wait(timeout=10)


def client(port: int, username: str | None, password: str | None, ca: Path | None = None) -> MqttClient:
    settings = Settings(
        mqtt_port=port, mqtt_username=username, mqtt_password=password, mqtt_tls=ca is not None, mqtt_ca_file=ca
    )
    return MqttClient(settings, client_id=f"test-{username}-{port}", persistent=False)


def test_a_device_publishes_over_tls_and_only_as_itself(compose_broker: ComposeBroker) -> None:
    observer = Observer(
        Settings(mqtt_port=compose_broker.plain, mqtt_username="carebed-observer", mqtt_password=OBSERVER_PASSWORD),
        "carebed/v1/devices/#",
    )
    observer.client.start()
    device = client(compose_broker.tls, DEVICE, DEVICE_PASSWORD, compose_broker.ca)
    device.start()
    try:
        own = f"carebed/v1/devices/{DEVICE}/event"
        assert device.publish_confirmed(Outbound(own, b'{"ts":"2026-11-24T08:00:00+08:00","event":"sos"}'))
        assert observer.next().topic == own
        # The ACL applies on the TLS listener too: no device may speak for another.
        assert not device.publish_confirmed(Outbound("carebed/v1/devices/watch-2/event", b"{}"))
    finally:
        device.stop()
        observer.client.stop()


@pytest.mark.parametrize(
    ("over", "username", "password"),
    [
        ("tls", DEVICE, "wrong password"),
        ("tls", None, None),
        ("plain text to the TLS port", DEVICE, DEVICE_PASSWORD),
        ("plain", None, None),
    ],
)
def test_the_broker_refuses(
    compose_broker: ComposeBroker, over: str, username: str | None, password: str | None
) -> None:
    port = compose_broker.plain if over == "plain" else compose_broker.tls
    refused = client(port, username, password, compose_broker.ca if over == "tls" else None)
    with pytest.raises(ConnectionError):
        refused.start(timeout=5)
    refused.stop()
