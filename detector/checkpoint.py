"""The detector's state on disk: one pickle, written by a forked child while the service goes on.

Pickling 100k homes' state takes about 10 s (`python -m benchmarks.checkpoint`). Written by the
service itself it would hold the detector's lock that long, and every SOS would wait behind it.
A forked child sees the state as it was at the fork (copy-on-write) and writes that, the way
Redis's BGSAVE does; the service stops only for the fork (about 60 ms at 100k homes). While the
child writes, the pages the service changes are copied, so memory can grow by up to the state's
size.

The file is a stream of pickles: the engine with its per-device and per-home maps empty, then
the maps in chunks. Loading one pickle of the whole state kept every object it built on the way
(each array's bytes, each object's state) until the end, and a restored detector took twice the
memory of one that had built the same state reading by reading (docs/performance.md).
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any, NoReturn

from prometheus_client import Counter, Gauge, Histogram

from carebed import service
from detector.core import DetectorCore

log = logging.getLogger(__name__)

# Version 4: per-home meters (trickle, interval, schedules) and per-device reporting intervals. Earlier
# versions (2: the whole engine in one pickle, 3: chunked) hold state of another shape and are ignored:
# the detector learns afresh, with the fixed floors on from the first reading.
CHECKPOINT_VERSION = 4
# Devices or homes per pickle: enough that each pickle's class references cost little.
CHUNK_ITEMS = 256
WRITE_SECONDS = Histogram(
    "carebed_detector_checkpoint_seconds",
    "From fork to a checkpoint's child having written it",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 40, 80),
)
FORK_SECONDS = Histogram(
    "carebed_detector_checkpoint_fork_seconds",
    "How long the detector stopped to fork a checkpoint's child",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5),
)
FAILURES = Counter("carebed_detector_checkpoint_failures_total", "Checkpoints whose child did not write them")
LAST_WRITTEN = Gauge("carebed_detector_checkpoint_written_timestamp_seconds", "When the last checkpoint was written")


class Checkpoints:
    """One checkpoint file and a thread that has a child write it every `every_s` seconds, or when asked.

    `state_lock` guards the engine: the fork happens under it, so each child writes a whole state.
    The thread and its children run `bulk_nice` levels below the service (Settings.bulk_nice).
    """

    def __init__(self, path: Path, every_s: float, state_lock: threading.Lock, bulk_nice: int = 0) -> None:
        self.path = path
        self.every_s = every_s
        self.bulk_nice = bulk_nice
        self._state_lock = state_lock
        self._engine: DetectorCore | None = None
        self._changed = threading.Condition()
        self._forked = 0
        self._written = 0
        self._requested = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        # A child of an earlier run may have left its file half written; one still writing fails
        # its rename instead of replacing a newer checkpoint.
        for leftover in path.parent.glob(f"{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def restore(self) -> DetectorCore | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as f, service.collector_paused():
            engine = _load_state(f)
        if not isinstance(engine, DetectorCore):
            log.warning("checkpoint of another version ignored", extra={"path": str(self.path)})
            return None
        log.info("state restored", extra={"devices": len(engine.rules.devices), "homes": len(engine.patterns.homes)})
        return engine

    def start(self, engine: DetectorCore) -> None:
        self._engine = engine
        self._thread.start()

    def request(self) -> int:
        """Ask for a checkpoint of the state as it is now; call it holding the state lock.

        Returns the number of the fork that will include the change just made: any fork from
        that one on does, since forks happen under the same lock.
        """
        with self._changed:
            self._requested = self._forked + 1
            self._changed.notify_all()
            return self._requested

    def wait_written(self, fork: int, timeout_s: float) -> bool:
        """Until that fork's checkpoint (or a later one) is on disk."""
        with self._changed:
            return self._changed.wait_for(lambda: self._written >= fork, timeout_s)

    def stop_and_write(self) -> None:
        """Wait for a child still writing, then write the final state here: nothing else needs the lock now."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self._engine is not None:
            with self._state_lock:
                write_checkpoint(self.path, self._engine)
            LAST_WRITTEN.set_to_current_time()

    def _run(self) -> None:
        """At bulk priority, the forks included: at 100k homes the kernel copies a 5 GB process's page
        tables for each, 127 ms on one of the two cores, which the SOS path's threads then preempt."""
        assert self._engine is not None
        service.deprioritise_thread(self.bulk_nice)
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or self._requested > self._forked, self.every_s)
                if self._stopping:
                    return
            try:
                self._checkpoint(self._engine)
            except OSError:
                FAILURES.inc()
                log.exception("checkpoint not started")

    def _checkpoint(self, engine: DetectorCore) -> None:
        with self._state_lock:
            forked_at = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _write_and_exit(self.path, engine)
            FORK_SECONDS.observe(time.monotonic() - forked_at)
            with self._changed:
                self._forked += 1
                fork = self._forked
        exit_code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        self._finished(fork, exit_code, time.monotonic() - forked_at)

    def _finished(self, fork: int, exit_code: int, seconds: float) -> None:
        if exit_code != 0:
            FAILURES.inc()
            log.error("checkpoint not written", extra={"exit_code": exit_code})
            return
        WRITE_SECONDS.observe(seconds)
        LAST_WRITTEN.set_to_current_time()
        log.info("checkpoint written", extra={"seconds": round(seconds, 2)})
        with self._changed:
            self._written = fork
            self._changed.notify_all()


def write_checkpoint(path: Path, engine: DetectorCore) -> None:
    """Atomically: a crash mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            _dump_state(engine, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _dump_state(engine: DetectorCore, f: IO[bytes]) -> None:
    skeleton = copy.copy(engine)
    skeleton.rules = copy.copy(engine.rules)
    skeleton.rules.devices = {}
    skeleton.patterns = copy.copy(engine.patterns)
    skeleton.patterns.homes = {}
    maps: tuple[dict[str, Any], ...] = (engine.rules.devices, engine.patterns.homes)
    chunk_counts = [-(-len(items) // CHUNK_ITEMS) for items in maps]
    pickle.dump((CHECKPOINT_VERSION, skeleton, *chunk_counts), f, protocol=pickle.HIGHEST_PROTOCOL)
    for items in maps:
        for chunk in _chunks(items):
            pickle.dump(chunk, f, protocol=pickle.HIGHEST_PROTOCOL)


def _chunks(items: dict[str, Any]) -> Iterator[dict[str, Any]]:
    entries = iter(items.items())
    while chunk := dict(islice(entries, CHUNK_ITEMS)):
        yield chunk


def _load_state(f: IO[bytes]) -> object:
    """The engine, or None for a file of another version. Each chunk's pickle lets go of what it built on the way."""
    version, engine, *chunk_counts = pickle.load(f)
    if version != CHECKPOINT_VERSION or not isinstance(engine, DetectorCore):
        return None
    device_chunks, home_chunks = chunk_counts
    for _ in range(device_chunks):
        engine.rules.devices.update(pickle.load(f))
    for _ in range(home_chunks):
        engine.patterns.homes.update(pickle.load(f))
    return engine


def _write_and_exit(path: Path, engine: DetectorCore) -> NoReturn:
    """The child's whole life, at the forking thread's bulk priority. Other threads' locks were copied as they stood
    at the fork, so it touches nothing but its file and, if that fails, the log (whose locks Python re-creates)."""
    gc.disable()  # a collection would copy every page it touches
    exit_code = 1
    try:
        write_checkpoint(path, engine)
        exit_code = 0
    except BaseException:
        log.exception("checkpoint child failed")
    finally:
        os._exit(exit_code)
