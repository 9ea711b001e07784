"""`carebed simulate` for integrators: each format, as a real process, through the real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.mqtt import decode_batch
from carebed.registry import RegistryFile, import_registry
from carebed.schemas import Reading
from carebed.settings import Settings
from gateway.service import Gateway
from tests.support import ALL_READINGS, Observer, wait_for

pytestmark = pytest.mark.integration


def carebed(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "carebed", *args],
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("fmt", ["native", "zigbee2mqtt", "chirpstack"])
def test_each_format_is_accepted_by_the_gateway_and_recorded(fmt: str, settings: Settings, tmp_path: Path) -> None:
    registry = RegistryFile.model_validate(
        yaml.safe_load(carebed("registry", "generate", "--homes", "2", "--format", fmt))
    )
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine).begin() as session:
        import_registry(session, registry)
    engine.dispose()
    gateway = Gateway(
        settings.model_copy(update={"gateway_max_future_skew_s": None, "gateway_device_rate_per_s": None})
    )
    gateway.refresh_registry()
    gateway.start()
    readings = Observer(settings, ALL_READINGS)
    readings.client.start()
    record = tmp_path / "record.jsonl"
    try:
        output = carebed(
            "simulate", "--homes", "2", "--speed", "600", "--duration", "3", "--scenario", "sos",
            "--incident-after", "1", "--format", fmt, "--broker", f"127.0.0.1:{settings.mqtt_port}",
            "--record", str(record),
        )  # fmt: skip
        entries = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
        sent = [e for e in entries if "topic" in e]
        truth = [e["ground_truth"] for e in entries if "ground_truth" in e]
        assert truth and truth[0]["incident"] == "sos"
        assert "sent" in output and f"{len(sent):,}" in output
        received: list[Reading] = []

        def all_arrived() -> bool:
            while not readings.messages.empty():
                received.extend(decode_batch(Reading, readings.messages.get()))
            return len(received) == len(sent)

        wait_for(all_arrived, 20, f"one reading per message sent ({len(sent)})")
        assert {r.home_id for r in received} == {h.id for h in registry.homes}
        assert any(r.event == "sos" for r in received)
    finally:
        readings.client.stop()
        gateway.stop()
