"""docs/operations.md: its table of settings is the settings model's, so it cannot drift."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import Field

from carebed.settings import Settings
from carebed.settings_doc import BEGIN, END, render, table
from tests.conftest import ROOT

DOC = ROOT / "docs" / "operations.md"
# Named in issue 20 as undocumented.
ONCE_UNDOCUMENTED = (
    "CAREBED_LOG_LEVEL",
    "CAREBED_GATEWAY_MAX_FUTURE_SKEW_S",
    "CAREBED_DETECTOR_CHECKPOINT_S",
    "CAREBED_DETECTOR_WALL_CLOCK",
    "CAREBED_MQTT_SESSION_EXPIRY_S",
)


def test_the_committed_table_is_the_models() -> None:
    document = DOC.read_text(encoding="utf-8")
    assert render(document) == document, "run `carebed settings-doc --write docs/operations.md`"


def test_every_setting_is_in_the_document() -> None:
    section = DOC.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]
    for name in Settings.model_fields:
        assert f"`CAREBED_{name.upper()}`" in section, name
    for variable in ONCE_UNDOCUMENTED:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{variable}`"))
        assert len(row.split("|")[3].strip()) > 40, f"{variable}: say what it does"


def test_a_new_setting_makes_the_document_stale() -> None:
    class Grown(Settings):
        grace_s: float = Field(5.0, description="A setting added after the document was written.")

    document = DOC.read_text(encoding="utf-8")
    assert render(document, Grown) != document
    assert "| `CAREBED_GRACE_S` | `5` | A setting added after the document was written. |" in table(Grown)


def test_a_setting_without_a_description_is_refused() -> None:
    class Undocumented(Settings):
        mystery: int = 3

    with pytest.raises(ValueError, match="mystery has no description"):
        table(Undocumented)


def test_the_command_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "carebed", "settings-doc"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == table()
