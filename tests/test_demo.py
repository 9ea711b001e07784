"""The README's first command: `carebed up --demo` shows an SOS alert and its SMS within a minute."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from carebed.broker import free_port
from tests.conftest import login
from tests.support import wait_for

pytestmark = pytest.mark.integration


def test_demo_shows_an_sos_alert_and_its_sms_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "carebed", "up", "--demo", "--port", str(port), "--data-dir", str(tmp_path / "var")],
        env={**env, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True).start()
    seen: list[str] = []

    def printed(pattern: str) -> re.Match[str] | None:
        while not lines.empty():
            seen.append(lines.get())
        return next((m for line in seen if (m := re.search(pattern, line))), None)

    started = time.monotonic()
    try:
        password = wait_for(lambda: printed(r"password (\S+)"), 30, "the demo login").group(1)
        sms = wait_for(lambda: printed(r"would send SMS to (\S+): (.*)"), 60, f"the SMS; output so far:\n{seen}")
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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, seen
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
