"""Alert state changes, each one transaction: the alert, its outbox rows and its audit entries commit together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from prometheus_client import Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.folding import group_key, higher
from alerting.messages import AlertText, sms_body, voice_text
from alerting.models import Alert, AlertStatus, AuditEntry, FindingRecord, Notification
from carebed.registry import Home, Responder
from carebed.schemas import Finding, FindingCode, Severity, utc_now

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
DETECTION_LATENCY = Histogram(
    "carebed_alerting_end_to_end_seconds",
    "From the gateway receiving a device message to the alert it caused being stored",
    buckets=LATENCY_BUCKETS,
)


class Source(StrEnum):
    """Who or what caused a transition; recorded on every audit entry."""

    DETECTOR = "detector"
    CONSOLE = "console"
    API = "api"
    SMS_REPLY = "sms_reply"
    KEY_PRESS = "key_press"
    AUTOMATIC = "automatic"


class Outcome(StrEnum):
    RESIDENT_OK = "resident_ok"
    FALSE_ALARM = "false_alarm"
    VISITED = "visited"
    AMBULANCE_CALLED = "ambulance_called"
    HOSPITALISED = "hospitalised"
    DECEASED = "deceased"


@dataclass(frozen=True, slots=True)
class IngestResult:
    alert_id: int | None
    created: bool
    duplicate: bool


def ingest_finding(session: Session, finding: Finding, tz: ZoneInfo) -> IngestResult:
    """Record a finding: ignore a copy, fold it into the open alert of its home and cause, or open one."""
    if session.get(FindingRecord, finding.id) is not None:
        return IngestResult(alert_id=None, created=False, duplicate=True)
    key = group_key(finding)
    alert = session.scalar(select(Alert).where(Alert.open_key == key))
    created = alert is None
    if alert is None:
        alert = Alert(
            home_id=finding.home_id,
            code=finding.code.value,
            severity=finding.severity.value,
            open_key=key,
            summary=finding.summary,
            evidence=dict(finding.evidence),
            first_ts=finding.ts,
            last_ts=finding.ts,
            finding_count=1,
        )
        session.add(alert)
        session.flush()
        _audit(session, alert.id, "created", Source.DETECTOR, None, {"finding_id": finding.id})
        if finding.received_at is not None:
            DETECTION_LATENCY.observe((utc_now() - finding.received_at).total_seconds())
        _notify_first_responder(session, alert, tz)
    else:
        alert.finding_count += 1
        alert.last_ts = max(alert.last_ts, finding.ts)
        alert.severity = higher(Severity(alert.severity), finding.severity).value
        _audit(session, alert.id, "folded", Source.DETECTOR, None, {"finding_id": finding.id})
    session.add(
        FindingRecord(
            id=finding.id,
            alert_id=alert.id,
            code=finding.code.value,
            ts=finding.ts,
            body=finding.model_dump(mode="json"),
        )
    )
    return IngestResult(alert_id=alert.id, created=created, duplicate=False)


def _notify_first_responder(session: Session, alert: Alert, tz: ZoneInfo) -> None:
    home = session.get(Home, alert.home_id)
    if home is None or not home.responders:
        _audit(session, alert.id, "no_responder", Source.AUTOMATIC, None, {"home_id": alert.home_id})
        return
    responder = home.responders[0]
    body = sms_body(_alert_text(alert, home), responder.language, tz)
    _queue(session, alert, responder, "sms", body, Source.AUTOMATIC, None)


def _alert_text(alert: Alert, home: Home) -> AlertText:
    return AlertText(
        alert_id=alert.id,
        code=FindingCode(alert.code),
        severity=Severity(alert.severity),
        resident=home.residents[0].name if home.residents else home.id,
        address=home.address,
        onset=alert.first_ts,
    )


def _queue(
    session: Session, alert: Alert, responder: Responder, channel: str, body: str, source: Source, actor: str | None
) -> Notification:
    notification = Notification(
        alert_id=alert.id,
        responder_id=responder.id,
        channel=channel,
        recipient=responder.phone,
        language=responder.language,
        body=body,
    )
    session.add(notification)
    session.flush()
    _audit(session, alert.id, f"{channel}_queued", source, actor, {"notification_id": notification.id})
    return notification


def queue_call(session: Session, alert: Alert, responder: Responder, actor: str, tz: ZoneInfo) -> Notification:
    """An operator asks for a responder to be called: the call goes through the outbox like an SMS."""
    body = voice_text(_alert_text(alert, responder.home), responder.language, tz)
    return _queue(session, alert, responder, "voice", body, Source.CONSOLE, actor)


def add_note(session: Session, alert: Alert, actor: str, text: str) -> None:
    _audit(session, alert.id, "note", Source.CONSOLE, actor, {"text": text})


def acknowledge(session: Session, alert: Alert, actor: str, source: Source) -> bool:
    """Idempotent: a second acknowledgement changes nothing and says so."""
    if alert.status != AlertStatus.OPEN:
        return False
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acked_at = utc_now()
    alert.acked_by = actor
    alert.ack_source = source.value
    _audit(session, alert.id, "acknowledged", source, actor, {})
    return True


def resolve(session: Session, alert: Alert, actor: str, source: Source, outcome: Outcome) -> bool:
    """Close the alert; a later finding of the same cause opens a new one."""
    if alert.status == AlertStatus.RESOLVED:
        return False
    now = utc_now()
    if alert.acked_at is None:
        alert.acked_at, alert.acked_by, alert.ack_source = now, actor, source.value
    alert.status = AlertStatus.RESOLVED
    alert.open_key = None
    alert.resolved_at = now
    alert.resolved_by = actor
    alert.outcome = outcome.value
    _audit(session, alert.id, "resolved", source, actor, {"outcome": outcome.value})
    return True


def _audit(
    session: Session, alert_id: int | None, action: str, source: Source, actor: str | None, detail: dict[str, object]
) -> None:
    session.add(AuditEntry(alert_id=alert_id, action=action, source=source.value, actor=actor, detail=detail))


def record_delivery(
    session: Session, notification: Notification, *, status: str, sid: str | None, error: str | None, at: datetime
) -> None:
    notification.status = status
    notification.provider_sid = sid
    notification.last_error = error
    if sid is not None:
        notification.sent_at = at
    _audit(
        session,
        notification.alert_id,
        f"{notification.channel}_{status}",
        Source.AUTOMATIC,
        None,
        {"notification_id": notification.id, "sid": sid, "error": error},
    )
