"""What the alerting app holds while it runs: database sessions, the consumer, the outbox."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from alerting.activity import ActivityProcess
from alerting.consumer import FindingConsumer
from alerting.escalator import Escalator
from alerting.health import CommitProbe
from alerting.outbox import Dispatcher
from alerting.twilio_client import SmsSender
from alerting.urgency import UrgentWork
from carebed import topics
from carebed.health import HealthBoard
from carebed.mqtt import Outbound
from carebed.schemas import Feedback, dump
from carebed.settings import Settings


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    sender: SmsSender
    consumer: FindingConsumer = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    escalator: Escalator = field(init=False)
    activity: ActivityProcess = field(init=False)
    board: HealthBoard = field(init=False)
    probe: CommitProbe = field(init=False)
    urgent: UrgentWork = field(default_factory=UrgentWork)
    version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(
            self.sessions,
            self.sender,
            on_change=self.changed,
            tz=self.settings.tz,
            urgent=self.urgent,
            public_url=self.settings.public_url,
        )
        self.escalator = Escalator(self.sessions, self.settings.tz, on_change=self._finding_recorded)
        self.consumer = FindingConsumer(self.settings, self.sessions, self._finding_recorded, self.urgent)
        self.activity = ActivityProcess(self.settings, self.urgent)
        self.board = HealthBoard(self.settings)
        self.probe = CommitProbe(self.sessions, self.settings.health_commit_timeout_s)

    def changed(self) -> None:
        """Tell live consoles to refresh."""
        with self._lock:
            self.version += 1

    def _finding_recorded(self) -> None:
        """New messages may be queued: send them now rather than at the next poll."""
        self.changed()
        self.dispatcher.wake()

    def publish_feedback(self, feedback: Feedback) -> None:
        """QoS 1 on the consumer's persistent connection; paho queues it while the broker is away."""
        self.consumer.mqtt.publish(Outbound(topics.feedback(feedback.home_id), dump(feedback)))
