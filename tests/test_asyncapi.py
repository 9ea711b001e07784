"""docs/asyncapi.yaml: current, valid AsyncAPI 2.6, and true of what the simulators and services send."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml

from carebed.asyncapi import document
from carebed.schemas import DeviceEntry, Reading, dump
from carebed.topics import DeviceChannel
from detector.rules import RuleConfig, RuleEngine
from gateway.core import Normaliser
from simulators.homes import REPORT_EVERY, SIMULATED_KINDS, Incident, Message, SimulatedHome, build_registry
from tests.conftest import ROOT, TEST_TOOLS

DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA = TEST_TOOLS / "@asyncapi" / "specs" / "schemas" / "2.6.0-without-$id.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def channel_validator(doc: dict[str, Any], channel: str, operation: str) -> jsonschema.Validator:
    payload = doc["channels"][channel][operation]["message"]["payload"]
    root = {**payload, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def test_the_committed_document_is_current(doc: dict[str, Any]) -> None:
    assert doc == json.loads(json.dumps(document())), "run `carebed asyncapi > docs/asyncapi.yaml`"


def test_the_document_is_valid_asyncapi_2_6(doc: dict[str, Any]) -> None:
    assert ASYNCAPI_SCHEMA.exists(), "npm ci --prefix deploy/test-tools"
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8")))
    assert list(validator.iter_errors(doc)) == []
    broken = {**doc, "channels": {"x": {"publish": {"message": {"payload": 5}}}}}
    assert list(validator.iter_errors(broken)), "the validator must be able to fail"


def simulated_messages(homes: int = 4, hours: int = 30) -> list[Message]:
    """A day and more of every simulated device, plus each incident."""
    registry = build_registry(homes, seed=3)
    start = datetime(2026, 11, 24, tzinfo=UTC)
    messages: list[Message] = []
    for n, spec in enumerate(registry.homes):
        home = SimulatedHome(spec, ZoneInfo("Asia/Shanghai"), random.Random(n))
        for kind in SIMULATED_KINDS:
            t = start
            while t < start + timedelta(hours=hours):
                messages.append(home.report(kind, t))
                t += REPORT_EVERY[kind]
        messages += home.inject(list(Incident)[n % len(Incident)], start + timedelta(hours=9))
    return messages


def test_every_simulator_payload_fits_its_channel(doc: dict[str, Any]) -> None:
    validators = {
        channel: channel_validator(doc, f"carebed/v1/devices/{{device_id}}/{channel.value}", "publish")
        for channel in (DeviceChannel.TELEMETRY, DeviceChannel.EVENT)
    }
    messages = simulated_messages()
    assert {m.channel for m in messages} == set(validators)
    for message in messages:
        validators[message.channel].validate(message.payload)
    with pytest.raises(jsonschema.ValidationError):
        validators[DeviceChannel.TELEMETRY].validate({**messages[0].payload, "heartrate": 70})


def test_readings_and_findings_fit_the_internal_channels(doc: dict[str, Any]) -> None:
    registry = build_registry(4, seed=3)
    directory = {d.id: DeviceEntry(h.id, d.kind) for h in registry.homes for d in h.devices}
    normaliser, engine = Normaliser(None), RuleEngine(RuleConfig())
    lanes = {
        DeviceChannel.TELEMETRY: channel_validator(doc, "carebed/v1/internal/readings", "subscribe"),
        DeviceChannel.EVENT: channel_validator(doc, "carebed/v1/internal/events", "subscribe"),
    }
    finding_schema = channel_validator(doc, "carebed/v1/internal/findings/{home_id}", "subscribe")
    batches: dict[DeviceChannel, list[bytes]] = {channel: [] for channel in lanes}
    findings = []
    for message in simulated_messages():
        topic = f"carebed/v1/devices/{message.device_id}/{message.channel.value}"
        reading = normaliser.normalise(topic, json.dumps(message.payload).encode(), message.ts, directory)
        assert isinstance(reading, Reading)
        batches[message.channel].append(dump(reading))
        findings += engine.process(reading)
    for channel, batch in batches.items():
        assert batch
        lanes[channel].validate(json.loads(b"[" + b",".join(batch) + b"]"))
    with pytest.raises(jsonschema.ValidationError):
        lanes[DeviceChannel.TELEMETRY].validate(json.loads(batches[DeviceChannel.TELEMETRY][0]))
    assert findings, "the injected incidents must raise findings"
    for finding in findings:
        finding_schema.validate(json.loads(finding.model_dump_json(exclude_none=True)))
