"""Runs escalations in time: each due escalation gets a tick in its own transaction.

The clock is a parameter, so tests can drive escalations through minutes of policy time
without waiting; in the service it is the process's steady clock (alerting/clock.py), so a wall
clock stepped back does not hold escalations back. A crash between ticks loses nothing: the
state and the messages a tick queued were committed together, and the next tick starts from
what is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from alerting import escalation as esc
from alerting.clock import steady_now
from alerting.models import Alert, Escalation
from alerting.store import Source, bring_in_deadlines, escalate

log = logging.getLogger(__name__)

T = TypeVar("T")

# Two writers raced for one escalation (a key press during a tick): the loser starts over.
_contended = retry(
    retry=retry_if_exception_type((StaleDataError, OperationalError)),
    wait=wait_random_exponential(multiplier=0.05, max=1),
    stop=stop_after_attempt(8),
    reraise=True,
)


@_contended
def transact(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction, again from the start if another writer changed the same rows."""
    with sessions.begin() as session:
        return work(session)


class Escalator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        tz: ZoneInfo,
        on_change: Callable[[], None],
        clock: Callable[[], datetime] = steady_now,
        poll_s: float = 0.25,
    ) -> None:
        self._sessions = sessions
        self._tz = tz
        self._on_change = on_change
        self._clock = clock
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalator", daemon=True)

    def start(self) -> None:
        self.resume()
        self._thread.start()

    def resume(self) -> int:
        """Bring in deadlines a wall clock stepped back while the service was down would hold; return how many."""
        now = self._clock()
        moved = transact(self._sessions, lambda session: bring_in_deadlines(session, now))
        if moved:
            log.warning("escalation deadlines brought in: the wall clock went back", extra={"count": moved})
        return moved

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick_due()
            except Exception:
                log.exception("escalation pass failed")
            self._stopping.wait(self._poll_s)

    def tick_due(self) -> int:
        """Tick every escalation whose deadline has passed; return how many changed."""
        now = self._clock()
        with self._sessions() as session:
            due = session.scalars(select(Escalation.alert_id).where(Escalation.next_at <= now)).all()
        changed = sum(transact(self._sessions, lambda s, a=alert_id: self._tick(s, a, now)) for alert_id in due)
        if changed:
            self._on_change()
        return changed

    def _tick(self, session: Session, alert_id: int, now: datetime) -> bool:
        alert = session.get_one(Alert, alert_id)
        moved = escalate(session, alert, esc.Tick(), Source.AUTOMATIC, None, self._tz, now)
        if moved:
            log.info("escalation ticked", extra={"alert_id": alert_id})
        return moved
