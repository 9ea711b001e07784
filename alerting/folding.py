"""Pure core of alert grouping: which findings become one alert, and how an alert changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from carebed.schemas import Finding, FindingCode, Severity

_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# Findings a person raises by pressing (or falling): each press is an alarm by itself.
PRESSES = frozenset({FindingCode.SOS, FindingCode.FALL})


def group_key(finding: Finding) -> str:
    """One open alert per home and cause: a second SOS press folds into the first alert."""
    return f"{finding.home_id}:{finding.code.value}"


@dataclass(frozen=True, slots=True)
class Recorded:
    """The newest record of a finding id: the alert holding it, and when that alert was resolved (None if not)."""

    alert_id: int
    resolved_at: datetime | None


def is_new_press(finding: Finding, newest: Recorded) -> bool:
    """Whether a finding whose id is already recorded is a new press rather than a copy of a recorded one.

    An alarm's id is its device, cause, event time and, when the device numbers its messages,
    ``seq``. With a number the id is exact: the same id is the same press (a redelivery or the
    device's own resend), never a new alert. Without one, a stuck device clock gives every press
    the same id, and a copy differs from a new press only in when the gateway received it: before
    the alert holding the id was resolved it was part of that alert; after, it is a new press. A
    late copy of an unnumbered press may thus open a second alert; an SOS is never dropped for it.
    """
    if finding.code not in PRESSES or finding.evidence.get("seq") is not None:
        return False
    resolved_at, received_at = newest.resolved_at, finding.received_at
    return resolved_at is not None and received_at is not None and received_at > resolved_at


def record_id(finding: Finding, alert_id: int, repeat: bool) -> str:
    """A finding is recorded under its own id; a later press with the same id under the id and its alert."""
    return f"{finding.id}@{alert_id}" if repeat else finding.id


def higher(a: Severity, b: Severity) -> Severity:
    return a if _RANK[a] >= _RANK[b] else b


def severity_rank(severity: Severity) -> int:
    return _RANK[severity]
