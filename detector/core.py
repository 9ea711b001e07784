"""The detector's whole pure core: alarms, emergency rules and learned patterns side by side, one checkpoint."""

from __future__ import annotations

from datetime import datetime

from carebed.schemas import Feedback, Finding, Reading
from detector.alarms import alarms_of
from detector.patterns import PatternConfig, PatternEngine
from detector.rules import RuleConfig, RuleEngine


class DetectorCore:
    """Alarms and rules judge emergencies, patterns welfare. Feedback reaches only the patterns: SOS is never muted."""

    def __init__(self, rules: RuleConfig, patterns: PatternConfig) -> None:
        self.rules = RuleEngine(rules)
        self.patterns = PatternEngine(patterns)

    def configure(self, rules: RuleConfig, patterns: PatternConfig) -> None:
        """Take new settings after a restore, keeping everything learned."""
        self.rules.config = rules
        self.patterns.config = patterns
        for home in self.patterns.homes.values():
            home.config = patterns

    def process(self, reading: Reading) -> list[Finding]:
        """Everything a reading raises, as a replay needs it."""
        return alarms_of(reading) + self.learn(reading)

    def learn(self, reading: Reading) -> list[Finding]:
        """Everything but the alarms: what needs the state. The service raises the alarms in a lane of their own."""
        return self.rules.process(reading) + self.patterns.process(reading)

    def advance(self, now: datetime) -> list[Finding]:
        return self.rules.advance(now) + self.patterns.advance(now)

    def apply(self, feedback: Feedback) -> None:
        self.patterns.apply(feedback)
