"""The detector's checkpoint file: every device and home back as it was, and a file of the older format still read."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

from benchmarks.checkpoint import build_state
from detector.checkpoint import CHECKPOINT_VERSION, CHUNK_ITEMS, Checkpoints, write_checkpoint
from detector.core import DetectorCore

# Three chunks of homes, and of their devices seven.
HOMES = 2 * CHUNK_ITEMS + 1


def restore(path: Path) -> DetectorCore | None:
    return Checkpoints(path, every_s=3600, state_lock=threading.Lock()).restore()


def assert_same_state(restored: DetectorCore | None, core: DetectorCore) -> None:
    assert restored is not None
    assert list(restored.rules.devices) == list(core.rules.devices)
    assert list(restored.patterns.homes) == list(core.patterns.homes)
    for restored_map, own_map in (
        (restored.rules.devices, core.rules.devices),
        (restored.patterns.homes, core.patterns.homes),
    ):
        for key, state in own_map.items():
            assert pickle.dumps(restored_map[key]) == pickle.dumps(state), key
    assert restored.rules.clock == core.rules.clock


def test_a_checkpoint_brings_back_every_device_and_home_as_it_was(tmp_path: Path) -> None:
    core = build_state(HOMES)
    path = tmp_path / "state.pickle"
    write_checkpoint(path, core)
    assert_same_state(restore(path), core)


def test_a_checkpoint_of_an_earlier_version_is_ignored_and_relearned(tmp_path: Path) -> None:
    """Version 3 held homes of another shape: restoring it would fail on the first reading, so it is not restored."""
    path = tmp_path / "state.pickle"
    with path.open("wb") as f:
        pickle.dump((CHECKPOINT_VERSION - 1, build_state(3), 0, 0), f, protocol=pickle.HIGHEST_PROTOCOL)
    assert restore(path) is None


def test_a_checkpoint_of_an_unknown_version_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.pickle"
    with path.open("wb") as f:
        pickle.dump((99, build_state(3)), f, protocol=pickle.HIGHEST_PROTOCOL)
    assert restore(path) is None
