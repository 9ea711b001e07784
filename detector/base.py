"""The one interface every detector implements, so one contract suite can check them all."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from carebed.schemas import Feedback, Finding, Reading


class Detector(Protocol):
    """Event-time detector in river's spirit: learn and judge one reading at a time; pickles whole."""

    def process(self, reading: Reading) -> list[Finding]:
        """Learn from one reading and return what it (or the time it moves to) makes worth raising."""
        ...

    def advance(self, now: datetime) -> list[Finding]:
        """Move event time on without a reading and return what time alone causes."""
        ...

    def apply(self, feedback: Feedback) -> None:
        """Take what an operator said about a home (away, back, false alarm)."""
        ...
