"""Alert state changes, each one transaction: the alert, its outbox rows and its audit entries commit together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from prometheus_client import Histogram
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting import escalation as esc
from alerting.clock import steady_now
from alerting.folding import Recorded, group_key, higher, is_new_press, record_id
from alerting.messages import REPLY_HINT, AlertText, sms_body, voice_text
from alerting.models import (
    Alert,
    AlertStatus,
    AuditEntry,
    Escalation,
    EscalationPolicyRecord,
    FindingRecord,
    Notification,
    NotificationStatus,
    WebhookReceipt,
)
from alerting.twilio_codes import Verdict
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


def ingest_finding(session: Session, finding: Finding, tz: ZoneInfo, time_scale: float = 1.0) -> IngestResult:
    """Record a finding: ignore a copy, fold it into the open alert of its home and cause, or open one."""
    first = session.get(FindingRecord, finding.id)
    repeat = first is not None
    if first is not None and not is_new_press(finding, _newest_record(session, first)):
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
        start_escalation(session, alert, tz, time_scale)
    else:
        alert.finding_count += 1
        alert.last_ts = max(alert.last_ts, finding.ts)
        alert.severity = higher(Severity(alert.severity), finding.severity).value
        _audit(session, alert.id, "folded", Source.DETECTOR, None, {"finding_id": finding.id})
    session.add(
        FindingRecord(
            id=record_id(finding, alert.id, repeat),
            finding_id=finding.id if repeat else None,
            alert_id=alert.id,
            code=finding.code.value,
            ts=finding.ts,
            body=finding.model_dump(mode="json"),
        )
    )
    return IngestResult(alert_id=alert.id, created=created, duplicate=False)


def _newest_record(session: Session, first: FindingRecord) -> Recorded:
    """The alert that last took a finding id (a stuck clock repeats ids), and whether it is resolved yet."""
    newest = session.scalar(select(func.max(FindingRecord.alert_id)).where(FindingRecord.finding_id == first.id))
    alert_id = newest if newest is not None else first.alert_id
    return Recorded(alert_id=alert_id, resolved_at=session.get_one(Alert, alert_id).resolved_at)


def start_escalation(session: Session, alert: Alert, tz: ZoneInfo, time_scale: float = 1.0) -> None:
    """Copy the home's policy for this severity onto the alert and take the first step, in this transaction."""
    home = session.get(Home, alert.home_id)
    if home is None or not home.responders:
        _audit(session, alert.id, "no_responder", Source.AUTOMATIC, None, {"home_id": alert.home_id})
    record = session.get(EscalationPolicyRecord, (alert.home_id, alert.severity))
    home_policy = esc.Policy.model_validate(record.policy) if record else None
    policy = esc.policy_for(FindingCode(alert.code), Severity(alert.severity), home_policy)
    contacts = [
        esc.Contact(
            id=r.id,
            position=r.position,
            relation=r.relation,
            phone=r.phone,
            language=r.language,
            quiet_hours=r.quiet_hours,
        )
        for r in (home.responders if home else [])
    ]
    plan = esc.make_plan(policy, contacts, time_scale, tz.key)
    state = esc.State()
    session.add(
        Escalation(alert_id=alert.id, plan=plan.model_dump(mode="json"), state=state.model_dump(mode="json"), phase="")
    )
    session.flush()
    _audit(
        session,
        alert.id,
        "escalation_started",
        Source.AUTOMATIC,
        None,
        {"policy": "home" if record else "default", "steps": len(plan.steps), "rounds": plan.rounds},
    )
    escalate(session, alert, esc.Start(), Source.AUTOMATIC, None, tz)


def escalate(
    session: Session,
    alert: Alert,
    event: esc.Event,
    source: Source,
    actor: str | None,
    tz: ZoneInfo,
    now: datetime | None = None,
) -> bool:
    """Feed one event to the alert's escalation and carry out its actions; False if nothing changed."""
    loaded = load_escalation(session, alert.id)
    if loaded is None:
        return False
    row, plan, state = loaded
    new, actions = esc.advance(plan, state, now or steady_now(), event)
    if new == state and not actions:
        return False
    for action in actions:
        _carry_out(session, alert, plan, action, source, actor, tz)
    row.state, row.phase, row.next_at = new.model_dump(mode="json"), new.phase.value, new.deadline
    return True


def bring_in_deadlines(session: Session, now: datetime) -> int:
    """At start-up: bring in each deadline set before the wall clock was stepped back (escalation.bounded)."""
    moved = 0
    for row in session.scalars(select(Escalation).where(Escalation.next_at > now)).all():
        plan, state = esc.Plan.model_validate(row.plan), esc.State.model_validate(row.state)
        new = esc.bounded(plan, state, now)
        if new != state:
            row.state, row.next_at = new.model_dump(mode="json"), new.deadline
            _audit(session, row.alert_id, "deadline_brought_in", Source.AUTOMATIC, None, {"was": str(state.deadline)})
            moved += 1
    return moved


def load_escalation(session: Session, alert_id: int) -> tuple[Escalation, esc.Plan, esc.State] | None:
    row = session.get(Escalation, alert_id, with_for_update=True, populate_existing=True)
    if row is None:
        return None
    return row, esc.Plan.model_validate(row.plan), esc.State.model_validate(row.state)


def _carry_out(
    session: Session, alert: Alert, plan: esc.Plan, action: esc.Action, source: Source, actor: str | None, tz: ZoneInfo
) -> None:
    match action:
        case esc.Notify():
            contact = plan.contacts[action.responder]
            home = session.get_one(Home, alert.home_id)
            text = _alert_text(alert, home)
            if action.channel == esc.Channel.VOICE:
                body = voice_text(text, contact.language, tz)
            else:
                body = f"{sms_body(text, contact.language, tz)} {REPLY_HINT[contact.language]}"
            notification = Notification(
                alert_id=alert.id,
                responder_id=contact.id if session.get(Responder, contact.id) else None,
                channel=action.channel.value,
                recipient=contact.phone,
                language=contact.language,
                body=body,
                round=action.round,
                step=action.step,
            )
            session.add(notification)
            session.flush()
            _audit(
                session,
                alert.id,
                f"{action.channel.value}_queued",
                Source.AUTOMATIC,
                None,
                {"notification_id": notification.id, "round": action.round, "step": action.step},
            )
        case esc.PageOperators():
            _audit(session, alert.id, "operators_paged", Source.AUTOMATIC, None, {"reason": action.reason})
        case esc.CancelQueued():
            result = session.execute(
                update(Notification)
                .where(Notification.alert_id == alert.id, Notification.status == NotificationStatus.PENDING)
                .values(status=NotificationStatus.CANCELLED)
            )
            if cancelled := getattr(result, "rowcount", 0):
                _audit(session, alert.id, "queued_cancelled", source, actor, {"count": cancelled})
        case esc.Moved():
            _audit(
                session,
                alert.id,
                "escalated",
                source,
                actor,
                {"round": action.round, "step": action.step, "reason": action.reason, "quiet": list(action.quiet)},
            )


def contact_key(session: Session, notification: Notification) -> int | None:
    """The plan's key for the responder a notification went to (the registry may have changed since)."""
    loaded = load_escalation(session, notification.alert_id)
    contacts = loaded[1].contacts.items() if loaded else ()
    return next((key for key, c in contacts if c.phone == notification.recipient), None)


def record_status(
    session: Session, notification: Notification, status: str, error_code: str | None, verdict: Verdict
) -> None:
    """A Twilio status callback; a repeated one (Twilio retries) is recorded once."""
    if notification.provider_status == status:
        return
    notification.provider_status = status[:20]
    if verdict != Verdict.PROGRESS:
        _audit(
            session,
            notification.alert_id,
            f"{notification.channel}_{status}"[:40],
            Source.AUTOMATIC,
            None,
            {"notification_id": notification.id, "error_code": error_code},
        )


class Replayed(Exception):
    """A Twilio callback that was already acted on: its transaction is rolled back and nothing happens."""


def record_receipt(session: Session, key: str | None) -> None:
    """Note a Twilio callback as acted on, in the transaction of its effect; raise Replayed if it was already."""
    if key is None:
        return
    if session.get(WebhookReceipt, key) is not None:
        raise Replayed(key)
    session.add(WebhookReceipt(key=key))
    try:
        session.flush()
    except IntegrityError as exc:  # the same callback twice at once: the other request recorded it first
        raise Replayed(key) from exc


def channel_ended(session: Session, notification: Notification, *, permanent: bool, tz: ZoneInfo) -> bool:
    """A message or call went unanswered or failed: the escalation may move on at once."""
    if notification.round is None or notification.step is None:
        return False
    key = contact_key(session, notification)
    if key is None:
        return False
    event = esc.ChannelEnded(
        responder=key,
        channel=esc.Channel(notification.channel),
        round=notification.round,
        step=notification.step,
        permanent=permanent,
    )
    return escalate(session, notification.alert, event, Source.AUTOMATIC, None, tz)


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


# Acknowledging, arriving and closing never send a message, so no local time is written with it.
_NO_TEXT = ZoneInfo("UTC")


def acknowledge(
    session: Session,
    alert: Alert,
    actor: str,
    source: Source,
    responder: int | None = None,
) -> bool:
    """Idempotent: a second acknowledgement changes nothing and says so. It stops the escalation."""
    if alert.status != AlertStatus.OPEN:
        return False
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acked_at = utc_now()
    alert.acked_by = actor
    alert.ack_source = source.value
    _audit(session, alert.id, "acknowledged", source, actor, {"responder": responder})
    escalate(session, alert, esc.Acked(responder=responder), source, actor, _NO_TEXT)
    return True


def confirm_arrival(session: Session, alert: Alert, actor: str, source: Source, responder: int | None = None) -> bool:
    """Someone is with the resident; arriving unannounced also counts as taking the alert."""
    if alert.arrived_at is not None or alert.status == AlertStatus.RESOLVED:
        return False
    acknowledge(session, alert, actor, source, responder)
    alert.arrived_at = utc_now()
    alert.arrived_by = actor
    _audit(session, alert.id, "arrived", source, actor, {"responder": responder})
    escalate(session, alert, esc.Arrived(responder=responder), source, actor, _NO_TEXT)
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
    escalate(session, alert, esc.Closed(), source, actor, _NO_TEXT)
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
        alert = notification.alert
        if alert.first_notified_at is None:
            alert.first_notified_at = at
    _audit(
        session,
        notification.alert_id,
        f"{notification.channel}_{status}",
        Source.AUTOMATIC,
        None,
        {"notification_id": notification.id, "sid": sid, "error": error},
    )
