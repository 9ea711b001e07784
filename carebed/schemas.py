"""Message schemas: what devices send, and what the services pass to each other.

Device payloads are the native carebed JSON (v1). They forbid unknown keys so that a typo
in firmware ("heartrate") is rejected with a reason instead of silently meaning "no data".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    model_validator,
)

from carebed.topics import DeviceChannel

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# RFC 3339 date-time (section 5.6): a full date, a full time and an offset, nothing looser.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-14:00 is valid RFC 3339 but past the last datetime once in UTC.
        raise ValueError("outside the range of representable times") from None


def _rfc3339(value: Any) -> Any:
    """A device's time only as RFC 3339 text: pydantic alone would take 0 as 1970 and "2026-11-24" as midnight."""
    if isinstance(value, datetime):
        return value  # built in Python (adapters' fallbacks), not sent by a device
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T07:59:00+08:00")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
DeviceTime = Annotated[UtcDatetime, BeforeValidator(_rfc3339)]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
# Devices send JSON: a number is a number (not "71", not true), and finite (DevicePayload refuses NaN, Infinity).
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict()]
Percent = Annotated[Number, Field(ge=0, le=100)]


class DeviceKind(StrEnum):
    WEARABLE = "wearable"
    WATER_METER = "water_meter"
    GAS_SENSOR = "gas_sensor"
    LEAK_SENSOR = "leak_sensor"
    HUB = "hub"


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """What the gateway needs to know of a registered device."""

    home_id: str
    kind: DeviceKind
    via: str | None = None


class DeviceEvent(StrEnum):
    SOS = "sos"
    FALL = "fall"
    LEAK = "leak"
    TAMPER = "tamper"


EVENTS_BY_KIND: dict[DeviceKind, frozenset[DeviceEvent]] = {
    DeviceKind.WEARABLE: frozenset({DeviceEvent.SOS, DeviceEvent.FALL, DeviceEvent.TAMPER}),
    DeviceKind.WATER_METER: frozenset({DeviceEvent.LEAK, DeviceEvent.TAMPER}),
    DeviceKind.GAS_SENSOR: frozenset({DeviceEvent.TAMPER}),
    DeviceKind.LEAK_SENSOR: frozenset({DeviceEvent.LEAK, DeviceEvent.TAMPER}),
    DeviceKind.HUB: frozenset({DeviceEvent.TAMPER}),
}


class DevicePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device_id: Identifier | None = Field(None, description="Optional; must equal the id in the topic.")
    ts: DeviceTime = Field(description="Device time of the reading, RFC 3339 with offset.")
    seq: Count | None = Field(None, ge=0, le=2**63 - 1, description="Per-device sequence number.")


class WearableTelemetry(DevicePayload):
    heart_rate_bpm: Number | None = Field(None, ge=0, le=250)
    spo2_pct: Number | None = Field(None, ge=50, le=100)
    steps: Count | None = Field(None, ge=0, le=10**9, description="Cumulative step count.")
    worn: StrictBool | None = None
    battery_pct: Percent | None = None
    battery_low: StrictBool | None = None


class WaterMeterTelemetry(DevicePayload):
    volume_l: Number = Field(ge=0, description="Cumulative volume in litres.")
    flow_l_min: Number | None = Field(None, ge=0, description="Current flow in litres per minute.")
    leak: StrictBool | None = None
    battery_pct: Percent | None = None
    battery_low: StrictBool | None = None


class GasSensorTelemetry(DevicePayload):
    ch4_lel_pct: Percent | None = Field(None, description="Methane, % of the lower explosive limit.")
    co_ppm: Number | None = Field(None, ge=0, le=10000, description="Carbon monoxide, ppm.")
    volume_m3: Number | None = Field(None, ge=0, description="Cumulative gas volume in m³.")
    flow_m3_h: Number | None = Field(None, ge=0, description="Current gas flow in m³/h.")
    gas_alarm: StrictBool | None = Field(None, description="A detector's own combustible-gas alarm state.")
    co_alarm: StrictBool | None = Field(None, description="A detector's own carbon monoxide alarm state.")
    smoke: StrictBool | None = Field(None, description="A detector's own smoke alarm state.")
    battery_pct: Percent | None = None
    battery_low: StrictBool | None = None


class LeakSensorTelemetry(DevicePayload):
    leak: StrictBool
    battery_pct: Percent | None = None
    battery_low: StrictBool | None = None


class HubTelemetry(DevicePayload):
    """A hub (a zigbee2mqtt bridge) only reports that it is alive; its devices speak through their own topics."""


TELEMETRY_BY_KIND: dict[DeviceKind, type[DevicePayload]] = {
    DeviceKind.WEARABLE: WearableTelemetry,
    DeviceKind.WATER_METER: WaterMeterTelemetry,
    DeviceKind.GAS_SENSOR: GasSensorTelemetry,
    DeviceKind.LEAK_SENSOR: LeakSensorTelemetry,
    DeviceKind.HUB: HubTelemetry,
}


class EventPayload(DevicePayload):
    event: DeviceEvent


class StatusPayload(DevicePayload):
    """Online/offline and battery; ``ts`` may be absent in a Last Will, which is written at connect time."""

    ts: DeviceTime | None = None  # type: ignore[assignment]
    online: StrictBool
    battery_pct: Percent | None = None


class Reading(BaseModel):
    """One validated device message, resolved to its home; the detector's only input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home_id: Identifier
    device_id: Identifier
    device_kind: DeviceKind
    channel: DeviceChannel
    ts: UtcDatetime
    received_at: UtcDatetime
    seq: int | None = None
    heart_rate_bpm: float | None = None
    spo2_pct: float | None = None
    steps: int | None = None
    worn: bool | None = None
    water_volume_l: float | None = None
    water_flow_l_min: float | None = None
    leak: bool | None = None
    ch4_lel_pct: float | None = None
    co_ppm: float | None = None
    gas_volume_m3: float | None = None
    gas_flow_m3_h: float | None = None
    gas_alarm: bool | None = None
    co_alarm: bool | None = None
    smoke: bool | None = None
    battery_pct: float | None = None
    battery_low: bool | None = None
    online: bool | None = None
    event: DeviceEvent | None = None
    clock_corrected: bool | None = Field(
        None,
        description="ts is the gateway's receive time, not the device's: the device's time was too far ahead"
        " or (for an event) unreadable.",
    )
    device_ts: str | None = Field(None, max_length=64, description="The time the device sent, when ts was corrected.")
    device_clock_ahead_s: float | None = Field(
        None, description="How far the device's clock was ahead of the gateway's, when that is why ts was corrected."
    )

    def clock_evidence(self) -> dict[str, EvidenceValue]:
        """What a finding carries about a corrected clock, so the operator sees the device's own time."""
        if not self.clock_corrected:
            return {}
        values = {
            "clock_corrected": True,
            "device_ts": self.device_ts,
            "device_clock_ahead_s": self.device_clock_ahead_s,
        }
        return evidence_of(**{k: v for k, v in values.items() if v is not None})


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class FindingCode(StrEnum):
    SOS = "sos"
    FALL = "fall"
    GAS_ALARM = "gas_alarm"
    CO_ALARM = "co_alarm"
    WATER_LEAK = "water_leak"
    SMOKE_ALARM = "smoke_alarm"
    DEVICE_OFFLINE = "device_offline"
    INACTIVITY = "inactivity"
    LONG_WATER_FLOW = "long_water_flow"
    LONG_GAS_FLOW = "long_gas_flow"
    NIGHT_WANDERING = "night_wandering"
    ACTIVITY_DECLINE = "activity_decline"
    POSSIBLE_LEAK = "possible_leak"


WELFARE_CODES = frozenset(
    {
        FindingCode.INACTIVITY,
        FindingCode.LONG_WATER_FLOW,
        FindingCode.LONG_GAS_FLOW,
        FindingCode.NIGHT_WANDERING,
        FindingCode.ACTIVITY_DECLINE,
    }
)


# Findings about the equipment, not the resident: for a technician, never for the family.
TECHNICAL_CODES = frozenset({FindingCode.DEVICE_OFFLINE, FindingCode.POSSIBLE_LEAK})

EvidenceValue = str | int | float | bool | None


class Finding(BaseModel):
    """Something a person should look at; ``id`` is stable so a redelivery is recognised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=200)]
    home_id: Identifier
    device_id: Identifier | None = None
    code: FindingCode
    severity: Severity
    ts: UtcDatetime = Field(description="Event time of the onset.")
    detected_at: UtcDatetime = Field(description="Event time at which the detector decided.")
    summary: str
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict)
    received_at: UtcDatetime | None = Field(
        None, description="Gateway wall time of the message that caused it, for end-to-end latency."
    )
    technical: bool = Field(
        False, description="About a device rather than the resident: routed to operators, never to the family."
    )

    @model_validator(mode="before")
    @classmethod
    def _technical_by_code(cls, data: Any) -> Any:
        """A device finding is technical whoever raised it, so no producer can route one to a family by omission."""
        if isinstance(data, dict) and "technical" not in data and data.get("code") in TECHNICAL_CODES:
            return {**data, "technical": True}
        return data


class FeedbackKind(StrEnum):
    AWAY = "away"
    BACK = "back"
    FALSE_ALARM = "false_alarm"


class Feedback(BaseModel):
    """What operators tell the detector about a home: away (until), back, or a false alarm for a cause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=200)]
    home_id: Identifier
    kind: FeedbackKind
    ts: UtcDatetime = Field(description="When it was declared.")
    until: UtcDatetime | None = Field(None, description="End of an away period; open-ended if absent.")
    code: FindingCode | None = Field(None, description="The cause a false alarm was about.")


class LaneReport(BaseModel):
    """One consuming connection's health, as its process reports it (carebed/health.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lane: str = Field(max_length=100)
    connected: bool
    oldest_unacked_s: float = Field(ge=0, allow_inf_nan=False)
    since_processed_s: float = Field(ge=0, allow_inf_nan=False)


class HealthReport(BaseModel):
    """Retained on the process's health topic, replaced every few seconds; empty once it stops cleanly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process: str = Field(max_length=100)
    ts: UtcDatetime
    lanes: tuple[LaneReport, ...]


class RejectReason(StrEnum):
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_MISMATCH = "device_mismatch"
    INVALID_PAYLOAD = "invalid_payload"
    WRONG_PATH = "wrong_path"
    UNPROCESSABLE = "unprocessable"  # handling it raised where no check foresaw it: the net under the others
    RATE_LIMITED = "rate_limited"  # the device sent more than its share (gateway/fairness.py)


class DeadLetter(BaseModel):
    """A message the gateway refused, with the reason, kept for the integrator to see."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: RejectReason
    detail: str
    topic: str
    payload: str
    received_at: UtcDatetime
    kind: Literal["dead_letter"] = "dead_letter"


class Confirmation(BaseModel):
    """The alert for a device's SOS or fall is committed: the device stops publishing the event again.

    A device matches it to what it sent by ``seq`` when it sent one, else by ``event`` and ``ts``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: DeviceEvent
    ts: UtcDatetime = Field(description="Event time of the confirmed event.")
    seq: int | None = Field(None, description="The event's sequence number, as the device sent it.")
    kind: Literal["confirmation"] = "confirmation"


def utc_now() -> datetime:
    return datetime.now(UTC)


def dump(model: BaseModel) -> bytes:
    """Serialise a message compactly, leaving out absent values."""
    return model.model_dump_json(exclude_none=True).encode()


def evidence_of(**values: Any) -> dict[str, EvidenceValue]:
    """Round floats so evidence stays readable in an SMS and stable across replays."""
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}
