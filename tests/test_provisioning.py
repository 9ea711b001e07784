"""Device credentials and the broker ACL, against a real Mosquitto that checks logins."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from carebed import topics
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.mqtt import MqttClient, Outbound
from carebed.provisioning import new_service_passwords, sync_broker_auth
from carebed.registry import RegistryFile, import_registry
from carebed.schemas import utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from carebed_app.broker import Mosquitto, free_port
from gateway.service import Gateway
from tests.support import ALL_READINGS, Observer, wait_for

pytestmark = pytest.mark.integration


@dataclass
class SecureStack:
    settings: Settings
    broker: Mosquitto
    accounts: dict[str, str]
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "carebed", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def new_password(self, *args: str) -> str:
        match = re.search(r"MQTT password \(shown once; store it on the device\): (\S+)", self.cli(*args))
        assert match, "no password printed"
        return match.group(1)

    def client(self, username: str, password: str, client_id: str | None = None) -> MqttClient:
        settings = self.settings.model_copy(update={"mqtt_username": username, "mqtt_password": SecretStr(password)})
        return MqttClient(settings, client_id=client_id or username, persistent=False)


@pytest.fixture
def secure(tmp_path: Path, registry: RegistryFile) -> Iterator[SecureStack]:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, mqtt_port=free_port(), database_url=f"sqlite:///{data / 'carebed.db'}")
    broker = Mosquitto(data / "mosquitto", settings.mqtt_port, authenticated=True)
    accounts = new_service_passwords(broker.data_dir)
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine).begin() as session:
        import_registry(session, registry)
        sync_broker_auth(session, broker.data_dir)
    engine.dispose()
    broker.start()
    env = {**os.environ, "CAREBED_DATA_DIR": str(data), "CAREBED_DATABASE_URL": settings.sqlalchemy_url}
    yield SecureStack(settings, broker, accounts, env)
    broker.kill()


def wearable(registry: RegistryFile, home: int) -> str:
    return registry.homes[home].devices[0].id


def sos(device_id: str) -> Outbound:
    payload = json.dumps({"ts": utc_now().isoformat(), "event": "sos"}).encode()
    return Outbound(topics.device(device_id, DeviceChannel.EVENT), payload)


def test_a_device_publishes_under_its_own_id_and_nobody_elses(secure: SecureStack, registry: RegistryFile) -> None:
    mine, theirs = wearable(registry, 0), wearable(registry, 1)
    device = secure.client(mine, secure.new_password("devices", "rotate", mine))
    device.start()
    try:
        assert device.publish_confirmed(sos(mine)) is True
        assert device.publish_confirmed(sos(theirs)) is False
        assert device.publish_confirmed(Outbound(topics.findings(registry.homes[1].id), b"{}")) is False
    finally:
        device.stop()


def test_wrong_anonymous_and_removed_logins_are_refused(secure: SecureStack, registry: RegistryFile) -> None:
    device_id = wearable(registry, 0)
    first = secure.new_password("devices", "rotate", device_id)
    second = secure.new_password("devices", "rotate", device_id)
    with pytest.raises(ConnectionError, match=r"Not authorized|Bad user name or password"):
        secure.client(device_id, first).start(timeout=5)
    with pytest.raises(ConnectionError):
        MqttClient(secure.settings, client_id="anonymous", persistent=False).start(timeout=5)
    current = secure.client(device_id, second)
    current.start(timeout=5)
    current.stop()
    secure.cli("devices", "remove", device_id)
    with pytest.raises(ConnectionError):
        secure.client(device_id, second).start(timeout=5)


def test_a_new_device_can_log_in_at_once_and_its_data_flows(secure: SecureStack, registry: RegistryFile) -> None:
    home = registry.homes[2].id
    password = secure.new_password("devices", "add", "vendor-x-watch-1", "--home", home, "--kind", "wearable")
    gateway_settings = secure.settings.model_copy(
        update={"mqtt_username": "carebed-gateway", "mqtt_password": SecretStr(secure.accounts["carebed-gateway"])}
    )
    gateway = Gateway(gateway_settings)
    gateway.refresh_registry()
    gateway.start()
    observer_settings = secure.settings.model_copy(
        update={"mqtt_username": "carebed-observer", "mqtt_password": SecretStr(secure.accounts["carebed-observer"])}
    )
    readings = Observer(observer_settings, ALL_READINGS)
    readings.client.start()
    device = secure.client("vendor-x-watch-1", password)
    device.start()
    try:
        assert device.publish_confirmed(sos("vendor-x-watch-1"))
        reading = readings.next_reading()
        assert (reading.home_id, reading.device_id, reading.event) == (home, "vendor-x-watch-1", "sos")
    finally:
        device.stop()
        readings.client.stop()
        gateway.stop()


def test_adding_to_a_missing_home_is_refused(secure: SecureStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "carebed", "devices", "add", "d9", "--home", "nowhere", "--kind", "wearable"],
        env=secure.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "no home 'nowhere'" in result.stderr


def test_a_zigbee_hub_speaks_only_below_its_own_branch(secure: SecureStack, registry: RegistryFile) -> None:
    home = registry.homes[0].id
    password = secure.new_password("devices", "add", "hub-7", "--home", home, "--kind", "hub")
    other = secure.new_password("devices", "add", "hub-8", "--home", home, "--kind", "hub")
    hub = secure.client("hub-7", password)
    heard: queue.Queue[str] = queue.Queue()
    hub.subscribe("carebed/v1/z2m/#", lambda message: heard.put(message.topic) or [])  # as zigbee2mqtt does
    neighbour = secure.client("hub-8", other)
    hub.start()
    neighbour.start()
    try:
        state = Outbound("carebed/v1/z2m/hub-7/kitchen-leak", b'{"water_leak": true}')
        assert hub.publish_confirmed(state) is True
        assert neighbour.publish_confirmed(Outbound("carebed/v1/z2m/hub-8/kitchen-leak", b"{}")) is True
        assert hub.publish_confirmed(Outbound("carebed/v1/z2m/hub-8/kitchen-leak", b"{}")) is False
        assert hub.publish_confirmed(sos(wearable(registry, 0))) is False
        assert hub.publish_confirmed(Outbound("carebed/v1/z2m/hub-7/bridge/state", b"online")) is True
        # It reads its own branch (zigbee2mqtt subscribes to its base topic) and nobody else's.
        assert [heard.get(timeout=10), heard.get(timeout=10)] == [state.topic, "carebed/v1/z2m/hub-7/bridge/state"]
    finally:
        neighbour.stop()
        hub.stop()


@pytest.mark.parametrize("hijacker", ["device", "observer"])
def test_nobody_can_take_a_services_session_or_wipe_its_queue(
    secure: SecureStack, registry: RegistryFile, hijacker: str
) -> None:
    """Issue 19 row 2: a device, or an integrator's account, connecting with a service's client id
    (clean start) would kick the service off and wipe the SOS queued for it. The broker makes the
    account the client id, so the hijacker gets a session of its own and every SOS reaches the service."""
    sender = wearable(registry, 0)
    device_password = secure.new_password("devices", "rotate", sender)
    service = secure.settings.model_copy(
        update={"mqtt_username": "carebed-gateway", "mqtt_password": SecretStr(secure.accounts["carebed-gateway"])}
    )
    received: list[bytes] = []

    def events_lane() -> MqttClient:
        client = MqttClient(service, client_id="carebed-gateway-events")
        client.subscribe(topics.DEVICE_EVENT_SUBSCRIPTION, lambda message: received.append(message.payload) or [])
        return client

    lane = events_lane()
    lane.start()
    lane.stop()  # its persistent session now queues the SOS below
    device = secure.client(sender, device_password)
    device.start()
    username, password = (
        (sender, device_password) if hijacker == "device" else ("carebed-observer", secure.accounts["carebed-observer"])
    )
    intruder = secure.client(username, password, client_id="carebed-gateway-events")
    try:
        for _ in range(5):
            assert device.publish_confirmed(sos(sender))
        intruder.start(timeout=5)
        for _ in range(5):
            assert device.publish_confirmed(sos(sender))
        intruder.stop()
        lane = events_lane()
        lane.start()
        wait_for(lambda: len(received) >= 10, 10, f"10 SOS on the service's session (got {len(received)})")
    finally:
        lane.stop()
        device.stop()


def test_a_device_reads_its_own_confirmations_and_nobody_elses(secure: SecureStack, registry: RegistryFile) -> None:
    mine, theirs = wearable(registry, 0), wearable(registry, 1)
    received: list[str] = []
    device = secure.client(mine, secure.new_password("devices", "rotate", mine))
    for device_id in (mine, theirs):
        device.subscribe(topics.confirmation(device_id), lambda message: received.append(message.topic) or [])
    alerting = secure.client("carebed-alerting", secure.accounts["carebed-alerting"])
    device.start()
    alerting.start()
    try:
        confirmation = b'{"event": "sos", "ts": "2026-01-01T00:00:00Z"}'
        assert alerting.publish_confirmed(Outbound(topics.confirmation(theirs), confirmation))
        assert alerting.publish_confirmed(Outbound(topics.confirmation(mine), confirmation))
        wait_for(lambda: received, 10, "the device's own confirmation")
        assert device.publish_confirmed(Outbound(topics.confirmation(mine), confirmation)) is False  # no forging
        assert received == [topics.confirmation(mine)]
    finally:
        device.stop()
        alerting.stop()
