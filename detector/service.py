"""MQTT adapter of the detector: readings and operator feedback in, findings out, state checkpointed to disk.

SOS and falls are not raised here but in the alarm lane's own process (detector/alarm_service.py);
this process still reads every event, for the state (a press shows its wearable is alive, a leak
event opens the same episode as a leak flag).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from prometheus_client import Counter

from carebed import service, topics
from carebed.health import HealthReporter
from carebed.mqtt import Inbound, MqttClient, Outbound, decode, decode_batch
from carebed.schemas import Feedback, Finding, Reading, utc_now
from carebed.settings import Settings
from detector.checkpoint import Checkpoints
from detector.core import DetectorCore
from detector.findings import outbound
from detector.patterns import PatternConfig
from detector.rules import RuleConfig

log = logging.getLogger(__name__)

READINGS_IN = Counter("carebed_detector_readings_total", "Readings processed")
UNJUDGED = Counter(
    "carebed_detector_unjudged_readings_total", "Readings set aside because judging them raised (a detector bug)"
)
FEEDBACK_IN = Counter("carebed_detector_feedback_total", "Operator feedback applied, by kind", ["kind"])
TICK_S = 5.0
# Past this a feedback is acknowledged anyway, and the failing checkpoints are loud in logs and metrics.
FEEDBACK_CHECKPOINT_TIMEOUT_S = 120.0
OLDEST_GENERATION = 2
Judge = Callable[[Reading], list[Finding]]


def rule_config(settings: Settings) -> RuleConfig:
    return RuleConfig(
        gas_alarm_lel_pct=settings.gas_alarm_lel_pct,
        co_alarm_levels=settings.co_alarm_ppm,
        offline_after=timedelta(minutes=settings.offline_after_min),
    )


def pattern_config(settings: Settings) -> PatternConfig:
    return PatternConfig(tz=settings.tz, floor_veto_p=settings.floor_veto_p)


class StateLock:
    """The detector's state, shared by its lanes: the telemetry lane lets the event lane in between readings.

    The telemetry lane holds the state for a whole batch (a hundred readings and more at 100k
    homes), at the bulk priority (Settings.bulk_nice); an event that found it there (an SOS, before
    the alarm lane had a process of its own; a leak now) waited for all of it. Now it waits for one
    reading at most. `lock` is the plain lock, for everything else.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._turns = threading.Condition(self.lock)
        self._urgent_waiting = 0
        self._count = threading.Lock()

    def first(self, judge: Judge, readings: Iterable[Reading]) -> list[Finding]:
        """`judge` every reading under the lock, taken as soon as the bulk lane is between two readings."""
        with self._count:
            self._urgent_waiting += 1
        with self._turns:
            with self._count:
                self._urgent_waiting -= 1
            self._turns.notify_all()
            return [finding for reading in readings for finding in judge(reading)]

    def each(self, judge: Judge, readings: Iterable[Reading]) -> list[Finding]:
        """`judge` each reading in turn under the lock, giving way to an urgent lane between readings."""
        findings: list[Finding] = []
        with self._turns:
            for reading in readings:
                if self._urgent_waiting:
                    self._turns.wait_for(lambda: not self._urgent_waiting)
                findings.extend(judge(reading))
        return findings


class Detector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._state = StateLock()
        self.checkpoints = Checkpoints(
            settings.data_dir / "detector" / "state.pickle",
            settings.detector_checkpoint_s,
            self._state.lock,
            settings.bulk_nice,
        )
        self.engine = self.checkpoints.restore() or DetectorCore(rule_config(settings), pattern_config(settings))
        self.engine.configure(rule_config(settings), pattern_config(settings))
        self.mqtt = MqttClient(settings, client_id="carebed-detector", bulk=True)
        self.mqtt.subscribe(topics.READINGS, self.handle)
        self.events = MqttClient(settings, client_id="carebed-detector-events")
        self.events.subscribe(topics.EVENTS, self.handle_events)
        # Its own lane, since each feedback waits for a checkpoint before it is acknowledged.
        self.feedback = MqttClient(settings, client_id="carebed-detector-feedback")
        self.feedback.subscribe(topics.FEEDBACK_SUBSCRIPTION, self.handle_feedback)

    def start(self) -> None:
        self.checkpoints.start(self.engine)
        self.events.start()
        self.feedback.start()
        self.mqtt.start()

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        """Telemetry, in batches."""
        return self._judge(message, self._state.each)

    def handle_events(self, message: Inbound) -> Sequence[Outbound]:
        """SOS, falls and leaks (for the state and the leak's finding): ahead of any telemetry waiting for the state."""
        return self._judge(message, self._state.first)

    def _judge(self, message: Inbound, run: Callable[[Judge, list[Reading]], list[Finding]]) -> Sequence[Outbound]:
        readings = decode_batch(Reading, message)
        findings = run(self._learn, readings)
        READINGS_IN.inc(len(readings))
        return outbound(findings)

    def _learn(self, reading: Reading) -> list[Finding]:
        """A reading the engine cannot judge is set aside, counted and logged: a batch mixes many homes, and
        retrying it in place would hold every home's detection behind one bug."""
        try:
            return self.engine.learn(reading)
        except Exception as exc:
            UNJUDGED.inc()
            where = {"home_id": reading.home_id, "device_id": reading.device_id, "ts": reading.ts.isoformat()}
            log.error("reading not judged", extra={**where, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return []

    def handle_feedback(self, message: Inbound) -> Sequence[Outbound]:
        """Away, back and false alarms from operators: rare and they matter, so each is on disk before its ack."""
        feedback = decode(Feedback, message)
        if feedback is None:
            return ()
        with self._state.lock:
            self.engine.apply(feedback)
            fork = self.checkpoints.request()
        if not self.checkpoints.wait_written(fork, FEEDBACK_CHECKPOINT_TIMEOUT_S):
            log.error("feedback applied but not yet checkpointed", extra={"feedback_id": feedback.id})
        FEEDBACK_IN.labels(feedback.kind.value).inc()
        log.info(
            "feedback", extra={"feedback_id": feedback.id, "kind": feedback.kind.value, "home_id": feedback.home_id}
        )
        return ()

    def tick(self) -> None:
        """Let the wall clock move event time on when every device has gone quiet."""
        with self._state.lock:
            findings = self.engine.advance(utc_now() - timedelta(seconds=TICK_S))
        for out in outbound(findings):
            self.mqtt.publish(out)

    def stop(self) -> None:
        self.mqtt.stop()
        self.feedback.stop()
        self.events.stop()
        self.checkpoints.stop_and_write()


def keep_full_collections_short() -> None:
    """Each full garbage collection scans only what is new since the one before.

    100k homes' state is about 4 million tracked objects, and a full collection over them stops
    the whole process, the SOS lane included, for 1.3-1.5 s. Freezing what survives each full
    collection caps that pause at tens of milliseconds (docs/performance.md). The price: a
    reference cycle among frozen objects is never reclaimed, so the state must stay free of
    cycles (tests/test_detector_contract.py checks it).
    """
    service.ready()
    gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == OLDEST_GENERATION:
        gc.freeze()


def run(settings: Settings) -> None:
    stopping = service.start("detector", settings, settings.metrics_port)
    detector = Detector(settings)
    detector.start()
    reporter = HealthReporter("detector", settings, [detector.events, detector.mqtt, detector.feedback])
    reporter.start()
    keep_full_collections_short()
    while not stopping.wait(TICK_S):
        if settings.detector_wall_clock:
            detector.tick()
    reporter.stop()
    detector.stop()
