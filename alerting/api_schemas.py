"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from alerting.store import Outcome


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
    resolved_at: datetime | None
    outcome: str | None
    notifications: list[NotificationOut]


class AlertDetail(AlertOut):
    audit: list[AuditOut]


class ResolveIn(BaseModel):
    outcome: Outcome


class Health(BaseModel):
    status: str
    database: bool
    mqtt: bool
    twilio: str
