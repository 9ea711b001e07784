"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alerting.models import AwayPeriod
from alerting.store import Outcome
from carebed.registry import Home
from carebed.schemas import LaneReport, utc_now


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NotificationOut(_Out):
    id: int
    channel: str
    recipient: str
    language: str
    body: str
    status: str
    attempts: int
    provider_sid: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    provider_status: str | None = None
    round: int | None = None
    step: int | None = None


class AuditOut(_Out):
    at: datetime
    action: str
    source: str
    actor: str | None
    detail: dict[str, Any]


class AlertOut(_Out):
    id: int
    home_id: str
    resident: str | None = None
    community: str | None = None
    code: str
    severity: str
    status: str
    summary: str
    evidence: dict[str, Any]
    first_ts: datetime
    last_ts: datetime
    finding_count: int
    created_at: datetime
    updated_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    ack_source: str | None
    first_notified_at: datetime | None = None
    arrived_at: datetime | None = None
    arrived_by: str | None = None
    resolved_at: datetime | None
    outcome: str | None
    notifications: list[NotificationOut]


class ResidentOut(BaseModel):
    name: str
    age: int | None
    conditions: list[str]
    language: str


class ResponderOut(_Out):
    id: int
    name: str
    relation: str
    phone: str
    language: str


class AwayOut(_Out):
    id: int
    since: datetime
    until: datetime | None
    reason: str
    declared_by: str


class HomeOut(BaseModel):
    id: str
    address: str
    street: str
    community: str
    access_notes: str
    residents: list[ResidentOut]
    responders: list[ResponderOut]
    away: AwayOut | None

    @classmethod
    def of(cls, home: Home, away: AwayPeriod | None, tz: ZoneInfo) -> HomeOut:
        year = utc_now().astimezone(tz).year
        return cls(
            id=home.id,
            address=home.address,
            street=home.street,
            community=home.community,
            access_notes=home.access_notes,
            residents=[
                ResidentOut(
                    name=r.name,
                    age=year - r.birth_year if r.birth_year else None,
                    conditions=list(r.conditions),
                    language=r.language,
                )
                for r in home.residents
            ],
            responders=[ResponderOut.model_validate(r) for r in home.responders],
            away=AwayOut.model_validate(away) if away else None,
        )


class EscalationOut(BaseModel):
    phase: str
    round: int
    step: int
    steps: int
    rounds: int
    next_at: datetime | None


class AlertDetail(AlertOut):
    cause: dict[str, str]
    home: HomeOut | None
    audit: list[AuditOut]
    escalation: EscalationOut | None = None
    response_s: dict[str, float | None] = Field(
        default_factory=dict, description="Seconds from creation to notified, acknowledged, arrived, resolved."
    )


class ResolveIn(BaseModel):
    outcome: Outcome
    note: str | None = Field(None, max_length=2000)


class CallIn(BaseModel):
    responder_id: int


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class AwayIn(BaseModel):
    until: AwareDatetime | None = Field(None, description="Planned return; open-ended if absent.")
    reason: str = Field("", max_length=200)


class Health(BaseModel):
    """Answered with 200 when "ok", 503 when "degraded"; `reasons` says why, one line per problem."""

    status: Literal["ok", "degraded"]
    reasons: list[str]
    database: bool
    mqtt: bool
    twilio: str
    since_last_alert_s: float | None = Field(description="Seconds since the newest alert was opened.")
    lanes: dict[str, list[LaneReport]] = Field(description="Each process's lanes, as last reported.")
