"""`carebed eval`, `carebed replay` and `carebed score-series` as an integrator runs them."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from carebed.schemas import Feedback, FeedbackKind, Finding, FindingCode
from carebed_app.cli import main
from evaluation.core import DETECTED_BY
from simulators.residents import IncidentType
from tests.detection_data import stream, timeline

KEYS = {"detected", "median_delay_min", "p90_delay_min"}


def check_report(report: dict[str, object], months: float) -> None:
    incidents = report["incidents"]
    assert isinstance(incidents, dict)
    assert set(incidents) == {t.value for t in IncidentType}
    for row in incidents.values():
        assert set(row) >= KEYS
        if row["count"]:
            assert 0 <= row["detected"] <= 1
            assert abs(row["detected"] * row["count"] - round(row["detected"] * row["count"])) < 0.01
            assert row["within_3h"] <= row["detected"]
        if row["median_delay_min"] is not None:
            assert 0 <= row["median_delay_min"] <= row["p90_delay_min"]
        else:
            assert not row["detected"]
    rate = report["false_alerts_per_resident_month"]
    assert isinstance(rate, float | int)
    assert abs(rate - report["false_alerts"] / months) <= 0.01 * max(rate, 1)


def test_eval_prints_one_consistent_json_object() -> None:
    result = CliRunner().invoke(main, ["eval", "--homes", "5", "--days", "10", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["homes"], report["days"], report["seed"]) == (5, 10, 3)
    assert report["resident_months"] == round(5 * 10 / 30, 2)
    check_report(report, report["resident_months"])
    assert 0 < report["state_bytes_mean"] <= report["state_bytes_per_home"]
    assert set(report["baselines"]) == {"no_water_12h", "no_water_24h", "no_water_8h", "continuous_flow_2h"}
    for baseline in report["baselines"].values():
        check_report(baseline, report["resident_months"])
    total = sum(row["count"] for row in report["incidents"].values())
    assert total > 0, "the homes carry incidents"


def test_eval_prints_a_table_per_detector() -> None:
    result = CliRunner().invoke(main, ["eval", "--homes", "2", "--days", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "false welfare alerts per resident-month" in result.stdout
    assert "no_water_12h" in result.stdout


def test_replay_writes_findings_and_counts_bad_lines(tmp_path: Path) -> None:
    truth = timeline(8, (IncidentType.TAP_LEFT_ON,), 2, 1).incidents[0]
    lines = [r.model_dump_json(exclude_none=True) for r in stream(8, (IncidentType.TAP_LEFT_ON,), 2, 1)]
    away = Feedback(id="a", home_id="home-00001", kind=FeedbackKind.BACK, ts=truth.onset)
    lines[100:100] = ["not json", '{"home_id": "home-00001"}', away.model_dump_json()]
    path = tmp_path / "readings.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["replay", str(path)])

    assert result.exit_code == 0, result.output
    findings = [Finding.model_validate_json(line) for line in result.stdout.splitlines()]
    assert any(f.code is FindingCode.LONG_WATER_FLOW and f.ts >= truth.onset for f in findings)
    assert "2 rejected" in result.stderr and "1 feedback" in result.stderr
    assert "skipped line 101: not JSON" in result.stderr


def test_score_series_scores_every_row_in_zero_to_one(tmp_path: Path) -> None:
    t = timeline(8, (IncidentType.COLLAPSE_DAY,), 6, 1)
    rows = ["timestamp,value"] + [f"{t.at(i + 1).isoformat()},{t.water_l[i]:.1f}" for i in range(t.slots)]
    rows.insert(50, "yesterday,3")
    path = tmp_path / "water.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["score-series", str(path)])

    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(out) == t.slots
    scores = [float(row["score"]) for row in out]
    assert all(0 <= s <= 1 for s in scores)
    assert max(scores) > 0.99, "the collapse leaves the water silent for a day"
    assert all(float(row["score"]) == 0 for row in out if float(row["value"]) > 0)
    assert "1 rejected" in result.stderr


def test_eval_writes_its_ground_truth_and_readings_for_replay(tmp_path: Path) -> None:
    truth_path, readings_path = tmp_path / "truth.jsonl", tmp_path / "readings.jsonl"
    args = ["eval", "--homes", "2", "--days", "12", "--seed", "2", "--json"]
    result = CliRunner().invoke(main, [*args, "--ground-truth", str(truth_path), "--readings", str(readings_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    truth = [json.loads(line) for line in truth_path.read_text(encoding="utf-8").splitlines()]
    assert len(truth) == sum(row["count"] for row in report["incidents"].values())

    replayed = CliRunner().invoke(main, ["replay", str(readings_path)])
    assert replayed.exit_code == 0, replayed.output
    assert "0 rejected" not in replayed.stderr and "rejected" not in replayed.stderr
    findings = [Finding.model_validate_json(line) for line in replayed.stdout.splitlines()]
    for incident in truth:
        onset = datetime.fromisoformat(incident["onset"])
        codes = DETECTED_BY[IncidentType(incident["incident"])]
        caught = [
            f for f in findings if f.home_id == incident["home_id"] and f.code in codes and f.detected_at >= onset
        ]
        assert caught, incident
