"""The detector's whole pure core: emergency rules and learned patterns side by side, one checkpoint."""

from __future__ import annotations

from datetime import datetime

from carebed.schemas import Feedback, Finding, Reading
from detector.patterns import PatternConfig, PatternEngine
from detector.rules import RuleConfig, RuleEngine


class DetectorCore:
    """Rules judge emergencies; patterns judge welfare. Feedback reaches only the patterns: an SOS is never muted."""

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
        return self.rules.process(reading) + self.patterns.process(reading)

    def advance(self, now: datetime) -> list[Finding]:
        return self.rules.advance(now) + self.patterns.advance(now)

    def apply(self, feedback: Feedback) -> None:
        self.patterns.apply(feedback)
