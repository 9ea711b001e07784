"""MQTT adapter of the alarm lane: SOS and falls in, their findings out, from a process that holds no state.

The detector's main process holds every home's learned state, at 100k homes four million
objects, and now and then stops for tens of milliseconds to collect or fork a checkpoint,
whichever lane was running. An alarm needs none of that state (detector/alarms.py), so it is
raised here, in a process small enough that nothing stops it. The main detector reads the same
events on a session of its own, for its state.
"""

from __future__ import annotations

from collections.abc import Sequence

from carebed import service, topics
from carebed.health import HealthReporter
from carebed.mqtt import Inbound, MqttClient, Outbound, decode_batch
from carebed.schemas import Reading
from carebed.settings import Settings
from detector.alarms import alarms_of
from detector.findings import outbound


class AlarmLane:
    def __init__(self, settings: Settings) -> None:
        self.mqtt = MqttClient(settings, client_id="carebed-detector-alarms")
        self.mqtt.subscribe(topics.EVENTS, self.handle)

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        """Each finding is published before the event is acknowledged, so a crash re-delivers rather than loses."""
        return outbound([finding for reading in decode_batch(Reading, message) for finding in alarms_of(reading)])


def run(settings: Settings) -> None:
    stopping = service.start("alarms", settings, settings.metrics_port)
    lane = AlarmLane(settings)
    lane.mqtt.start()
    reporter = HealthReporter("alarms", settings, [lane.mqtt])
    reporter.start()
    service.ready()
    stopping.wait()
    reporter.stop()
    lane.mqtt.stop()
