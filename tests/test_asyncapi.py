"""docs/asyncapi.yaml: current, valid AsyncAPI 2.6, and true of what the simulators and services send."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml

from carebed.asyncapi import document
from carebed.schemas import DeviceEntry, DeviceKind, Reading, dump
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


FIXTURES = ROOT / "tests" / "fixtures"
RECEIVED = datetime(2026, 11, 24, 0, 5, tzinfo=UTC)


def messages(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for channel, item in doc["channels"].items():
        for operation in ("publish", "subscribe"):
            if operation in item:
                yield channel, operation, item[operation]["message"]


def examples_of(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    (message,) = [m for c, _, m in messages(doc) if c == channel]
    return {example["name"]: example["payload"] for example in message["examples"]}


def test_every_message_has_examples_that_fit_it(doc: dict[str, Any]) -> None:
    seen = 0
    for channel, operation, message in messages(doc):
        assert message.get("examples"), f"{channel}: no example"
        validator = channel_validator(doc, channel, operation)
        for example in message["examples"]:
            assert example["name"] and example["summary"]
            validator.validate(example["payload"])
            seen += 1
    assert seen >= len(doc["channels"])


def test_the_vendor_examples_are_the_captured_payloads(doc: dict[str, Any]) -> None:
    zigbee = examples_of(doc, "carebed/v1/z2m/{hub_id}/{friendly_name}")
    assert {"sos", "water_leak"} <= set(zigbee)
    for name, payload in zigbee.items():
        assert payload == json.loads((FIXTURES / "zigbee2mqtt" / f"{name}.json").read_text()), name
    chirpstack = examples_of(doc, "application/{application_id}/device/{dev_eui}/event/up")
    assert chirpstack
    for name, payload in chirpstack.items():
        assert payload == json.loads((FIXTURES / "chirpstack" / f"{name}.json").read_text()), name


def test_the_device_examples_are_accepted_by_the_gateway(doc: dict[str, Any]) -> None:
    """What a person copies from the document is what the gateway takes, through each adapter."""
    hub = "hub-1"
    directory = {
        **{f"dev-{kind.value}": DeviceEntry("home-1", kind) for kind in DeviceKind},
        "pendant": DeviceEntry("home-1", DeviceKind.WEARABLE, via=hub),
        "kitchen-leak": DeviceEntry("home-1", DeviceKind.LEAK_SENSOR, via=hub),
        "0101010101010101": DeviceEntry("home-2", DeviceKind.WATER_METER, via="chirpstack"),
    }
    event_device = {"sos": "dev-wearable", "fall": "dev-wearable", "leak": "dev-water_meter"}
    zigbee_device = {"sos": "pendant", "action_emergency": "pendant", "water_leak": "kitchen-leak"}
    cases = [
        *((f"carebed/v1/devices/dev-{name}/telemetry", payload)
          for name, payload in examples_of(doc, "carebed/v1/devices/{device_id}/telemetry").items()),
        *((f"carebed/v1/devices/{event_device[name]}/event", payload)
          for name, payload in examples_of(doc, "carebed/v1/devices/{device_id}/event").items()),
        *(("carebed/v1/devices/dev-wearable/status", payload)
          for payload in examples_of(doc, "carebed/v1/devices/{device_id}/status").values()),
        *((f"carebed/v1/z2m/{hub}/{zigbee_device[name]}", payload)
          for name, payload in examples_of(doc, "carebed/v1/z2m/{hub_id}/{friendly_name}").items()),
        *((f"application/app-1/device/{payload['deviceInfo']['devEui']}/event/up", payload)
          for payload in examples_of(doc, "application/{application_id}/device/{dev_eui}/event/up").values()),
    ]  # fmt: skip
    assert len(cases) >= 13
    normaliser = Normaliser(None)
    for topic, payload in cases:
        result = normaliser.normalise(topic, json.dumps(payload).encode(), RECEIVED, directory)
        assert isinstance(result, Reading), (topic, result)


def test_the_broker_login_is_a_security_scheme_of_every_server(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"userPassword"}
    for name, server in doc["servers"].items():
        assert server["security"], name
        for requirement in server["security"]:
            assert set(requirement) <= set(schemes), name
    assert any(server["protocol"] == "secure-mqtt" for server in doc["servers"].values())
