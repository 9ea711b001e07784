"""File adapters for integrators' own data: replay normalised readings, score a CSV series.

Bad lines are skipped with a counted reason on stderr, never a crash: a month of a vendor's
data with one broken line still replays.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from pydantic import ValidationError

from carebed.schemas import Feedback, Reading, dump
from detector.core import DetectorCore
from detector.patterns import PatternConfig, SeriesScorer
from detector.rules import RuleConfig
from evaluation.core import declared_away
from evaluation.populations import HomeCase
from evaluation.streams import arrivals
from simulators.residents import Timeline, readings


def replay(lines: Iterable[str], out: TextIO, rules: RuleConfig, patterns: PatternConfig) -> Counter[str]:
    """Feed readings (and feedback lines, which carry ``kind``) to the detector in file order; write findings."""
    core = DetectorCore(rules, patterns)
    counts: Counter[str] = Counter()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if isinstance(data, dict) and "kind" in data:
                core.apply(Feedback.model_validate(data))
                counts["feedback"] += 1
                continue
            reading = Reading.model_validate(data)
        except (json.JSONDecodeError, ValidationError) as exc:
            counts["rejected"] += 1
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not JSON"
            counts[f"line {number}: {reason}"] += 1
            continue
        counts["readings"] += 1
        for finding in core.process(reading):
            counts["findings"] += 1
            out.write(dump(finding).decode() + "\n")
    return counts


def _timestamp(text: str) -> datetime:
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError("timestamp without a UTC offset")
    return ts.astimezone(UTC)


def score_series(rows: Iterable[list[str]], out: TextIO, config: PatternConfig) -> Counter[str]:
    """Write ``timestamp,value,score`` for each ``timestamp,value`` row, learning as it goes (score, then learn)."""
    scorer = SeriesScorer(config.tz, config.prior_weight)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "score"])
    counts: Counter[str] = Counter()
    for number, row in enumerate(rows, 1):
        if number == 1 and row and row[0].strip().lower() == "timestamp":
            continue
        try:
            ts, value = _timestamp(row[0]), float(row[1])
        except (ValueError, IndexError) as exc:
            counts["rejected"] += 1
            counts[f"line {number}: {exc}"] += 1
            continue
        score = scorer.score_one(ts, value)
        scorer.learn_one(ts, value)
        counts["rows"] += 1
        writer.writerow([row[0].strip(), row[1].strip(), f"{score:.4f}"])
    return counts


def write_simulation(timeline: Timeline, ground_truth: TextIO | None, stream: TextIO | None) -> None:
    """A simulated home as files: its incidents, and its readings merged in time with its declared away periods."""
    if ground_truth is not None:
        for truth in timeline.incidents:
            ground_truth.write(json.dumps(truth.to_json()) + "\n")
    if stream is not None:
        lines = heapq.merge(
            ((r.ts, dump(r)) for r in readings(timeline)),
            ((fb.ts, dump(fb)) for fb in declared_away(timeline)),
            key=lambda item: item[0],
        )
        for _, line in lines:
            stream.write(line.decode() + "\n")


def write_case(case: HomeCase, stream: TextIO) -> None:
    """A home as its kit delivers it (arrival order), with its declared away periods, as replay input."""
    lines = heapq.merge(
        ((at, dump(r)) for at, r in arrivals(case)),
        ((fb.ts, dump(fb)) for fb in declared_away(case.timeline)),
        key=lambda item: item[0],
    )
    for _, line in lines:
        stream.write(line.decode() + "\n")
