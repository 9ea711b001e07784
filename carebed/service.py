"""What every long-running carebed process shares: logging, signals, waiting for the database."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client import Histogram, start_http_server
from sqlalchemy.exc import OperationalError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from carebed import logs
from carebed.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)
# Each service runs an urgent thread (an event lane, the alert consumer, the outbox) beside bulk
# work (telemetry, the activity rollup). A thread that wants the GIL back after a socket call
# waits until the holder's switch interval ends: 5 ms by default, paid at every blocking call on
# an SOS's way through. 0.5 ms took SOS p99 under load from 44 to 27-32 ms (docs/performance.md).
GIL_SWITCH_INTERVAL_S = 0.0005
# A collection of the oldest generation stops the whole process, the urgent thread included.
LONG_GC_PAUSE_S = 0.02
# Nice value of the process as it started; bulk threads run relative to it (see deprioritise_thread).
_BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0)
GC_PAUSES = Histogram(
    "carebed_gc_pause_seconds",
    "Garbage-collection pauses, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def start(service: str, settings: Settings, metrics_port: int | None) -> threading.Event:
    """Configure logs and metrics; return an event that is set on SIGTERM or SIGINT."""
    logs.configure(service, settings)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.callbacks.append(_time_collections())
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.http_host)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


def ready() -> None:
    """Freeze what start-up built (modules, schemas, the registry), so full collections skip it.

    A service starts with a few hundred thousand long-lived objects, and every full collection
    scanned them all: pauses of 40-100 ms under load, each one an SOS could wait behind
    (docs/performance.md). Frozen objects are still freed when nothing refers to them.
    """
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in here: for a short stretch that must not pause, or that builds many objects at once.

    Loading a checkpoint builds millions of objects, and each of the full collections they trigger
    scans all that were built so far: 16 of them, 83 ms growing to 1.4 s, while a detector loaded
    100k homes (docs/performance.md, change 18).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def deprioritise_thread(nice_levels: int) -> None:
    """Run the calling thread (and threads and processes it starts later) `nice_levels` below the service.

    Bulk work (telemetry lanes, the activity rollup, checkpoint writers) shares two cores with the
    threads an SOS passes through, and under load those waited 5-22 times longer for a core than
    when idle (docs/performance.md). Linux keeps a nice value per thread, and making one's own
    nicer needs no privilege. Calling it again changes nothing: the level is relative to the nice
    value the process started with.
    """
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, _BASE_NICE + nice_levels))


def _time_collections() -> Callable[[str, dict[str, int]], None]:
    started = 0.0

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        pause = time.perf_counter() - started
        GC_PAUSES.labels(str(info["generation"])).observe(pause)
        if pause >= LONG_GC_PAUSE_S:
            log.warning(
                "long garbage-collection pause",
                extra={"generation": info["generation"], "pause_ms": round(pause * 1000, 1)},
            )

    return callback


def wait_for_database(read: Callable[[], T], timeout_s: float = 60.0) -> T:
    """Retry a first read while the schema is being created by the alerting service."""
    reader = retry(
        retry=retry_if_exception_type(OperationalError),
        wait=wait_exponential(multiplier=0.2, max=2),
        stop=stop_after_delay(timeout_s),
        before_sleep=lambda state: log.info("waiting for the database", extra={"attempt": state.attempt_number}),
        reraise=True,
    )(read)
    return reader()
