"""What the alerting app holds while it runs: database sessions, the consumer, the outbox."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from alerting.consumer import FindingConsumer
from alerting.outbox import Dispatcher
from alerting.twilio_client import SmsSender
from carebed.settings import Settings


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    sender: SmsSender
    consumer: FindingConsumer = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.sessions, self.sender, on_change=self.changed)
        self.consumer = FindingConsumer(self.settings, self.sessions, on_change=self._finding_recorded)

    def changed(self) -> None:
        """Tell live consoles to refresh."""
        with self._lock:
            self.version += 1

    def _finding_recorded(self) -> None:
        self.changed()
        self.dispatcher.wake()
