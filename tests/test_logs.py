"""Service logs are size-bounded: a flood of warnings rotates the file instead of filling the disk (issue 19, row 8)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from carebed import logs
from carebed.settings import Settings


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = saved, level


@pytest.mark.usefixtures("root_handlers")
def test_a_flood_of_log_lines_stays_within_the_rotated_files(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "gateway.log"
    settings = Settings(data_dir=tmp_path, log_dir=log_file.parent, log_max_bytes=4096, log_backups=2)
    logs.configure("gateway", settings)
    for i in range(5000):
        logging.getLogger("gateway.service").warning("message rejected", extra={"reason": "not_json", "n": i})

    files = sorted(log_file.parent.iterdir())
    assert [f.name for f in files] == ["gateway.log", "gateway.log.1", "gateway.log.2"]
    assert sum(f.stat().st_size for f in files) <= 3 * 4096
    last = json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])
    assert (last["service"], last["msg"], last["n"]) == ("gateway", "message rejected", 4999)
