"""Lane health across processes: each process publishes a retained report, the alerting service judges them all.

The services run as separate processes, maybe on separate machines, and share only the broker
(and not every one of them the database), so each one publishes, every few seconds, a small
retained report of its lanes on ``carebed/v1/internal/health/{process}``. A report that stops
coming is as bad as a stalled lane: the process is stopped, hung or cut off from the broker.
A process that stops cleanly clears its report, so a lane taken out of service on purpose does
not count against health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from carebed import topics
from carebed.mqtt import Inbound, LaneHealth, MqttClient, Outbound
from carebed.schemas import HealthReport, LaneReport, dump, utc_now
from carebed.settings import Settings

log = logging.getLogger(__name__)


def lane_problems(lanes: Sequence[LaneHealth | LaneReport], stall_s: float, where: str) -> list[str]:
    """Why these lanes cannot be trusted to pass an SOS on now, one line each."""
    problems = []
    for lane in lanes:
        if not lane.connected:
            problems.append(f"{where}: lane {lane.lane} is not connected to the broker")
        if lane.oldest_unacked_s > stall_s:
            problems.append(
                f"{where}: lane {lane.lane} is stalled, its oldest unacknowledged input is"
                f" {lane.oldest_unacked_s:.0f} s old"
            )
    return problems


class HealthReporter:
    """Publishes the process's lane report every `settings.health_report_s` through its first client."""

    def __init__(self, process: str, settings: Settings, clients: Sequence[MqttClient]) -> None:
        self.process = process
        self._clients = clients
        self._interval = settings.health_report_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-report", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Clear the retained report before the clients disconnect: a clean stop is not a fault."""
        self._stopping.set()
        self._thread.join()
        self._clients[0].publish(Outbound(topics.health(self.process), b"", retain=True))

    def report(self) -> HealthReport:
        lanes = [client.health() for client in self._clients]
        return HealthReport(
            process=self.process,
            ts=utc_now(),
            lanes=tuple(
                LaneReport(
                    lane=lane.lane,
                    connected=lane.connected,
                    oldest_unacked_s=round(lane.oldest_unacked_s, 3),
                    since_processed_s=round(lane.since_processed_s, 3),
                )
                for lane in lanes
            ),
        )

    def _run(self) -> None:
        while True:
            publisher = self._clients[0]
            # While the broker is away a report would only queue up; the silence itself is the report.
            if publisher.connected.is_set():
                publisher.publish(Outbound(topics.health(self.process), dump(self.report()), retain=True))
            if self._stopping.wait(self._interval):
                return


@dataclass(frozen=True, slots=True)
class _Received:
    report: HealthReport
    fresh_at: float  # monotonic time the report was current


class HealthBoard:
    """The alerting service's view of every other process's lanes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._reports: dict[str, _Received] = {}
        self._lock = threading.Lock()
        self.mqtt = MqttClient(settings, client_id="carebed-alerting-health", persistent=False)
        self.mqtt.subscribe(topics.HEALTH_SUBSCRIPTION, self.handle)

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        process = message.topic.rsplit("/", 1)[-1]
        if not message.payload:
            with self._lock:
                self._reports.pop(process, None)
            return ()
        try:
            report = HealthReport.model_validate_json(message.payload)
        except ValidationError:
            log.error("malformed health report", extra={"topic": message.topic})
            return ()
        now = time.monotonic()
        # A retained report may be hours old: judge it by its own time. A live one is fresh now,
        # whatever the clocks of the two machines say.
        age = max(0.0, (utc_now() - report.ts).total_seconds()) if message.retain else 0.0
        with self._lock:
            self._reports[process] = _Received(report, now - age)
        return ()

    def problems(self) -> list[str]:
        settings = self._settings
        now = time.monotonic()
        with self._lock:
            reports = dict(self._reports)
        problems = [
            f"{process}: no health report received" for process in settings.health_processes if process not in reports
        ]
        if not self.mqtt.connected.is_set():
            problems.append("alerting: not connected to the broker, so other processes' lanes cannot be seen")
        for process, received in sorted(reports.items()):
            silent = now - received.fresh_at
            if silent > settings.health_stale_s:
                problems.append(
                    f"{process}: no health report for {silent:.0f} s (stopped, hung, or a lane's handler is blocked)"
                )
                continue
            problems.extend(lane_problems(received.report.lanes, settings.health_stall_s, process))
        return problems

    def lanes(self) -> dict[str, tuple[LaneReport, ...]]:
        with self._lock:
            return {process: received.report.lanes for process, received in sorted(self._reports.items())}
