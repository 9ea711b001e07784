"""Findings to the broker, counted and logged alike by both of the detector's processes."""

from __future__ import annotations

import logging

from prometheus_client import Counter

from carebed import topics
from carebed.mqtt import Outbound
from carebed.schemas import Finding, dump

log = logging.getLogger(__name__)

FINDINGS_OUT = Counter("carebed_detector_findings_total", "Findings raised, by code", ["code"])


def outbound(findings: list[Finding]) -> list[Outbound]:
    """One message per finding, on its home's topic; ids only in the log, never names or numbers."""
    for finding in findings:
        FINDINGS_OUT.labels(finding.code.value).inc()
        log.info("finding", extra={"finding_id": finding.id, "code": finding.code.value, "home_id": finding.home_id})
    return [Outbound(topics.findings(f.home_id), dump(f)) for f in findings]
