"""Vendor devices end to end, through the broker configuration `carebed up` writes.

The integrator's path of docs/integrators.md: `carebed up --registry` (the hub's password comes out in
an owner-only file; `registry load` does the same, tests/test_cli.py); then a zigbee2mqtt hub logs in as
itself and reports an SOS button press, and ChirpStack logs in as `carebed-chirpstack` (its password
from `accounts.env`, sourced by a shell) and relays a leak sensor's uplink. Each must become an alert.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from carebed.mqtt import MqttClient, Outbound
from carebed.schemas import utc_now
from carebed.settings import Settings
from carebed_app.broker import free_port
from simulators.formats import Format, registry_for
from simulators.homes import build_registry
from tests.conftest import login
from tests.support import CarebedUp, wait_for

pytestmark = pytest.mark.integration

HOME = "home-vendor-1"
HUB = "hub-vendor-1"
SOS_BUTTON = "sos-button-1"
DEV_EUI = "a84041000181c061"
REGISTRY = {
    "homes": [
        {
            "id": HOME,
            "street": "人民路",
            "residents": [{"name": "黄凤英", "birth_year": 1941}],
            "responders": [{"name": "Li Wei", "phone": "+8613912345678", "language": "en"}],
            "devices": [
                {"id": HUB, "kind": "hub", "model": "zigbee2mqtt"},
                {"id": SOS_BUTTON, "kind": "wearable", "model": "TS0215A", "via": HUB},
                {"id": DEV_EUI, "kind": "leak_sensor", "model": "LDDS75", "via": "chirpstack"},
            ],
        }
    ]
}
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))}
# The simulated home that `carebed simulate --homes 1 --seed 1` drives, registered in both vendor formats.
SIMULATED = build_registry(1, seed=1).homes[0]


def simulated_home() -> dict[str, Any]:
    z2m, chirpstack = (
        registry_for(build_registry(1, seed=1), f).homes[0] for f in (Format.ZIGBEE2MQTT, Format.CHIRPSTACK)
    )
    home = z2m.model_dump(mode="json", exclude_defaults=True)
    home["devices"] += [d.model_dump(mode="json", exclude_defaults=True) for d in chirpstack.devices]
    return home


@dataclass
class RunningStack:
    data: Path
    mqtt_port: int
    api: httpx.Client
    output: list[str]
    hub_password: str

    def client(self, username: str, password: str) -> MqttClient:
        settings = Settings(mqtt_port=self.mqtt_port, mqtt_username=username, mqtt_password=SecretStr(password))
        return MqttClient(settings, client_id=username, persistent=False)

    def alert(self, code: str, home: str = HOME) -> dict[str, object]:
        def found() -> dict[str, object] | None:
            alerts = self.api.get("/api/v1/alerts").json()
            return next((a for a in alerts if a["code"] == code and a["home_id"] == home), None)

        return wait_for(found, 30, f"a {code} alert; carebed up printed:\n{''.join(self.output)}", interval=0.2)


def cli(*args: str, data: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "carebed", *args, "--data-dir", str(data)],
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    folder = tmp_path_factory.mktemp("vendor")
    data = folder / "var"
    registry = folder / "homes.yaml"
    homes = {"homes": [*REGISTRY["homes"], simulated_home()]}
    registry.write_text(yaml.safe_dump(homes, allow_unicode=True), encoding="utf-8")
    port = free_port()
    up = CarebedUp("--port", str(port), "--data-dir", str(data), "--registry", str(registry))
    printed, output = up.printed, up.lines
    try:
        wait_for(lambda: printed(r"carebed is running"), 60, "carebed up to start")
        mqtt_port = int(wait_for(lambda: printed(r"MQTT broker 127\.0\.0\.1:(\d+)"), 5, "the broker port").group(1))
        wait_for(lambda: printed(r"no console user yet: create the first with carebed admin create"), 5, "the hint")
        written = wait_for(lambda: printed(r"2 new device passwords written to (\S+) \(owner-only\)"), 5, "the file")
        with Path(written.group(1)).open(encoding="utf-8") as file:
            passwords = {row["device_id"]: row["mqtt_password"] for row in csv.DictReader(file)}
        assert set(passwords) == {HUB, f"{SIMULATED.id}-hub"}, "only the hubs log in themselves"
        password = "a long supervisor passphrase"
        cli("admin", "create", "lead", "--role", "supervisor", "--password", password, data=data)
        yield RunningStack(data, mqtt_port, login(f"http://127.0.0.1:{port}", "lead", password), output, passwords[HUB])
    finally:
        assert up.stop() == 0, output


def test_a_zigbee2mqtt_hubs_sos_button_raises_an_alert(stack: RunningStack) -> None:
    hub = stack.client(HUB, stack.hub_password)
    hub.start()
    try:
        state = {"battery": 91, "linkquality": 120, "action": "emergency", "last_seen": utc_now().isoformat()}
        assert hub.publish_confirmed(Outbound(f"carebed/v1/z2m/{HUB}/{SOS_BUTTON}", json.dumps(state).encode()))
    finally:
        hub.stop()
    alert = stack.alert("sos")
    assert alert["severity"] == "critical"


def sourced(accounts: Path, variable: str) -> str:
    """A value of accounts.env as a shell that sources the file sees it."""
    script = f'set -a; . "{accounts}"; printf %s "${variable}"'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=10).stdout


def test_a_chirpstack_uplink_of_a_leak_raises_an_alert(stack: RunningStack) -> None:
    password = sourced(stack.data / "mosquitto" / "accounts.env", "CAREBED_CHIRPSTACK_PASSWORD")
    assert len(password) >= 40
    network_server = stack.client("carebed-chirpstack", password)
    network_server.start()
    uplink = {
        "deduplicationId": str(uuid.uuid4()),
        "time": utc_now().isoformat(),
        "deviceInfo": {"applicationId": "6d9b5e2c", "applicationName": "carebed", "devEui": DEV_EUI},
        "fCnt": 42,
        "fPort": 1,
        "data": "AQ==",
        "object": {"leak": True, "battery_pct": 77},  # what the codec of docs/integrators.md decodes
    }
    try:
        topic = f"application/6d9b5e2c/device/{DEV_EUI}/event/up"
        assert network_server.publish_confirmed(Outbound(topic, json.dumps(uplink).encode()))
    finally:
        network_server.stop()
    alert = stack.alert("water_leak")
    assert alert["severity"] == "high"


@pytest.mark.parametrize(
    ("fmt", "scenario", "code"), [("zigbee2mqtt", "sos", "sos"), ("chirpstack", "leak", "water_leak")]
)
def test_the_readmes_simulator_in_a_vendor_format_raises_an_alert(
    stack: RunningStack, fmt: str, scenario: str, code: str
) -> None:
    """`carebed simulate --format F` as the README shows it: logged in as carebed-simulator, its incident alerts."""
    password = sourced(stack.data / "mosquitto" / "accounts.env", "CAREBED_SIMULATOR_PASSWORD")
    args = ["--homes", "1", "--seed", "1", "--speed", "1", "--format", fmt, "--scenario", scenario]
    args += ["--incident-after", "1", "--duration", "3", "--json"]
    args += ["--broker", f"127.0.0.1:{stack.mqtt_port}", "--username", "carebed-simulator"]
    result = subprocess.run(
        [sys.executable, "-m", "carebed", "simulate", *args],
        env={**CLEAN_ENV, "CAREBED_MQTT_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["incidents"] == 1
    stack.alert(code, SIMULATED.id)
