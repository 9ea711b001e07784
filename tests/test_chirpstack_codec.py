"""The ChirpStack codec of docs/integrators.md decodes into fields the gateway accepts.

The codec runs in Node.js (ChirpStack v4 runs the same JavaScript in QuickJS); its output goes into a
ChirpStack uplink like tests/fixtures/chirpstack/uplink_water_meter.json and through the gateway's
normaliser, which refuses any field name or unit carebed does not know.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from carebed.schemas import DeadLetter, DeviceEntry, DeviceEvent, DeviceKind, Reading, utc_now
from gateway.core import Normaliser
from tests.conftest import ROOT

CODEC = ROOT / "deploy" / "chirpstack" / "carebed-codec.js"
FIXTURE = ROOT / "tests" / "fixtures" / "chirpstack" / "uplink_water_meter.json"
DEV_EUI = "0101010101010101"  # the fixture's


def decode(f_port: int, frame: bytes) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js is not installed (apt-get install nodejs)"
    script = (
        f"const codec = require({json.dumps(str(CODEC))});"
        f"process.stdout.write(JSON.stringify(codec.decodeUplink({{fPort: {f_port}, bytes: {list(frame)}}})));"
    )
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    decoded: dict[str, Any] = json.loads(result.stdout)
    return decoded


def through_gateway(kind: DeviceKind, decoded: dict[str, Any]) -> Reading | DeadLetter | None:
    uplink = json.loads(FIXTURE.read_text(encoding="utf-8"))
    uplink["object"] = decoded
    uplink["time"] = utc_now().isoformat()
    topic = f"application/{uplink['deviceInfo']['applicationId']}/device/{DEV_EUI}/event/up"
    directory = {DEV_EUI: DeviceEntry("home-1", kind, "chirpstack")}
    return Normaliser(None).normalise(topic, json.dumps(uplink).encode(), utc_now(), directory)


@pytest.mark.parametrize(
    ("kind", "f_port", "frame", "expected"),
    [
        (
            DeviceKind.WATER_METER,
            1,
            bytes([0x00, 0x01, 0xE2, 0x40, 0x00, 0x3C, 0x01, 87]),
            {"water_volume_l": 12345.6, "water_flow_l_min": 6.0, "leak": True, "battery_pct": 87},
        ),
        (DeviceKind.LEAK_SENSOR, 2, bytes([0b11, 12]), {"leak": True, "battery_low": True, "battery_pct": 12}),
        (DeviceKind.LEAK_SENSOR, 3, bytes([1]), {"event": DeviceEvent.LEAK}),
        (DeviceKind.WATER_METER, 3, bytes([2]), {"event": DeviceEvent.TAMPER}),
    ],
)
def test_the_codec_decodes_into_fields_the_gateway_accepts(
    kind: DeviceKind, f_port: int, frame: bytes, expected: dict[str, Any]
) -> None:
    decoded = decode(f_port, frame)
    assert "errors" not in decoded, decoded
    reading = through_gateway(kind, decoded["data"])
    assert isinstance(reading, Reading), reading
    assert {field: getattr(reading, field) for field in expected} == expected


def test_a_frame_the_codec_cannot_read_is_an_error_in_chirpstack_not_a_guess() -> None:
    assert decode(9, bytes([1, 2])) == {"errors": ["no carebed decoding for fPort 9"]}
    assert decode(1, bytes([1, 2])) == {"errors": ["water meter report: 8 bytes expected"]}
    rejected = through_gateway(DeviceKind.LEAK_SENSOR, {"water_leak": True})  # a zigbee2mqtt name, not carebed's
    assert isinstance(rejected, DeadLetter) and rejected.reason == "invalid_payload"
