"""What every long-running carebed process shares: logging, signals, waiting for the database."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import secrets
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from carebed import logs
from carebed.settings import Settings

if TYPE_CHECKING:
    from wsgiref.types import StartResponse

T = TypeVar("T")
log = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
METRICS_REFUSED = b"metrics are served to loopback, or with the bearer token of CAREBED_METRICS_TOKEN\n"
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
    private_files()
    logs.configure(service, settings)
    keep_private(settings.data_dir)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.callbacks.append(_time_collections())
    if metrics_port is not None:
        serve_metrics(metrics_port, settings)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


def private_files() -> None:
    """Files this process creates are its user's alone (0600, folders 0700): the database, logs,
    checkpoints and broker files hold names, phone numbers and door codes."""
    os.umask(PRIVATE_UMASK)


def keep_private(data_dir: Path) -> None:
    """Take group and other access off the data folder and anything in it, as an older version left it."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    opened = 0
    for folder, _, files in os.walk(data_dir):
        for path in (Path(folder), *(Path(folder) / name for name in files)):
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            path.chmod(stat.S_IMODE(mode) & ~0o077)
            opened += 1
    if opened:
        log.warning("data files were readable by other users; made private", extra={"paths": opened})


def metrics_allowed(address: str, authorization: str, token: SecretStr | None) -> bool:
    """Metrics go to loopback (Prometheus beside the service), or to anyone with the bearer token."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return True
    except ValueError:
        pass
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None
    return expected is not None and secrets.compare_digest(authorization.encode(), expected)


def serve_metrics(port: int, settings: Settings) -> None:
    """Prometheus metrics on their own port, behind :func:`metrics_allowed`."""
    metrics = make_wsgi_app()

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if metrics_allowed(
            environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", ""), settings.metrics_token
        ):
            return metrics(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [METRICS_REFUSED]

    server = make_server(settings.http_host, port, guarded, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the service's own log."""


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
