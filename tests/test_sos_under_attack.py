"""A hostile or broken device against the SOS path as `carebed up` runs it: authenticated broker, a process each.

Issue 19, row 1: one device's poison messages (a timestamp past year 9999, nesting past the
parser's recursion limit, an integer of 5,000 digits) raised out of the gateway, stayed
unacknowledged, and after a thousand of them the broker sent the event lane nothing more: no
other home's SOS alerted. Per-device fairness: one device's flood must not crowd the lane.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select

from alerting.models import Alert
from carebed import topics
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.mqtt import MqttClient, Outbound, decode_batch
from carebed.provisioning import new_service_passwords, rotate_device, service_account, sync_broker_auth
from carebed.registry import RegistryFile, import_registry
from carebed.schemas import DeviceKind, Reading, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from carebed_app.broker import Mosquitto, free_port
from tests.support import Observer, ServiceProcess, wait_for

pytestmark = pytest.mark.integration
PROCESSES = ("alerting", "gateway-events", "alarms")
POISON = [
    b'{"ts":"9999-12-31T23:59:59-14:00","event":"sos"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"ts":"2026-11-24T07:59:00Z","event":"sos","seq":' + b"9" * 5000 + b"}",
    b'{"ts":"9999-12-31T23:59:59-14:00","event":"fall","seq":' + b"9" * 5000 + b"}",
]


@dataclass
class SecureStack:
    settings: Settings
    accounts: dict[str, str]
    devices: dict[str, str]  # wearable id -> password
    homes: dict[str, str]  # wearable id -> home id
    services: dict[str, ServiceProcess]

    def client(self, username: str, password: str) -> MqttClient:
        settings = self.settings.model_copy(update={"mqtt_username": username, "mqtt_password": SecretStr(password)})
        return MqttClient(settings, client_id=username, persistent=False)

    def device(self, device_id: str) -> MqttClient:
        return self.client(device_id, self.devices[device_id])

    def observer(self, topic_filter: str) -> Observer:
        account = "carebed-observer"
        settings = self.settings.model_copy(
            update={"mqtt_username": account, "mqtt_password": SecretStr(self.accounts[account])}
        )
        observer = Observer(settings, topic_filter)
        observer.client.start()
        return observer

    def alerts(self, home_id: str) -> list[Alert]:
        engine = make_engine(self.settings.sqlalchemy_url)
        try:
            with make_sessionmaker(engine)() as session:
                return list(session.scalars(select(Alert).where(Alert.home_id == home_id)))
        finally:
            engine.dispose()

    def metric(self, process: str, name: str) -> float:
        """The sum of a metric's samples on a service's /metrics."""
        port = self.services[process].env["CAREBED_METRICS_PORT"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


@pytest.fixture
def stack(tmp_path: Path, registry: RegistryFile) -> Iterator[SecureStack]:
    data = tmp_path / "data"
    settings = Settings(
        data_dir=data,
        mqtt_port=free_port(),
        http_port=free_port(),
        database_url=f"sqlite:///{data / 'carebed.db'}",
    )
    broker = Mosquitto(data / "mosquitto", settings.mqtt_port, authenticated=True)
    accounts = new_service_passwords(broker.data_dir)
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    wearables = {next(d.id for d in home.devices if d.kind is DeviceKind.WEARABLE): home.id for home in registry.homes}
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine).begin() as session:
        import_registry(session, registry)
        devices = {device: rotate_device(session, device) for device in wearables}
        sync_broker_auth(session, broker.data_dir)
    engine.dispose()
    broker.start()
    env = {
        "CAREBED_DATA_DIR": str(data),
        "CAREBED_DATABASE_URL": settings.sqlalchemy_url,
        "CAREBED_MQTT_PORT": str(settings.mqtt_port),
        "CAREBED_HTTP_PORT": str(settings.http_port),
        "CAREBED_SESSION_SECRET": secrets.token_urlsafe(16),
    }
    services = {
        name: ServiceProcess(
            name,
            {
                **env,
                "CAREBED_MQTT_USERNAME": service_account(name),
                "CAREBED_MQTT_PASSWORD": accounts[service_account(name)],
                **({"CAREBED_METRICS_PORT": str(free_port())} if name != "alerting" else {}),
            },
            tmp_path / f"{name}.log",
        )
        for name in PROCESSES
    }
    try:
        services["alerting"].start().wait_logged("mqtt connected", timeout=60)
        for name in PROCESSES[1:]:
            services[name].start().wait_logged("mqtt connected", timeout=60)
        yield SecureStack(settings, accounts, devices, wearables, services)
    finally:
        for process in services.values():
            process.kill()
        broker.kill()


def sos(device_id: str) -> Outbound:
    payload = json.dumps({"ts": utc_now().isoformat(), "event": "sos"}).encode()
    return Outbound(topics.device(device_id, DeviceChannel.EVENT), payload)


def flood_then_press(stack: SecureStack, flooder: str, flood: Iterable[Outbound], victim: str) -> None:
    """The flood is all in the broker before the other home's resident presses SOS."""
    device = stack.device(flooder)
    device.start()
    try:
        for message in flood:
            device.publish_paced(message)
        assert device.flush(120), "the broker did not take the flood"
    finally:
        device.stop()
    other = stack.device(victim)
    other.start()
    try:
        assert other.publish_confirmed(sos(victim))
    finally:
        other.stop()


def test_five_thousand_poison_messages_from_one_device_do_not_stop_another_homes_sos(stack: SecureStack) -> None:
    attacker, victim = list(stack.devices)[:2]
    dead = stack.observer(topics.DEAD_LETTER_SUBSCRIPTION)
    topic = topics.device(attacker, DeviceChannel.EVENT)
    flood_then_press(stack, attacker, (Outbound(topic, POISON[i % len(POISON)]) for i in range(5000)), victim)

    alert = wait_for(lambda: stack.alerts(stack.homes[victim]), 180, "the other home's SOS to alert")[0]
    assert alert.code == "sos"
    # Every poison message was handled and acknowledged; the rejected ones counted by reason.
    wait_for(lambda: stack.metric("gateway-events", "carebed_gateway_messages_total") == 5001, 60, "5,001 handled")
    assert stack.metric("gateway-events", "carebed_gateway_rejected_total") >= 5000 - 20
    assert stack.metric("gateway-events", "carebed_mqtt_handler_failures_total") == 0
    # Told a few times a minute, not 5,000 times: dead letters and log lines, none a traceback.
    assert 0 < dead.received <= 100
    log = stack.services["gateway-events"].log()
    assert "Traceback" not in log
    assert log.count('"message rejected"') <= 100
    dead.client.stop()


def test_a_flood_of_valid_sos_from_one_device_is_thinned_and_another_homes_sos_alerts(stack: SecureStack) -> None:
    """A stuck button (or a hostile watch) pressing thousands of times: its first presses pass, the rest are counted."""
    flooder, victim = list(stack.devices)[:2]
    events = stack.observer(topics.EVENTS)
    flood_then_press(stack, flooder, (sos(flooder) for _ in range(3000)), victim)

    wait_for(lambda: stack.alerts(stack.homes[victim]), 180, "the other home's SOS to alert")
    wait_for(lambda: stack.metric("gateway-events", "carebed_gateway_messages_total") == 3001, 60, "3,001 handled")
    passed: list[Reading] = []
    while not events.messages.empty():
        passed.extend(decode_batch(Reading, events.messages.get()))
    from_flooder = [r for r in passed if r.device_id == flooder]
    assert 1 <= len(from_flooder) <= 50, len(from_flooder)
    assert any(r.device_id == victim for r in passed)
    assert stack.metric("gateway-events", "carebed_gateway_rejected_total") == 3000 - len(from_flooder)
    assert [a.code for a in stack.alerts(stack.homes[flooder])] == ["sos"]
    events.client.stop()
