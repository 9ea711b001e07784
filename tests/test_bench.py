"""`carebed bench` runs briefly and reports consistent counts (its timings are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchmarks.pipeline import write_warm_detector_state
from carebed.settings import Settings
from carebed_app.stack import SERVICES
from detector.checkpoint import Checkpoints
from simulators.homes import build_registry

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("database", "state", "options"), [("sqlite", "warm", ["--warm"]), ("postgresql", "cold", ["--postgres"])]
)
def test_a_short_bench_reports_consistent_figures(database: str, state: str, options: list[str]) -> None:
    short = ["--homes", "20", "--speed", "120", "--duration", "3", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "carebed", "bench", *short, *options],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["database"], figures["detector_state"]) == (database, state)
    assert figures["published"] > 10 and figures["lost"] == 0 and figures["bare_lost"] == 0
    assert figures["bare_msgs_per_s"] > 0 and figures["pipeline_msgs_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["pipeline_msgs_per_s"] / figures["bare_msgs_per_s"], rel=0.01)
    for phase in ("idle", "load"):  # 3 s of load holds four presses half a second apart
        latency = figures["sos_latency_ms"][phase]
        assert (latency["n"], latency["missing"]) == (4, 0) and 0 < latency["p50"] <= latency["p99"]
        # The stages run from the press's own timestamp, taken just before its publish time.
        stages = figures["sos_stages_ms"][phase]
        assert set(stages["p50"]) == {"gateway", "alert", "claim", "twilio"}
        assert all(ms >= 0 for ms in stages["p50"].values())
        slowest = stages["slowest"][0]
        assert slowest["total"] >= latency["p99"] - 0.1
        assert slowest["total"] == pytest.approx(sum(slowest[s] for s in stages["p50"]), abs=0.3)
        # Every process on the SOS's way ran during the presses, so each has a mean wait.
        scheduler = figures["scheduler"][phase]
        on_the_way = {"alerting", "gateway-events", "alarms", "mosquitto", "bench"}
        others = {"gateway", "detector", "activity rollup"} | ({"simulator"} if phase == "load" else set())
        assert set(scheduler) == on_the_way | others
        assert all(0 <= s["busy_pct"] <= 200 for s in scheduler.values())
        assert all(scheduler[p]["busy_pct"] > 0 and scheduler[p]["run_queue_wait_us"] >= 0 for p in on_the_way)
    assert set(figures["rss_mb"]) == {*SERVICES, "mosquitto"}
    assert all(mb > 1 for mb in figures["rss_mb"].values())
    assert figures["detector_bytes_per_home"] > 0
    assert figures["detector_checkpoints"]["failed"] == 0


def test_the_checkpoint_benchmark_writes_the_state_both_ways_and_weighs_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.checkpoint", "--homes", "2000"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["homes"] == 2000 and figures["bytes_per_home"] > 1000
    assert figures["in_process_s"] >= 0 and figures["child_s"] >= 0 and figures["fork_ms"] > 0
    assert figures["restore_s"] >= 0
    # 2,000 homes' state takes megabytes however it came to be; loaded from one pickle of the whole
    # state it took twice what it took built (54 MB against 27), in chunks about the same (31).
    assert figures["built_state_mb"] > 0
    assert 0 < figures["restored_state_mb"] < 1.5 * figures["built_state_mb"]


def test_a_warm_detector_state_knows_every_home_and_device(tmp_path: Path) -> None:
    registry = build_registry(homes=5, seed=1)
    settings = Settings(data_dir=tmp_path)
    write_warm_detector_state(settings, registry)
    engine = Checkpoints(tmp_path / "detector" / "state.pickle", 30, threading.Lock()).restore()
    assert engine is not None
    assert set(engine.patterns.homes) == {home.id for home in registry.homes}
    assert set(engine.rules.devices) == {device.id for home in registry.homes for device in home.devices}
