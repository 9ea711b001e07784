"""Tables of the alerting service: alerts, findings, the outbox, the audit log, users; and the chart data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carebed.db import Base, ChartBase, UtcDateTime, utc_now


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_id: Mapped[str] = mapped_column(String(64), index=True, doc="No foreign key: an alert outlives its home.")
    code: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(15), default=AlertStatus.OPEN)
    open_key: Mapped[str | None] = mapped_column(
        String(120), unique=True, doc="home:code while unresolved, NULL after: one open alert per home and cause."
    )
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    finding_count: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now, index=True)
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acked_by: Mapped[str | None] = mapped_column(String(100))
    ack_source: Mapped[str | None] = mapped_column(String(20))
    first_notified_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="When Twilio first accepted a message or call for it."
    )
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="When a responder confirmed arrival.")
    arrived_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(30))
    notifications: Mapped[list[Notification]] = relationship(back_populates="alert", order_by="Notification.id")


class FindingRecord(Base):
    __tablename__ = "findings"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    finding_id: Mapped[str | None] = mapped_column(
        String(200),
        index=True,
        doc="The finding's id when this is a later press that repeats it (a stuck clock); NULL when id is it.",
    )
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    body: Mapped[dict[str, Any]]


class Notification(Base):
    """One message to one responder; also the outbox row the dispatcher works from."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    responder_id: Mapped[int | None] = mapped_column(ForeignKey("responders.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    provider_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    round: Mapped[int | None] = mapped_column(doc="Escalation round and step that sent it; NULL if sent by hand.")
    step: Mapped[int | None]
    alert: Mapped[Alert] = relationship(back_populates="notifications")


class Escalation(Base):
    """An alert's escalation: the plan copied at its start and the state machine's state (alerting.escalation)."""

    __tablename__ = "escalations"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    plan: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    phase: Mapped[str] = mapped_column(String(15))
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True, doc="When a tick is next due.")
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative attribute)


class EscalationPolicyRecord(Base):
    """A home's own policy for one severity; homes without one use alerting.escalation.DEFAULT_POLICIES."""

    __tablename__ = "escalation_policies"

    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True)
    severity: Mapped[str] = mapped_column(String(10), primary_key=True)
    policy: Mapped[dict[str, Any]]
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class AuditEntry(Base):
    """Append-only record of everything that happened to an alert, and who or what did it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="operator")
    areas: Mapped[list[str]] = mapped_column(
        default=list, doc="Streets or communities an operator watches; supervisors and admins see every home."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ConsoleSession(Base):
    """A signed-in console session. The cookie carries its token; only the token's hash is kept, and
    deleting the row (logout, a new password) ends the session whatever cookie anyone saved."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LoginAttempt(Base):
    """Every sign-in attempt: what login throttling counts, and a record of who tried from where."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(20))


class HealthProbe(Base):
    """One row that the health check rewrites, to learn whether the database can commit."""

    __tablename__ = "health_probe"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class AwayPeriod(Base):
    """The resident is away (hospital, family visit): the detector is told, and the console shows it."""

    __tablename__ = "away_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_id: Mapped[str] = mapped_column(String(64), index=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Planned return; NULL if open-ended.")
    reason: Mapped[str] = mapped_column(String(200), default="")
    declared_by: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Set when declared back early.")


class ActivityBucket(ChartBase):
    """Fifteen minutes of a home's water, gas and steps, in device (event) time, for the console's chart."""

    __tablename__ = "activity_buckets"

    home_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True, index=True)
    water_l: Mapped[float] = mapped_column(Float, default=0.0)
    gas_m3: Mapped[float] = mapped_column(Float, default=0.0)
    steps: Mapped[int] = mapped_column(default=0)
    readings: Mapped[int] = mapped_column(default=0)


class DeviceSeen(ChartBase):
    """When each device was last heard from (device time) and its last reported battery."""

    __tablename__ = "device_seen"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    home_id: Mapped[str] = mapped_column(String(64), index=True)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    online: Mapped[bool] = mapped_column(default=True)


class WebhookReceipt(Base):
    """A Twilio callback already acted on; its signature never expires, so a replay is known by this key."""

    __tablename__ = "webhook_receipts"

    key: Mapped[str] = mapped_column(
        String(200), primary_key=True, doc="kind:notification:call or message SID:status or digits; sms:MessageSid."
    )
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
