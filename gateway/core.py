"""Pure core of the gateway: one raw device message in, a Reading, a DeadLetter, or nothing out.

Adapters translate vendor formats into native payloads; everything is then checked here the
same way: the device must be registered, must speak by the path it is registered with, and
its payload must fit the native schema of its kind. Whatever a payload makes the adapters or
the validation raise becomes its own dead letter (`unprocessable`), never the lane's problem.

A device's clock is not trusted to drop a message: a time too far ahead is replaced by the
receive time and flagged on the Reading, and an event (an SOS) whose time is unreadable is
taken at the receive time too.
"""

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
from carebed.topics import DeviceChannel
from gateway.adapters import Adapter, Rejected, Translation
from gateway.adapters.chirpstack import ChirpStackAdapter
from gateway.adapters.native import NativeAdapter
from gateway.adapters.zigbee2mqtt import Zigbee2MqttAdapter

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


class Normaliser:
    def __init__(self, max_future_skew: timedelta | None) -> None:
        self.max_future_skew = max_future_skew
        self.chirpstack = ChirpStackAdapter()
        self.adapters: tuple[Adapter, ...] = (NativeAdapter(), Zigbee2MqttAdapter(), self.chirpstack)

    def normalise(
        self, topic: str, payload: bytes, received_at: datetime, directory: Mapping[str, DeviceEntry]
    ) -> Reading | DeadLetter | None:
        """None when the message carries nothing to pass on (a duplicate uplink, a hub's housekeeping)."""
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise Rejected(RejectReason.TOO_LARGE, f"{len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
            adapter = next((a for a in self.adapters if a.matches(topic)), None)
            if adapter is None:
                raise Rejected(RejectReason.BAD_TOPIC, "no device format uses this topic")
            translation = adapter.translate(topic, payload, received_at)
            if translation is None:
                return None
            return self._validate(translation, received_at, directory)
        except Rejected as rejected:
            return dead_letter(rejected.reason, rejected.detail, topic, payload, received_at)
        except Exception as exc:  # a payload's fault is that payload's, never the lane's
            return dead_letter(RejectReason.UNPROCESSABLE, describe_exception(exc), topic, payload, received_at)

    def sender(self, topic: str) -> str:
        """Who answers for a message, for per-sender limits: the device, or the hub it speaks through."""
        adapter = next((a for a in self.adapters if a.matches(topic)), None)
        return adapter.sender(topic) if adapter is not None else ""

    def _validate(
        self, translation: Translation, received_at: datetime, directory: Mapping[str, DeviceEntry]
    ) -> Reading:
        device_id, channel = translation.device_id, translation.channel
        entry = directory.get(device_id)
        if entry is None:
            raise Rejected(RejectReason.UNKNOWN_DEVICE, f"device {device_id!r} is not in the registry")
        if entry.via != translation.via:
            registered = f"via {entry.via!r}" if entry.via else "directly"
            came = f"via {translation.via!r}" if translation.via else "directly"
            raise Rejected(
                RejectReason.WRONG_PATH, f"device {device_id!r} is registered to speak {registered}, not {came}"
            )
        schema = _SCHEMA_BY_CHANNEL.get(channel) or TELEMETRY_BY_KIND[entry.kind]
        payload = translation.payload
        clock: dict[str, Any] = {}
        try:
            message = schema.model_validate(payload)
        except ValidationError as exc:
            if schema is not EventPayload or any(error["loc"][:1] != ("ts",) for error in exc.errors()):
                raise Rejected(RejectReason.INVALID_PAYLOAD, _describe(exc)) from None
            # An SOS is never refused for its time: it is taken at the receive time, flagged.
            message = schema.model_validate({**payload, "ts": received_at})
            clock = {"clock_corrected": True, "device_ts": _as_sent(payload.get("ts"))}
        if isinstance(message, EventPayload) and message.event not in EVENTS_BY_KIND[entry.kind]:
            raise Rejected(RejectReason.INVALID_PAYLOAD, f"a {entry.kind} cannot send event {message.event!r}")

        ts = message.ts or received_at
        if self.max_future_skew is not None and ts - received_at > self.max_future_skew:
            # Neither dropped nor believed: one fast clock must not lose an SOS, nor drag the home's
            # event time (and every rule judged by it) into the future.
            clock = {
                "clock_corrected": True,
                "device_ts": ts.isoformat(),
                "device_clock_ahead_s": round((ts - received_at).total_seconds(), 3),
            }
            ts = received_at

        values = message.model_dump(exclude={"device_id", "ts"}, exclude_none=True)
        return Reading(
            home_id=entry.home_id,
            device_id=device_id,
            device_kind=entry.kind,
            channel=channel,
            ts=ts,
            received_at=received_at,
            **{_READING_FIELD.get(k, k): v for k, v in values.items()},
            **clock,
        )


def dead_letter(reason: RejectReason, detail: str, topic: str, payload: bytes, received_at: datetime) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        detail=detail,
        topic=topic,
        payload=payload[:2048].decode("utf-8", errors="replace"),
        received_at=received_at,
    )


def describe_exception(exc: BaseException) -> str:
    """One line an integrator can act on, without a traceback (which only the gateway's code would explain)."""
    return f"could not be processed: {type(exc).__name__}: {exc}"[:300]


def _as_sent(value: Any) -> str | None:
    """The device's time as it sent it, short enough for an SMS's evidence line."""
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value, default=str))[:64]


def _describe(exc: ValidationError) -> str:
    """A short, field-by-field reason an integrator can act on."""
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
