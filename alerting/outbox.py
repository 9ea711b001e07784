"""The durable outbox: a crash or a Twilio outage delays a message, never loses or doubles it.

A row is claimed (status 'sending', committed) before Twilio is called, and marked sent after.
A row found still 'sending' at start-up is in doubt: Twilio is asked whether it went out, and
it is sent again only if it did not. Retry times follow the process's steady clock
(alerting/clock.py), so a wall clock stepped back does not hold a retry back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Histogram
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.clock import steady_now
from alerting.models import Notification, NotificationStatus
from alerting.store import LATENCY_BUCKETS, channel_ended, record_delivery
from alerting.twilio_client import SendError, SmsSender
from alerting.urgency import UrgentWork
from carebed.schemas import utc_now

log = logging.getLogger(__name__)

DISPATCHED = Counter("carebed_alerting_notifications_total", "Notifications dispatched, by result", ["result"])
DISPATCH_LATENCY = Histogram(
    "carebed_alerting_dispatch_seconds",
    "From a notification being queued to Twilio accepting it",
    buckets=LATENCY_BUCKETS,
)
TWILIO_ERRORS = Counter("carebed_alerting_twilio_errors_total", "Failed Twilio requests, by kind", ["kind"])
MAX_BACKOFF_S = 300.0
BATCH = 20
IN_DOUBT_AFTER = timedelta(minutes=2)  # well past the HTTP timeout of a Twilio request


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: SmsSender,
        on_change: Callable[[], None],
        tz: ZoneInfo,
        urgent: UrgentWork,
        public_url: str | None = None,
        poll_s: float = 1.0,
        clock: Callable[[], datetime] = steady_now,
    ) -> None:
        self._clock = clock
        self._sessions = sessions
        self._urgent = urgent
        self._tz = tz
        self._public_url = public_url
        self._on_change = on_change
        self._sender = sender
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self.resume()
        self._recover_in_doubt(stale_after=timedelta(0))
        self._thread.start()

    def resume(self) -> int:
        """Bring in retry times beyond the longest backoff: the wall clock went back while the service was down."""
        latest = self._clock() + timedelta(seconds=MAX_BACKOFF_S)
        with self._sessions.begin() as session:
            result = session.execute(
                update(Notification)
                .where(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at > latest)
                .values(next_attempt_at=latest)
            )
            return int(getattr(result, "rowcount", 0))

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        """Called after a commit that queued messages, so they go out without waiting for the poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._recover_in_doubt(stale_after=IN_DOUBT_AFTER)
                worked = self.dispatch_due()
            except Exception:
                log.exception("outbox pass failed")
                worked = 0
            if worked < BATCH:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def dispatch_due(self) -> int:
        """Send every due message once; return how many were attempted."""
        with self._sessions() as session:
            due = session.scalars(
                select(Notification.id)
                .where(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= self._clock())
                .order_by(Notification.id)
                .limit(BATCH)
            ).all()
        attempted = 0
        for notification_id in due:
            self._urgent.note()
            if self._claim(notification_id):
                self._send(notification_id)
                attempted += 1
        return attempted

    def _claim(self, notification_id: int) -> bool:
        """Mark the row 'sending'; only one dispatcher can win it."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Notification)
                .where(Notification.id == notification_id, Notification.status == NotificationStatus.PENDING)
                .values(
                    status=NotificationStatus.SENDING,
                    claimed_at=utc_now(),
                    attempts=Notification.attempts + 1,
                )
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def _send(self, notification_id: int) -> None:
        with self._sessions() as session:
            notification = session.get_one(Notification, notification_id)
            to, body, channel, language = (
                notification.recipient,
                notification.body,
                notification.channel,
                notification.language,
            )
        hooks = self._public_url and f"{self._public_url}/twilio"
        status_callback = hooks and f"{hooks}/status/{notification_id}"
        try:
            if channel == "voice":
                voice_url = hooks and f"{hooks}/voice/{notification_id}"
                sent = self._sender.call(to, body, language, voice_url or None, status_callback or None)
            else:
                sent = self._sender.send_sms(to, body, status_callback or None)
        except SendError as exc:
            self._failed(notification_id, str(exc), transient=exc.transient)
            return
        status = NotificationStatus.DRY_RUN if self._sender.dry_run else NotificationStatus.SENT
        with self._sessions.begin() as session:
            notification = session.get_one(Notification, notification_id)
            notification.provider_status = sent.status
            record_delivery(session, notification, status=status, sid=sent.sid, error=None, at=utc_now())
            DISPATCH_LATENCY.observe((utc_now() - notification.created_at).total_seconds())
        self._urgent.note()
        self._on_change()
        DISPATCHED.labels(status.value).inc()
        log.info(
            "message dispatched", extra={"notification_id": notification_id, "channel": channel, "status": status.value}
        )

    def _failed(self, notification_id: int, error: str, *, transient: bool) -> None:
        TWILIO_ERRORS.labels("transient" if transient else "permanent").inc()
        with self._sessions.begin() as session:
            notification = session.get_one(Notification, notification_id)
            if transient:
                delay = min(2.0**notification.attempts, MAX_BACKOFF_S)
                notification.status = NotificationStatus.PENDING
                notification.next_attempt_at = self._clock() + timedelta(seconds=delay)
                notification.last_error = error
            else:
                record_delivery(
                    session, notification, status=NotificationStatus.FAILED, sid=None, error=error, at=utc_now()
                )
                channel_ended(session, notification, permanent=True, tz=self._tz)
                self._wake.set()  # the next responder's messages were queued just now
        self._on_change()
        DISPATCHED.labels("retry" if transient else "failed").inc()
        log.warning(
            "message not sent", extra={"notification_id": notification_id, "transient": transient, "error": error}
        )

    def _recover_in_doubt(self, stale_after: timedelta) -> None:
        with self._sessions() as session:
            in_doubt = session.scalars(
                select(Notification).where(
                    Notification.status == NotificationStatus.SENDING,
                    Notification.claimed_at <= utc_now() - stale_after,
                )
            ).all()
        for notification in in_doubt:
            try:
                found = self._sender.find_sent(
                    notification.recipient,
                    notification.body,
                    notification.claimed_at or notification.created_at,
                    notification.channel,
                )
            except SendError as exc:
                log.warning(
                    "in-doubt message kept for later", extra={"notification_id": notification.id, "error": str(exc)}
                )
                continue
            with self._sessions.begin() as session:
                row = session.get_one(Notification, notification.id)
                if found is not None:
                    record_delivery(
                        session, row, status=NotificationStatus.SENT, sid=found.sid, error=None, at=utc_now()
                    )
                else:
                    row.status = NotificationStatus.PENDING
            log.info(
                "in-doubt message settled", extra={"notification_id": notification.id, "was_sent": found is not None}
            )
