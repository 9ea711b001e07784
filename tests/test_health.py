"""Health that tells the truth: real processes, a real broker and database, faults made for real.

Each fault the issue saw behind an "ok" (a stalled lane, a write-locked database, a full disk, a
process gone silent) must turn /api/v1/health degraded with a reason, and back to ok once it ends.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from carebed import topics
from carebed.health import HealthReporter
from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.registry import RegistryFile
from carebed.settings import Settings
from tests.conftest import alerting_url, login
from tests.support import ServiceProcess, publish_sos_finding, wait_for

pytestmark = pytest.mark.integration

FAST = {
    "CAREBED_HEALTH_REPORT_S": "0.5",
    "CAREBED_HEALTH_STALE_S": "3",
    "CAREBED_HEALTH_STALL_S": "2",
    "CAREBED_HEALTH_COMMIT_TIMEOUT_S": "1",
}
PIPELINE = ("alerting", "gateway-events", "gateway", "alarms", "detector")


def health(settings: Settings) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{alerting_url(settings)}/api/v1/health", timeout=5)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = answer.json()
    assert answer.status_code == (200 if body["status"] == "ok" else 503), body
    return body


def wait_health(settings: Settings, status: str, reason: str = "", timeout: float = 90) -> dict[str, Any]:
    """Until the health is `status` and, if given, one of its reasons contains `reason`."""

    def check() -> dict[str, Any] | None:
        body = health(settings)
        if body and body["status"] == status and (not reason or any(reason in r for r in body["reasons"])):
            return body
        return None

    try:
        return wait_for(check, timeout, f"health {status} {reason!r}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last: {health(settings)}") from None


def blocks_until(release: threading.Event) -> Callable[[Inbound], list[Outbound]]:
    """A handler that hangs until released, as one stuck in a call that never returns would."""

    def handler(message: Inbound) -> list[Outbound]:
        release.wait(60)
        return []

    return handler


@pytest.fixture
def pipeline(services: dict[str, ServiceProcess]) -> dict[str, ServiceProcess]:
    for name in PIPELINE:
        services[name].env.update(FAST)
        services[name].start()
    for name in PIPELINE[1:]:
        services[name].wait_logged("mqtt connected", 90)
    return services


def test_ok_in_normal_operation_and_degraded_while_a_process_is_silent(
    settings: Settings, registry: RegistryFile, pipeline: dict[str, ServiceProcess], device: MqttClient
) -> None:
    body = wait_for(
        lambda: (b := health(settings)) and b["status"] == "ok" and set(PIPELINE) <= set(b["lanes"]) and b,
        90,
        "every process reporting ok",
    )
    assert {lane["lane"] for lane in body["lanes"]["detector"]} == {
        "carebed-detector-events",
        "carebed-detector",
        "carebed-detector-feedback",
    }
    assert body["since_last_alert_s"] is None
    publish_sos_finding(device, registry.homes[0].id)
    wait_for(lambda: (b := health(settings)) and b["since_last_alert_s"] is not None, 60, "an alert to be opened")
    wait_health(settings, "ok")
    # Each process serves its own lanes' figures.
    metrics = httpx.get(f"http://127.0.0.1:{pipeline['gateway-events'].env['CAREBED_METRICS_PORT']}/metrics").text
    assert 'carebed_lane_oldest_unacked_seconds{lane="carebed-gateway-events"}' in metrics
    assert 'carebed_lane_since_processed_seconds{lane="carebed-gateway-events"}' in metrics
    assert "carebed_alerting_since_last_alert_seconds " in httpx.get(f"{alerting_url(settings)}/metrics").text

    # A hung process (here stopped by SIGSTOP) reports nothing: its last report goes stale.
    gateway_events = pipeline["gateway-events"].process
    assert gateway_events is not None
    gateway_events.send_signal(signal.SIGSTOP)
    try:
        wait_health(settings, "degraded", "gateway-events: no health report for")
    finally:
        gateway_events.send_signal(signal.SIGCONT)
    wait_health(settings, "ok")


@pytest.mark.parametrize(
    ("separate_publisher", "reason"),
    [
        # The lane's process reports by another connection (the detector's telemetry lane beside its
        # events lane): the report names the stalled lane.
        (True, "test-process: lane test-stalling-lane is stalled"),
        # A process of one lane (gateway-events, alarms) reports through that lane's connection, which
        # the blocked handler holds up too: the report goes stale, which counts as degraded.
        (False, "test-process: no health report for"),
    ],
)
def test_a_stalled_lane_in_another_process_turns_health_degraded(
    settings: Settings, services: dict[str, ServiceProcess], device: MqttClient, separate_publisher: bool, reason: str
) -> None:
    """The lane's handler blocks as a hung call would."""
    services["alerting"].env.update(FAST)
    services["alerting"].start()
    wait_health(settings, "ok")
    release = threading.Event()
    lane = MqttClient(settings, client_id="test-stalling-lane")
    lane.subscribe(f"{topics.PREFIX}/test/stall", blocks_until(release))
    clients = [MqttClient(settings, client_id="test-reporting-lane")] if separate_publisher else []
    clients.append(lane)
    for client in clients:
        client.start()
    reporter = HealthReporter("test-process", settings.model_copy(update={"health_report_s": 0.5}), clients)
    reporter.start()
    try:
        wait_health(settings, "ok")
        device.publish(Outbound(f"{topics.PREFIX}/test/stall", b"{}"))
        wait_health(settings, "degraded", reason)
        gauge = REGISTRY.get_sample_value("carebed_lane_oldest_unacked_seconds", {"lane": "test-stalling-lane"})
        assert gauge is not None and gauge > 2
        release.set()
        wait_health(settings, "ok")
    finally:
        release.set()
        reporter.stop()
        for client in clients:
            client.stop()
    # A clean stop clears the report: the process is gone, not silent.
    wait_for(lambda: (b := health(settings)) and "test-process" not in b["lanes"], 10, "the report to be cleared")


@pytest.fixture
def write_lock(settings: Settings) -> Iterator[sqlite3.Connection]:
    """Another connection that holds the database's write lock, as a long migration or a stuck writer would."""
    path = settings.data_dir / "carebed.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_a_write_locked_database_turns_health_degraded(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    device: MqttClient,
    write_lock: sqlite3.Connection,
) -> None:
    services["alerting"].env.update(FAST)
    services["alerting"].start()
    wait_health(settings, "ok")
    api = login(alerting_url(settings))
    write_lock.execute("BEGIN IMMEDIATE")
    body = wait_health(settings, "degraded", "database: a commit has not finished")
    assert body["database"] is False
    # A finding now blocks the alerting lane's handler, retrying its transaction: the lane stalls too.
    publish_sos_finding(device, registry.homes[0].id)
    wait_health(settings, "degraded", "alerting: lane carebed-alerting is stalled")
    write_lock.execute("ROLLBACK")
    wait_health(settings, "ok")
    assert wait_for(lambda: api.get("/api/v1/alerts").json(), 30, "the held-up alert") is not None


def test_a_nearly_full_disk_turns_health_degraded(settings: Settings, services: dict[str, ServiceProcess]) -> None:
    """Simulated by the threshold: any real disk has less than 100 % free."""
    services["alerting"].env.update({**FAST, "CAREBED_HEALTH_MIN_FREE_DISK_PCT": "100"})
    services["alerting"].start()
    body = wait_health(settings, "degraded", "disk:")
    assert body["database"] is True and body["mqtt"] is True


def test_an_expected_process_that_never_reported_is_degraded(
    settings: Settings, services: dict[str, ServiceProcess]
) -> None:
    services["alerting"].env.update({**FAST, "CAREBED_HEALTH_PROCESSES": '["alarms"]'})
    services["alerting"].start()
    wait_health(settings, "degraded", "alarms: no health report received")
    services["alarms"].env.update(FAST)
    services["alarms"].start()
    wait_health(settings, "ok")
