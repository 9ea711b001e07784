"""Escalations keep time when the host's wall clock is stepped (issue 19, row 10).

The wall clock cannot be stepped on a shared machine, so the process's steady clock is built
over a wall clock and a monotonic clock the test steps and advances.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting import clock, store
from alerting import escalation as esc
from alerting.clock import SteadyClock
from alerting.escalator import Escalator
from alerting.models import Alert, AuditEntry, Notification, NotificationStatus
from alerting.outbox import MAX_BACKOFF_S, Dispatcher
from alerting.store import Source, acknowledge, ingest_finding
from alerting.twilio_client import DryRunSender, make_sender
from alerting.urgency import UrgentWork
from carebed.registry import RegistryFile
from carebed.schemas import FindingCode, utc_now
from carebed.settings import Settings
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM
from tests.support import TwilioRecorder
from tests.test_escalation_core import CRITICAL
from tests.test_escalator import Clock, open_sos, sent_to
from tests.test_store import TZ, finding


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_clock_ignores_a_step_back_follows_a_step_forward_and_never_runs_backwards() -> None:
    wall, mono = Clock(), Monotonic()
    clock = SteadyClock(wall, mono)
    start = clock()
    wall.advance(-3600)
    mono.advance(10)
    assert clock() == start + timedelta(seconds=10)
    wall.advance(7200)  # now an hour ahead of where it started: followed at once
    assert clock() == start + timedelta(seconds=3600)
    readings = []
    for step in (-5, 1, -600, 2):
        wall.advance(step)
        mono.advance(1)
        readings.append(clock())
    assert readings == sorted(readings)
    assert readings[-1] == start + timedelta(seconds=3604)


def escalations_ticked(sessions: sessionmaker[Session], clock: Clock | SteadyClock) -> int:
    return Escalator(sessions, TZ, on_change=lambda: None, clock=clock).tick_due()


def test_with_the_wall_clock_stepped_back_an_hour_four_due_escalations_tick_on_time(
    sessions: sessionmaker[Session], homes: RegistryFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall, mono = Clock(), Monotonic()
    steady = SteadyClock(wall, mono)
    monkeypatch.setattr(store, "steady_now", steady)  # the process's clock, over a wall clock the test steps
    alert_ids = []
    for home in homes.homes:
        for code in (FindingCode.SOS, FindingCode.FALL):
            with sessions.begin() as session:
                alert_ids.append(ingest_finding(session, finding(home.id, code), TZ).alert_id)
    assert len(alert_ids) == 4

    wall.advance(-3600)  # the host's clock is stepped back an hour
    mono.advance(59)
    assert escalations_ticked(sessions, steady) == 0
    mono.advance(1)
    wall.advance(1)
    assert escalations_ticked(sessions, wall) == 0  # what a wall-clock escalator saw: nothing due for an hour
    assert escalations_ticked(sessions, steady) == 4  # the first responders' minute has passed
    assert all([step for _, _, step in sent_to(sessions, a)] == [0, 0, 1, 1] for a in alert_ids)

    # An hour on, the arrival deadline an acknowledgement sets counts on the same clock: not a minute early.
    mono.advance(3600)
    wall.advance(3600)
    with sessions.begin() as session:
        assert acknowledge(session, session.get_one(Alert, alert_ids[0]), "responder:1", Source.KEY_PRESS)
    mono.advance(29 * 60)
    escalations_ticked(sessions, steady)
    assert arrival_pages(sessions, alert_ids[0]) == 0
    mono.advance(60)
    escalations_ticked(sessions, steady)
    assert arrival_pages(sessions, alert_ids[0]) == 1


def arrival_pages(sessions: sessionmaker[Session], alert_id: int | None) -> int:
    with sessions() as session:
        paged = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.alert_id == alert_id, AuditEntry.action == "operators_paged")
        ).all()
    return paged.count({"reason": "arrival_overdue"})


def test_the_service_times_escalations_and_retries_on_the_steady_clock() -> None:
    """The escalator and the outbox the service builds default to the process's clock, as do the store's steps."""
    for runner in (Escalator, Dispatcher):
        assert inspect.signature(runner).parameters["clock"].default is clock.steady_now
    assert store.steady_now is clock.steady_now


def test_a_retry_after_a_twilio_outage_is_not_held_back_by_the_wall_clock_stepped_back(
    sessions: sessionmaker[Session], homes: RegistryFile, twilio: TwilioRecorder, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=TWILIO_FROM,
        twilio_api_base=twilio.url,
    )
    with sessions.begin() as session:
        alert_id = ingest_finding(session, finding(homes.homes[0].id), TZ).alert_id  # an SMS and a call queued
    wall, mono = Clock(), Monotonic()
    steady = SteadyClock(wall, mono)
    outbox = Dispatcher(sessions, make_sender(settings), lambda: None, TZ, UrgentWork(), clock=steady)

    twilio.fail_next(6, 500, 20500)  # Twilio is down (each send tries three times): both are retried in 2 s
    assert outbox.dispatch_due() == 2
    wall.advance(-3600)
    mono.advance(1)
    assert outbox.dispatch_due() == 0
    mono.advance(1)
    wall.advance(1)
    assert Dispatcher(sessions, make_sender(settings), lambda: None, TZ, UrgentWork(), clock=wall).dispatch_due() == 0
    assert outbox.dispatch_due() == 2
    with sessions() as session:
        statuses = session.scalars(select(Notification.status).where(Notification.alert_id == alert_id)).all()
    assert statuses == [NotificationStatus.SENT, NotificationStatus.SENT]


def test_a_restarted_outbox_brings_in_retries_set_before_the_wall_clock_went_back(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    open_sos(sessions, homes.homes[0].id)
    wall = Clock()
    wall.advance(-3600)  # stepped back while the service was down, after retries were set by the old clock
    with sessions.begin() as session:
        session.execute(update(Notification).values(next_attempt_at=utc_now() + timedelta(seconds=8)))
    outbox = Dispatcher(sessions, DryRunSender(), lambda: None, TZ, UrgentWork(), clock=wall)
    assert outbox.resume() == 2
    assert outbox.resume() == 0
    wall.advance(MAX_BACKOFF_S - 1)
    assert outbox.dispatch_due() == 0
    wall.advance(1)
    assert outbox.dispatch_due() == 2


def test_a_restart_after_the_wall_clock_went_back_an_hour_waits_at_most_one_step(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    """What the steady clock cannot see, the restarted escalator bounds: no deadline beyond its step's own wait."""
    alert_id = open_sos(sessions, homes.homes[0].id)  # the first responder's minute runs from now
    wall = Clock()
    wall.advance(-3600)  # stepped back while the service was down
    restarted = Escalator(sessions, TZ, on_change=lambda: None, clock=wall)
    assert restarted.resume() == 1
    assert restarted.resume() == 0
    wall.advance(59)
    assert restarted.tick_due() == 0
    wall.advance(1)
    assert restarted.tick_due() == 1
    assert [step for _, _, step in sent_to(sessions, alert_id)] == [0, 0, 1, 1]


def test_a_deadline_is_brought_in_to_its_own_phase_s_wait_and_no_nearer() -> None:
    start = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    late = start + timedelta(hours=1)  # the time the deadlines were set by, an hour ahead of the clock now
    notifying, _ = esc.advance(CRITICAL, esc.State(), late, esc.Start())
    acked, _ = esc.advance(CRITICAL, notifying, late, esc.Acked(responder=11))
    assert esc.bounded(CRITICAL, notifying, start).deadline == start + timedelta(seconds=60)
    assert esc.bounded(CRITICAL, acked, start).deadline == start + timedelta(seconds=CRITICAL.arrival_s)
    assert esc.bounded(CRITICAL, acked, late) == acked  # set by this clock: left alone
