"""Message schemas: what devices send, and what the services pass to each other.

Device payloads are the native carebed JSON (v1). They forbid unknown keys so that a typo
in firmware ("heartrate") is rejected with a reason instead of silently meaning "no data".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from carebed.topics import DeviceChannel

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Percent = Annotated[float, Field(ge=0, le=100)]


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
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: Identifier | None = Field(None, description="Optional; must equal the id in the topic.")
    ts: UtcDatetime = Field(description="Device time of the reading, RFC 3339 with offset.")
    seq: int | None = Field(None, ge=0, description="Per-device sequence number.")


class WearableTelemetry(DevicePayload):
    heart_rate_bpm: float | None = Field(None, ge=0, le=250)
    spo2_pct: float | None = Field(None, ge=50, le=100)
    steps: int | None = Field(None, ge=0, description="Cumulative step count.")
    worn: bool | None = None
    battery_pct: Percent | None = None
    battery_low: bool | None = None


class WaterMeterTelemetry(DevicePayload):
    volume_l: float = Field(ge=0, description="Cumulative volume in litres.")
    flow_l_min: float | None = Field(None, ge=0, description="Current flow in litres per minute.")
    leak: bool | None = None
    battery_pct: Percent | None = None
    battery_low: bool | None = None


class GasSensorTelemetry(DevicePayload):
    ch4_lel_pct: Percent | None = Field(None, description="Methane, % of the lower explosive limit.")
    co_ppm: float | None = Field(None, ge=0, le=10000, description="Carbon monoxide, ppm.")
    volume_m3: float | None = Field(None, ge=0, description="Cumulative gas volume in m³.")
    flow_m3_h: float | None = Field(None, ge=0, description="Current gas flow in m³/h.")
    gas_alarm: bool | None = Field(None, description="A detector's own combustible-gas alarm state.")
    co_alarm: bool | None = Field(None, description="A detector's own carbon monoxide alarm state.")
    smoke: bool | None = Field(None, description="A detector's own smoke alarm state.")
    battery_pct: Percent | None = None
    battery_low: bool | None = None


class LeakSensorTelemetry(DevicePayload):
    leak: bool
    battery_pct: Percent | None = None
    battery_low: bool | None = None


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

    ts: UtcDatetime | None = None  # type: ignore[assignment]
    online: bool
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


class RejectReason(StrEnum):
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_MISMATCH = "device_mismatch"
    INVALID_PAYLOAD = "invalid_payload"
    FUTURE_TIMESTAMP = "future_timestamp"
    WRONG_PATH = "wrong_path"


class DeadLetter(BaseModel):
    """A message the gateway refused, with the reason, kept for the integrator to see."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: RejectReason
    detail: str
    topic: str
    payload: str
    received_at: UtcDatetime
    kind: Literal["dead_letter"] = "dead_letter"


def utc_now() -> datetime:
    return datetime.now(UTC)


def dump(model: BaseModel) -> bytes:
    """Serialise a message compactly, leaving out absent values."""
    return model.model_dump_json(exclude_none=True).encode()


def evidence_of(**values: Any) -> dict[str, EvidenceValue]:
    """Round floats so evidence stays readable in an SMS and stable across replays."""
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}
