"""docker-compose.yml and the Grafana provisioning: valid, complete, and consistent with the code.

No Docker engine runs here; Debian's docker-compose validates the file without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from carebed.schemas import Reading
from carebed.settings import Settings
from tests.conftest import ROOT

SECRETS = [
    "CAREBED_SESSION_SECRET", "POSTGRES_PASSWORD", "INFLUXDB_TOKEN", "INFLUXDB_PASSWORD", "GRAFANA_PASSWORD",
    "MQTT_GATEWAY_PASSWORD", "MQTT_DETECTOR_PASSWORD", "MQTT_ALERTING_PASSWORD", "MQTT_SIMULATOR_PASSWORD",
]  # fmt: skip


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (apt-get install docker-compose)"
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose("config", env={name: f"secret-{n}" for n, name in enumerate(SECRETS)})
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_the_stack_has_every_part(config: dict[str, Any]) -> None:
    expected = {
        "mosquitto",
        "broker-auth",
        "postgres",
        "influxdb",
        "grafana",
        "alerting",
        "gateway",
        "gateway-events",
        "detector",
        "alarms",
    }
    assert expected <= set(config["services"])


def test_every_secret_is_required() -> None:
    env = {name: "x" for name in SECRETS}
    for missing in SECRETS:
        result = compose("config", "-q", env={k: v for k, v in env.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr, missing


def test_every_carebed_variable_is_a_setting(config: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, service in config["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("CAREBED_"):
                assert variable.removeprefix("CAREBED_").lower() in fields, f"{name}: {variable}"


def test_grafana_panels_query_fields_the_archive_writes() -> None:
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/influxdb.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/carebed-homes.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            field = re.search(r'r\._field == "(\w+)"', target["query"])
            assert field and field.group(1) in Reading.model_fields, panel["title"]
