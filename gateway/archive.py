"""Telemetry archive: readings to InfluxDB in batches, spooled to disk while InfluxDB is away.

Ingest never waits for InfluxDB: `add` only appends to a bounded in-memory batch. A writer
thread sends a batch every `flush_s` (or when it is full); a batch that fails is written to
the spool folder as line protocol and replayed, oldest first, once InfluxDB answers again.
Should the in-memory batch fill up faster than it drains, it goes to the spool at once.
A gateway crash can lose at most the current in-memory batch of archive points (never an
alert: the archive is off the alert path).

The gateway's processes (one per lane, gateway/service.py) share the spool folder: any of them
replays any file, each under an exclusive lock, so a batch is sent once whoever spooled it, and a
writer that dies mid-replay leaves its file to the others.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from prometheus_client import Counter, Gauge

from carebed.schemas import Reading

log = logging.getLogger(__name__)

POINTS = Counter("carebed_archive_points_total", "Archive points, by outcome", ["outcome"])
SPOOLED_FILES = Gauge("carebed_archive_spool_files", "Batches waiting on disk for InfluxDB")

MEASUREMENT = "reading"
_TAGS = ("home_id", "device_id", "device_kind", "channel")
_SKIP = {*_TAGS, "ts", "received_at", "event"}


def to_line(reading: Reading) -> str:
    """One reading as one InfluxDB point: ids as tags, measured values as fields, device time."""
    point = Point(MEASUREMENT)
    for tag in _TAGS:
        point.tag(tag, str(getattr(reading, tag)))
    for name, value in reading.model_dump(exclude_none=True).items():
        if name not in _SKIP:
            point.field(name, float(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    if reading.event is not None:
        point.field("event", reading.event.value)
    point.time(int(reading.ts.timestamp() * 1_000_000_000), WritePrecision.NS)
    return str(point.to_line_protocol())


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    url: str
    token: str
    org: str
    bucket: str
    spool_dir: Path
    batch_size: int = 5000
    flush_s: float = 1.0
    retry_s: float = 5.0


class Archive:
    def __init__(self, config: ArchiveConfig) -> None:
        self.config = config
        config.spool_dir.mkdir(parents=True, exist_ok=True)
        self._client = InfluxDBClient(url=config.url, token=config.token, org=config.org, timeout=10_000)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._batch: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archive", daemon=True)
        SPOOLED_FILES.set_function(lambda: len(list(self._spooled())))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Flush what is in memory (to InfluxDB or the spool) before returning."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._client.close()

    def add(self, reading: Reading) -> None:
        line = to_line(reading)
        with self._lock:
            self._batch.append(line)
            full = len(self._batch) >= self.config.batch_size
            if len(self._batch) >= 4 * self.config.batch_size:
                # InfluxDB is slower than ingest: move the backlog to disk rather than grow without bound.
                self._spool(self._take())
        if full:
            self._wake.set()

    def _take(self) -> list[str]:
        batch, self._batch = self._batch, []
        return batch

    def _run(self) -> None:
        next_retry = 0.0
        while True:
            stopping = self._stopping.is_set()
            with self._lock:
                batch = self._take()
            if batch and not self._send(batch):
                self._spool(batch)
            if time.monotonic() >= next_retry and not self._replay_spool():
                next_retry = time.monotonic() + self.config.retry_s
            if stopping:
                return
            self._wake.wait(self.config.flush_s)
            self._wake.clear()

    def _send(self, lines: list[str]) -> bool:
        try:
            self._write.write(bucket=self.config.bucket, record="\n".join(lines))
        except Exception as exc:
            POINTS.labels("failed").inc(len(lines))
            log.warning("archive write failed", extra={"points": len(lines), "error": str(exc)[:200]})
            return False
        POINTS.labels("written").inc(len(lines))
        return True

    def _spool(self, lines: list[str]) -> None:
        # Oldest first by name; the random part keeps the processes sharing the folder apart.
        path = self.config.spool_dir / f"{time.time_ns():020d}-{secrets.token_hex(6)}.lp"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        POINTS.labels("spooled").inc(len(lines))

    def _spooled(self) -> Iterator[Path]:
        return iter(sorted(self.config.spool_dir.glob("*.lp")))

    def _replay_spool(self) -> bool:
        """Send spooled batches oldest first; stop at the first failure. True if the spool is empty."""
        for path in self._spooled():
            with _claim(path) as lines:
                if lines is None:
                    continue
                if not self._send(lines):
                    return False
                path.unlink()
                POINTS.labels("replayed").inc(len(lines))
        return True


@contextmanager
def _claim(path: Path) -> Iterator[list[str] | None]:
    """A spooled batch's lines, locked for the caller; None if another process is replaying it or has."""
    try:
        file = path.open(encoding="utf-8")
    except FileNotFoundError:
        yield None
        return
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        # Locked only after its replayer had unlinked it and let go.
        yield None if os.fstat(file.fileno()).st_nlink == 0 else file.read().splitlines()
