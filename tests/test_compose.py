"""docker-compose.yml and the Grafana provisioning: valid, complete, and consistent with the code.

No Docker engine runs here; Debian's docker-compose validates the file without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from carebed.schemas import Reading
from carebed.settings import Settings
from tests.conftest import ROOT

SECRETS = [
    "CAREBED_SESSION_SECRET", "POSTGRES_PASSWORD", "INFLUXDB_TOKEN", "INFLUXDB_PASSWORD", "GRAFANA_PASSWORD",
    "MQTT_GATEWAY_PASSWORD", "MQTT_DETECTOR_PASSWORD", "MQTT_ALERTING_PASSWORD", "MQTT_SIMULATOR_PASSWORD",
    "CAREBED_METRICS_TOKEN",
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


# --- Operations (issue 20): pinned images, healthchecks, .env.example, Prometheus, Grafana ---

ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS = ROOT / "deploy" / "prometheus"
# One-shot jobs: nothing runs in them to check; the services that need them wait for them to complete.
ONE_SHOT = {"db-upgrade", "broker-auth"}
EXPORTERS = {"node-exporter": "node-exporter", "postgres-exporter": "postgres", "blackbox-exporter": "mosquitto"}


def example_env() -> dict[str, str]:
    """.env.example as a user fills it in: its defaults, a value for every secret, optional ones left empty."""
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    return {name: value or (f"filled-{name.lower()}" if name in SECRETS else "") for name, value in values.items()}


@pytest.fixture(scope="module")
def example_config() -> dict[str, Any]:
    result = compose("config", env=example_env())
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_env_example_lists_every_variable_compose_uses() -> None:
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    listed = set(example_env())
    assert used and used == listed, f"missing from .env.example: {used - listed}; not used: {listed - used}"
    assert set(SECRETS) <= listed


def test_every_image_is_pinned_to_a_version(config: dict[str, Any]) -> None:
    from carebed import __version__

    for name, service in config["services"].items():
        image = service["image"]
        if "build" in service:
            assert image == f"carebed:{__version__}", name
        else:  # PostgreSQL 10 and later number a release MAJOR.MINOR
            release = r"\d+\.\d+" if image.startswith("postgres:") else r"v?\d+\.\d+\.\d+"
            assert re.search(f":{release}$", image), f"{name}: {image} is not pinned to a release"
    bases = re.findall(r"^FROM (\S+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    assert bases and all(re.search(r":\d+\.\d+\.\d+-", base) for base in bases), bases


def test_every_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if name in ONE_SHOT:
            waiting = [
                other
                for other in config["services"].values()
                if isinstance(other.get("depends_on"), dict)
                and other["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"
            ]
            assert waiting, f"{name} is a one-shot job nothing waits for"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_services_wait_for_a_healthy_broker(config: dict[str, Any]) -> None:
    """A service started before the broker answers would spend its first minute reconnecting."""
    services = [name for name in config["services"] if name not in ONE_SHOT | {"simulator"}]  # it waits for the gateway
    for name in services:
        service = config["services"][name]
        if service.get("environment", {}).get("CAREBED_MQTT_HOST") == "mosquitto":
            assert service["depends_on"]["mosquitto"]["condition"] == "service_healthy", name


def test_every_service_environment_is_valid_settings(
    example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What compose hands each carebed process is a configuration that process accepts."""
    checked = 0
    for name, service in example_config["services"].items():
        environment = service.get("environment", {})
        if not any(key.startswith("CAREBED_") for key in environment):
            continue
        for key in list(os.environ):
            if key.startswith(("CAREBED_", "TWILIO_")):
                monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, "" if value is None else str(value))
        try:
            Settings()
        except ValueError as exc:
            pytest.fail(f"{name}: {exc}")
        checked += 1
    assert checked >= 6


def test_prometheus_scrapes_every_service(config: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target: group.get("labels", {}).get("service")
        for job in prometheus["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    scraped = set(targets.values())
    for name, service in config["services"].items():
        port = service.get("environment", {}).get("CAREBED_METRICS_PORT")
        if port:
            assert targets.get(f"{name}:{port}") == name, f"{name} serves metrics on {port}; nobody scrapes them"
        elif name not in ONE_SHOT | {"simulator"} | set(EXPORTERS):
            assert name in scraped, f"Prometheus does not watch {name}"
    assert set(EXPORTERS.values()) <= scraped


TOKEN_FILE = "/prometheus/metrics-token"  # written by the prometheus service at start (docker-compose.yml)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (apt-get install prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_prometheus_config_and_rules_are_valid(tmp_path: Path) -> None:
    """promtool checks that the token file exists: a copy of the folder points at one here."""
    folder = shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    config = folder / "prometheus.yml"
    assert TOKEN_FILE in config.read_text()
    config.write_text(config.read_text().replace(TOKEN_FILE, str(tmp_path / "metrics-token")))
    (tmp_path / "metrics-token").write_text("token")
    result = promtool("check", "config", "prometheus.yml", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout
    result = promtool("check", "config", "--syntax-only", "blackbox.yml", cwd=folder)
    assert result.returncode != 0, "the check must be able to fail: blackbox.yml is not a Prometheus config"


def test_alert_rules_fire_on_the_series_they_watch() -> None:
    result = promtool("test", "rules", "tests/carebed.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    cases = yaml.safe_load((PROMETHEUS / "tests" / "carebed.test.yml").read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    rules = yaml.safe_load((PROMETHEUS / "rules" / "carebed.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts == fired, f"rules never shown to fire: {sorted(alerts - fired)}"


def declared_metrics() -> set[str]:
    """Every carebed_* metric name the code declares, as Prometheus exposes it."""
    names: set[str] = set()
    for folder in ("carebed", "gateway", "detector", "alerting"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r'"(carebed_[a-z0-9_]+)"', path.read_text()))
    return names | {f"{name}_total" for name in names}


def used_metrics(text: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\b(carebed_[a-z0-9_]+)", text)}


def test_rules_and_dashboards_name_metrics_the_code_exports() -> None:
    declared = declared_metrics()
    assert "carebed_alerting_outbox_due" in declared and "carebed_gateway_messages_total" in declared
    for path in [PROMETHEUS / "rules" / "carebed.yml", ROOT / "deploy/grafana/dashboards/carebed-operations.json"]:
        used = used_metrics(path.read_text())
        assert used, path
        assert used <= declared, f"{path.name}: {sorted(used - declared)} do not exist"


def test_the_operations_dashboard_reads_prometheus() -> None:
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/carebed-operations.json").read_text())
    assert len(dashboard["panels"]) >= 10
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
    for watched in ("outbox", "twilio", "devices_offline", "end_to_end", "node_filesystem", "probe_success"):
        assert watched in exprs, watched
