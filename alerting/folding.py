"""Pure core of alert grouping: which findings become one alert, and how an alert changes."""

from __future__ import annotations

from carebed.schemas import Finding, Severity

_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


def group_key(finding: Finding) -> str:
    """One open alert per home and cause: a second SOS press folds into the first alert."""
    return f"{finding.home_id}:{finding.code.value}"


def higher(a: Severity, b: Severity) -> Severity:
    return a if _RANK[a] >= _RANK[b] else b


def severity_rank(severity: Severity) -> int:
    return _RANK[severity]
