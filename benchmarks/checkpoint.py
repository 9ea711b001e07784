"""What a detector checkpoint costs at N homes: pickled by the service itself, or by a forked child.

`python -m benchmarks.checkpoint --homes 100000` builds N homes' state from three rounds of
readings (wearable, water meter, gas sensor), then writes it both ways and prints one JSON
object: seconds to write in-process (what the detector used to stop for), milliseconds the
detector stops to fork, seconds the child takes, bytes per home, and seconds a restarting
detector takes to load it. And memory (PSS, MB, above the process's own before the state):
the state built reading by reading, the same state loaded in a fresh process as a restarting
detector loads it, and the highest reading of the service and its child while the child writes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from benchmarks.pipeline import memory_mb
from carebed.schemas import DeviceKind, Reading
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from detector.checkpoint import Checkpoints, write_checkpoint
from detector.core import DetectorCore
from detector.service import keep_full_collections_short, pattern_config, rule_config

START = datetime(2026, 11, 1, tzinfo=UTC)
ROUNDS = 3
MEMORY_SAMPLE_S = 0.5
WRITE_TIMEOUT_S = 600.0


def build_state(homes: int) -> DetectorCore:
    settings = Settings()
    core = DetectorCore(rule_config(settings), pattern_config(settings))
    for minute in range(ROUNDS):
        for n in range(homes):
            ts = START + timedelta(minutes=minute, seconds=n * 60 / homes)
            common = {"home_id": f"home-{n}", "channel": DeviceChannel.TELEMETRY, "ts": ts, "received_at": ts}
            for kind, values in (
                (DeviceKind.WEARABLE, {"steps": 10 * minute, "heart_rate_bpm": 70.0, "worn": True}),
                (DeviceKind.WATER_METER, {"water_volume_l": 100.0 + minute, "water_flow_l_min": 1.0}),
                (DeviceKind.GAS_SENSOR, {"gas_volume_m3": 10 + minute / 100, "ch4_lel_pct": 0.5, "co_ppm": 1.0}),
            ):
                core.process(Reading(device_id=f"home-{n}-{kind.value}", device_kind=kind, **common, **values))
    return core


def measure(homes: int, folder: Path) -> dict[str, float | int]:
    before_mb = memory_mb(os.getpid())
    core = build_state(homes)
    keep_full_collections_short()  # as the service does once it is up
    built_mb = memory_mb(os.getpid()) - before_mb
    path = folder / "state.pickle"
    checkpoints = Checkpoints(path, every_s=3600, state_lock=threading.Lock())
    checkpoints.start(core)
    started = time.perf_counter()
    fork = checkpoints.request()
    writing_peak_mb = built_mb
    while not checkpoints.wait_written(fork, timeout_s=MEMORY_SAMPLE_S):
        if time.perf_counter() - started > WRITE_TIMEOUT_S:
            raise RuntimeError("the child did not write the checkpoint")
        writing_peak_mb = max(writing_peak_mb, memory_mb(os.getpid()) - before_mb)
    child_s = time.perf_counter() - started
    # Only now: the child's write met a state never pickled in this process, as the service's is.
    started = time.perf_counter()
    write_checkpoint(path, core)
    in_process_s = time.perf_counter() - started
    fork_s = REGISTRY.get_sample_value("carebed_detector_checkpoint_fork_seconds_sum") or 0.0
    started = time.perf_counter()
    if checkpoints.restore() is None:
        raise RuntimeError("the checkpoint did not load")
    restore_s = time.perf_counter() - started
    return {
        "homes": homes,
        "in_process_s": round(in_process_s, 2),
        "fork_ms": round(fork_s * 1000, 1),
        "child_s": round(child_s, 2),
        "bytes_per_home": round(path.stat().st_size / homes),
        "restore_s": round(restore_s, 2),
        "built_state_mb": round(built_mb),
        "restored_state_mb": _restored_state_mb(path, homes),
        "writing_peak_mb": round(writing_peak_mb),
    }


def _restored_state_mb(path: Path, homes: int) -> int:
    """In a process of its own, so nothing built before counts."""
    loaded = subprocess.run(
        [sys.executable, "-m", "benchmarks.checkpoint", "--load", str(path)], check=True, capture_output=True, text=True
    )
    figures = json.loads(loaded.stdout)
    if figures["homes"] != homes:
        raise RuntimeError(f"the checkpoint held {figures['homes']} homes, not {homes}")
    return int(figures["state_mb"])


def _load(path: Path) -> dict[str, int]:
    before_mb = memory_mb(os.getpid())
    engine = Checkpoints(path, every_s=3600, state_lock=threading.Lock()).restore()
    if engine is None:
        raise RuntimeError("the checkpoint did not load")
    keep_full_collections_short()
    return {"state_mb": round(memory_mb(os.getpid()) - before_mb), "homes": len(engine.patterns.homes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(_load(args.load)))
        return
    with tempfile.TemporaryDirectory(prefix="carebed-checkpoint-") as folder:
        print(json.dumps(measure(args.homes, Path(folder))))


if __name__ == "__main__":
    main()
