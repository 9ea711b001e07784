"""One contract every detector must keep, in river's spirit: checked over all of them alike."""

from __future__ import annotations

import gc
import pickle
import random
from collections.abc import Callable
from datetime import timedelta

import pytest

from carebed.schemas import WELFARE_CODES, Finding
from detector.base import Detector
from detector.baselines import ContinuousFlowRule, NoWaterRule
from detector.core import DetectorCore
from detector.patterns import HomePatterns, PatternConfig, PatternEngine
from detector.rules import RuleConfig, RuleEngine
from simulators.residents import IncidentType
from tests.detection_data import TZ, stream

PATTERNS = PatternConfig(tz=TZ)
DETECTORS: dict[str, Callable[[], Detector]] = {
    "rules": lambda: RuleEngine(RuleConfig()),
    "patterns": lambda: PatternEngine(PATTERNS),
    "home_patterns": lambda: HomePatterns("home-00001", PATTERNS),
    "core": lambda: DetectorCore(RuleConfig(), PATTERNS),
    "no_water_12h": lambda: NoWaterRule(timedelta(hours=12)),
    "continuous_flow_2h": lambda: ContinuousFlowRule(timedelta(hours=2)),
}
LEARNED = {"patterns", "home_patterns", "core"}
# Ten days with a collapse inside the cold start, so the floor has work to do, then a hospital stay.
READINGS = stream(10, (IncidentType.COLLAPSE_DAY,), seed=6, from_day=1)


def key(findings: list[Finding]) -> list[tuple[str, str, str]]:
    """What downstream folds on: the id, the cause and the onset."""
    return [(f.id, f.code.value, f.ts.isoformat()) for f in findings]


def straight(make: Callable[[], Detector]) -> list[Finding]:
    detector = make()
    return [f for r in READINGS for f in detector.process(r)]


@pytest.fixture(scope="module")
def reference() -> dict[str, list[Finding]]:
    return {name: straight(make) for name, make in DETECTORS.items()}


@pytest.mark.parametrize("name", DETECTORS)
def test_a_seeded_run_is_deterministic(name: str, reference: dict[str, list[Finding]]) -> None:
    assert straight(DETECTORS[name]) == reference[name]


@pytest.mark.parametrize("name", DETECTORS)
def test_a_pickled_checkpoint_resumes_exactly(name: str, reference: dict[str, list[Finding]]) -> None:
    detector = DETECTORS[name]()
    findings: list[Finding] = []
    for n, r in enumerate(READINGS):
        if n % 1500 == 750:
            detector = pickle.loads(pickle.dumps(detector))
        findings.extend(detector.process(r))
    assert findings == reference[name]


@pytest.mark.parametrize("name", DETECTORS)
def test_replay_at_any_speed_equals_live(name: str, reference: dict[str, list[Finding]]) -> None:
    """Live, a wall-clock tick moves event time on between readings at arbitrary moments; a replay has none."""
    rng = random.Random(name)
    detector = DETECTORS[name]()
    findings: list[Finding] = []
    for previous, r in zip((None, *READINGS), READINGS, strict=False):
        if previous is not None and rng.random() < 0.3:
            findings.extend(detector.advance(previous.ts + (r.ts - previous.ts) * rng.random()))
        findings.extend(detector.process(r))
    assert key(findings) == key(reference[name])


@pytest.mark.parametrize("name", DETECTORS)
def test_no_welfare_finding_in_cold_start_except_by_the_fixed_floor(
    name: str, reference: dict[str, list[Finding]]
) -> None:
    cold_until = READINGS[0].ts + timedelta(days=PATTERNS.cold_start_days)
    welfare = [f for f in reference[name] if f.code in WELFARE_CODES and f.detected_at < cold_until]
    if name == "rules":
        assert welfare == []
        return
    if name in LEARNED:
        assert welfare, "the collapse in the cold start should reach the floor"
    for finding in welfare:
        assert finding.evidence.get("basis") == "fixed_floor" or "rule" in finding.evidence, finding


@pytest.mark.parametrize("name", DETECTORS)
def test_the_state_holds_no_reference_cycles(name: str) -> None:
    """The detector service freezes its long-lived objects; a cycle among them would never be freed."""
    detector = DETECTORS[name]()
    for r in READINGS:
        detector.process(r)
    gc.collect()
    gc.disable()
    try:
        del detector
        assert gc.collect() == 0
    finally:
        gc.enable()
