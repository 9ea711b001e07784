"""What every long-running carebed process shares: logging, signals, waiting for the database."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import start_http_server
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


def start(service: str, settings: Settings, metrics_port: int | None) -> threading.Event:
    """Configure logs and metrics; return an event that is set on SIGTERM or SIGINT."""
    logs.configure(service, settings.log_level)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.http_host)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


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
