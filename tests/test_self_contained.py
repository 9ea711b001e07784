"""The repository is self-contained: a fresh clone has no steering folder beside it (issue 20)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT, TWILIO_SPEC

OUTSIDE = ("../" + "shared", "ROOT" + ".parent")  # spelled apart so this file does not match itself
CHECKED = (
    ".ci",
    "scripts",
    "tests",
    "carebed",
    "carebed_app",
    "gateway",
    "detector",
    "alerting",
    "simulators",
    "benchmarks",
    "deploy",
)


def test_no_committed_code_reads_outside_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--", *CHECKED], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert files
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix == ".json" or not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {marker}" for marker in OUTSIDE if marker in text]
    assert not offenders


def test_the_twilio_contract_is_vendored_with_its_licence() -> None:
    assert TWILIO_SPEC.is_relative_to(ROOT)
    assert json.loads(TWILIO_SPEC.read_text())["openapi"].startswith("3.")
    assert "MIT License" in (TWILIO_SPEC.parent / "LICENSE").read_text()
