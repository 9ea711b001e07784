"""The simulator (and so every client, through the one MQTT wrapper) over TLS to a real Mosquitto."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from carebed.settings import Settings
from carebed_app.broker import Mosquitto, TlsFiles, free_port
from tests.support import Observer, make_certificates

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    """A test CA, a certificate for 127.0.0.1 signed by it, and a broker that speaks only TLS."""
    certs = make_certificates(tmp_path / "certs")
    broker = Mosquitto(
        tmp_path / "mosquitto", free_port(), tls=TlsFiles(certs / "ca.crt", certs / "server.crt", certs / "server.key")
    )
    broker.start()
    yield broker, certs / "ca.crt"
    broker.kill()


def simulate(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebed", "simulate", "--homes", "1", "--speed", "600", "--duration", "2",
         "--broker", f"127.0.0.1:{port}", *extra],
        env={k: v for k, v in os.environ.items() if not k.startswith("CAREBED_MQTT")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_simulator_publishes_over_tls_and_refuses_to_talk_plain(tls_broker: tuple[Mosquitto, Path]) -> None:
    broker, ca = tls_broker
    settings = Settings(mqtt_port=broker.port, mqtt_tls=True, mqtt_ca_file=ca)
    devices = Observer(settings, "carebed/v1/devices/#")
    devices.client.start()
    try:
        result = simulate(broker.port, "--tls", "--ca-file", str(ca))
        assert result.returncode == 0, result.stderr
        assert devices.next().topic.startswith("carebed/v1/devices/home-00001-")
    finally:
        devices.client.stop()
    plain = simulate(broker.port)
    assert plain.returncode != 0 and "ConnectionError" in plain.stderr
