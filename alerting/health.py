"""What the alerting service checks before it calls itself healthy: a database that commits, room on the
disk, its own lanes and the reports of every other process's lanes (carebed/health.py)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import Alert
from carebed.schemas import utc_now

REPROBE_AFTER_S = 1.0
_UPSERT = text("INSERT INTO health_probe (id, at) VALUES (1, :at) ON CONFLICT (id) DO UPDATE SET at = excluded.at")


class CommitProbe:
    """Commits one small write, and says so if that takes longer than the timeout.

    A probe runs in a thread of its own and only one at a time: a database locked for minutes
    holds one probe, which every health request in the meantime waits on, rather than one
    thread per request.
    """

    def __init__(self, sessions: sessionmaker[Session], timeout_s: float) -> None:
        self._sessions = sessions
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit-probe")
        self._pending: Future[None] | None = None
        self._started = 0.0
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        with self._lock:
            # A finished probe stands for a second: health needs no login, and a flood of requests
            # must not become a flood of commits contending with the alerts' own.
            if self._pending is None or (self._pending.done() and time.monotonic() - self._started > REPROBE_AFTER_S):
                self._pending = self._executor.submit(self._commit)
                self._started = time.monotonic()
            pending, started = self._pending, self._started
        try:
            pending.result(max(0.0, started + self._timeout_s - time.monotonic()))
        except FutureTimeout:
            return f"database: a commit has not finished after {time.monotonic() - started:.1f} s"
        except Exception as error:  # any failure to commit is the answer, not a crash
            return f"database: a commit failed ({type(error).__name__})"
        return None

    def _commit(self) -> None:
        with self._sessions.begin() as session:
            session.execute(_UPSERT, {"at": utc_now()})

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def disk_problem(data_dir: Path, min_free_pct: float) -> str | None:
    usage = shutil.disk_usage(data_dir)
    free_pct = 100.0 * usage.free / usage.total
    if free_pct < min_free_pct:
        return f"disk: {free_pct:.1f} % free where the data lives, below {min_free_pct:g} %"
    return None


def since_last_alert_s(sessions: sessionmaker[Session]) -> float | None:
    """Seconds since the newest alert was opened; None before the first. By id: the primary key's index
    answers at once, where created_at has none."""
    with sessions() as session:
        newest = session.scalar(select(Alert.created_at).order_by(Alert.id.desc()).limit(1))
    return (utc_now() - newest).total_seconds() if newest is not None else None


class LastAlertCollector(Collector):
    """Read at scrape time from the database, like the open-alert counts."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "carebed_alerting_since_last_alert_seconds", "Seconds since the newest alert was opened"
        )
        since = since_last_alert_s(self._sessions)
        if since is not None:
            gauge.add_metric([], since)
        yield gauge
