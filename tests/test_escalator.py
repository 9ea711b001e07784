"""Escalations stored in real SQLite and PostgreSQL, driven by the runner with a controllable clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.escalator import Escalator
from alerting.models import Alert, AuditEntry, EscalationPolicyRecord, Notification, NotificationStatus
from alerting.store import Source, acknowledge, channel_ended, ingest_finding
from carebed.registry import Home, RegistryFile
from carebed.schemas import FindingCode, Severity, utc_now
from tests.test_store import TZ, finding


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def escalator(sessions: sessionmaker[Session], clock: Clock) -> Escalator:
    """A fresh runner, as after a restart; it is never started, the test ticks it."""
    return Escalator(sessions, TZ, on_change=lambda: None, clock=clock)


def sent_to(sessions: sessionmaker[Session], alert_id: int) -> list[tuple[str, str, int | None]]:
    with sessions() as session:
        rows = session.scalars(
            select(Notification)
            .where(Notification.alert_id == alert_id, Notification.status != NotificationStatus.CANCELLED)
            .order_by(Notification.id)
        )
        return [(n.recipient, n.channel, n.step) for n in rows]


def open_sos(sessions: sessionmaker[Session], home_id: str) -> int:
    with sessions.begin() as session:
        alert_id = ingest_finding(session, finding(home_id), TZ).alert_id
    assert alert_id is not None
    return alert_id


def test_no_acknowledgement_moves_to_the_next_responder_after_the_wait_and_a_restart_resumes(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[0]
    first, second = home.responders[0].phone, home.responders[1].phone
    alert_id = open_sos(sessions, home.id)
    clock = Clock()  # started after the alert: the policy's wait counts from the alert's start
    assert sent_to(sessions, alert_id) == [(first, "sms", 0), (first, "voice", 0)]

    clock.advance(59)
    assert escalator(sessions, clock).tick_due() == 0
    clock.advance(1)
    assert escalator(sessions, clock).tick_due() == 1
    assert sent_to(sessions, alert_id)[2:] == [(second, "sms", 1), (second, "voice", 1)]

    restarted = escalator(sessions, clock)  # the same moment, seen by a new process: nothing twice
    assert restarted.tick_due() == 0
    assert len(sent_to(sessions, alert_id)) == 4


def test_an_acknowledgement_stops_the_escalation_and_cancels_what_is_queued(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[1]
    alert_id = open_sos(sessions, home.id)
    clock = Clock()
    with sessions.begin() as session:
        assert acknowledge(session, session.get_one(Alert, alert_id), "responder:1", Source.KEY_PRESS)
    for _ in range(31):
        clock.advance(60)
        escalator(sessions, clock).tick_due()
    assert sent_to(sessions, alert_id) == []  # both first messages were still queued: cancelled
    with sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.alert_id == alert_id)).all()
    assert "operators_paged" in actions and actions[-1] == "operators_paged"  # arrival overdue after 30 min


def test_a_permanent_failure_moves_on_at_once(sessions: sessionmaker[Session], homes: RegistryFile) -> None:
    home = homes.homes[0]
    alert_id = open_sos(sessions, home.id)
    with sessions.begin() as session:
        call = session.scalars(
            select(Notification).where(Notification.alert_id == alert_id, Notification.channel == "voice")
        ).one()
        assert channel_ended(session, call, permanent=True, tz=TZ)
        assert not channel_ended(session, call, permanent=True, tz=TZ)  # repeated: no change
    assert [(r, c) for r, c, step in sent_to(sessions, alert_id) if step == 1] == [
        (home.responders[1].phone, "sms"),
        (home.responders[1].phone, "voice"),
    ]


def test_the_policy_is_copied_onto_the_alert(sessions: sessionmaker[Session], homes: RegistryFile) -> None:
    """A home's own policy applies to new alerts; an edit after the start does not change one in flight."""
    home = homes.homes[0]
    neighbour_first = {"steps": [{"targets": ["responder:1"], "channels": ["sms"], "wait_s": 30}], "rounds": 1}
    with sessions.begin() as session:
        session.add(EscalationPolicyRecord(home_id=home.id, severity="high", policy=neighbour_first, updated_by="test"))
    with sessions.begin() as session:
        leak = finding(home.id, FindingCode.WATER_LEAK, severity=Severity.HIGH)
        alert_id = ingest_finding(session, leak, TZ).alert_id
        assert alert_id is not None
    clock = Clock()
    assert sent_to(sessions, alert_id) == [(home.responders[1].phone, "sms", 0)]
    with sessions.begin() as session:
        record = session.get_one(EscalationPolicyRecord, (home.id, "high"))
        record.policy = {"steps": [{"targets": ["responder:0"], "wait_s": 5}], "rounds": 5}
        session.get_one(Home, home.id).responders[1].phone = "+8613900000000"
    clock.advance(30)
    escalator(sessions, clock).tick_due()
    assert len(sent_to(sessions, alert_id)) == 1  # one step, one round: exhausted, operators told
    with sessions() as session:
        paged = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.alert_id == alert_id, AuditEntry.action == "operators_paged")
        ).all()
    assert paged == [{"reason": "nobody_answered"}]
