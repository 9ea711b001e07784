"""The README's first command: `carebed up --demo` shows an SOS alert and its SMS within a minute."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from carebed_app.broker import free_port
from tests.conftest import login
from tests.support import CarebedUp, wait_for

pytestmark = pytest.mark.integration


def test_demo_shows_an_sos_alert_and_its_sms_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    demo = CarebedUp("--demo", "--port", str(port), "--data-dir", str(tmp_path / "var"))
    started = time.monotonic()
    try:
        password = wait_for(lambda: demo.printed(r"password (\S+)"), 30, "the demo login").group(1)
        sms = wait_for(
            lambda: demo.printed(r"would send SMS to (\S+): (.*)"), 60, f"the SMS; output so far:\n{demo.lines}"
        )
        assert time.monotonic() - started < 60
        assert "SOS" in sms.group(2)
        api = login(f"http://127.0.0.1:{port}", "demo", password)
        alerts = api.get("/api/v1/alerts").json()
        assert [a["code"] for a in alerts] == ["sos"]
        assert alerts[0]["notifications"][0]["status"] == "dry_run"
        # One clock: the press (device time), the alert and the SMS all read the wall clock.
        pressed = datetime.fromisoformat(alerts[0]["first_ts"])
        stored = datetime.fromisoformat(alerts[0]["created_at"])
        assert abs(stored - pressed) < timedelta(seconds=30), (pressed, stored)
        shown = re.search(r"时间 (\d\d-\d\d \d\d:\d\d)", sms.group(2))
        assert shown, sms.group(2)
        local = [(stored - timedelta(minutes=m)).astimezone(ZoneInfo("Asia/Shanghai")) for m in (0, 1)]
        assert shown.group(1) in [t.strftime("%m-%d %H:%M") for t in local], (shown.group(1), stored)
    finally:
        assert demo.stop() == 0, demo.lines
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
