"""Pure core of the gateway: one raw device message in, a Reading or a DeadLetter out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from carebed.schemas import (
    EVENTS_BY_KIND,
    TELEMETRY_BY_KIND,
    DeadLetter,
    DeviceEntry,
    DevicePayload,
    EventPayload,
    Reading,
    RejectReason,
    StatusPayload,
)
from carebed.topics import DeviceChannel, parse_device

MAX_PAYLOAD_BYTES = 16 * 1024

# Native field names that are renamed in a Reading, where one name would be ambiguous.
_READING_FIELD = {
    "volume_l": "water_volume_l",
    "flow_l_min": "water_flow_l_min",
    "volume_m3": "gas_volume_m3",
    "flow_m3_h": "gas_flow_m3_h",
}


_SCHEMA_BY_CHANNEL: dict[DeviceChannel, type[DevicePayload]] = {
    DeviceChannel.EVENT: EventPayload,
    DeviceChannel.STATUS: StatusPayload,
}


class Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalise(
    topic: str,
    payload: bytes,
    received_at: datetime,
    directory: Mapping[str, DeviceEntry],
    max_future_skew: timedelta | None,
) -> Reading | DeadLetter:
    """Validate a device message against the registry and the native schema."""
    try:
        return _normalise(topic, payload, received_at, directory, max_future_skew)
    except Rejected as rejected:
        return DeadLetter(
            reason=rejected.reason,
            detail=rejected.detail,
            topic=topic,
            payload=payload[:2048].decode("utf-8", errors="replace"),
            received_at=received_at,
        )


def _normalise(
    topic: str,
    payload: bytes,
    received_at: datetime,
    directory: Mapping[str, DeviceEntry],
    max_future_skew: timedelta | None,
) -> Reading:
    parsed = parse_device(topic)
    if parsed is None:
        raise Rejected(RejectReason.BAD_TOPIC, "not carebed/v1/devices/{device_id}/{telemetry|event|status}")
    device_id, channel = parsed
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(RejectReason.TOO_LARGE, f"{len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    entry = directory.get(device_id)
    if entry is None:
        raise Rejected(RejectReason.UNKNOWN_DEVICE, f"device {device_id!r} is not in the registry")
    try:
        data: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(RejectReason.NOT_JSON, str(exc)) from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.NOT_JSON, "payload is not a JSON object")
    if data.get("device_id", device_id) != device_id:
        raise Rejected(RejectReason.DEVICE_MISMATCH, f"payload names {data['device_id']!r}, topic {device_id!r}")

    schema = _SCHEMA_BY_CHANNEL.get(channel) or TELEMETRY_BY_KIND[entry.kind]
    try:
        message = schema.model_validate(data)
    except ValidationError as exc:
        raise Rejected(RejectReason.INVALID_PAYLOAD, _describe(exc)) from None
    if isinstance(message, EventPayload) and message.event not in EVENTS_BY_KIND[entry.kind]:
        raise Rejected(RejectReason.INVALID_PAYLOAD, f"a {entry.kind} cannot send event {message.event!r}")

    ts = message.ts or received_at
    if max_future_skew is not None and ts - received_at > max_future_skew:
        raise Rejected(RejectReason.FUTURE_TIMESTAMP, f"device time {ts.isoformat()} is ahead of the gateway clock")

    values = message.model_dump(exclude={"device_id", "ts"}, exclude_none=True)
    return Reading(
        home_id=entry.home_id,
        device_id=device_id,
        device_kind=entry.kind,
        channel=channel,
        ts=ts,
        received_at=received_at,
        **{_READING_FIELD.get(k, k): v for k, v in values.items()},
    )


def _describe(exc: ValidationError) -> str:
    """A short, field-by-field reason an integrator can act on."""
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
