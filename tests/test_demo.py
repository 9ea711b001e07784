"""The README's first command: `carebed up --demo` shows an SOS alert and its SMS within a minute."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from carebed.broker import free_port
from tests.conftest import login
from tests.support import DemoStack, wait_for

pytestmark = pytest.mark.integration


def test_demo_shows_an_sos_alert_and_its_sms_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    stack = DemoStack(port, tmp_path / "var")
    started = time.monotonic()
    try:
        password = wait_for(lambda: stack.printed(r"password (\S+)"), 30, "the demo login")[1].group(1)
        _, sms = wait_for(
            lambda: stack.printed(r"would send SMS to (\S+): (.*)"), 60, f"the SMS; output so far:\n{stack.seen}"
        )
        assert time.monotonic() - started < 60
        assert "SOS" in sms.group(2)
        api = login(f"http://127.0.0.1:{port}", "demo", password)
        alerts = api.get("/api/v1/alerts").json()
        assert [a["code"] for a in alerts] == ["sos"]
        assert alerts[0]["notifications"][0]["status"] == "dry_run"
    finally:
        stack.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
