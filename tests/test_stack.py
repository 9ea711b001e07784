"""`carebed up` supervises the broker like every other child, on a port that stays put."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from carebed.broker import free_port
from carebed.settings import Settings
from carebed.stack import broker_port
from tests.conftest import login
from tests.support import wait_for


def test_the_broker_port_is_chosen_once_per_data_folder_unless_configured(tmp_path: Path) -> None:
    first = broker_port(Settings(data_dir=tmp_path / "a"))
    assert broker_port(Settings(data_dir=tmp_path / "a")) == first
    configured = free_port()
    assert broker_port(Settings(data_dir=tmp_path / "a", mqtt_port=configured)) == configured


@pytest.mark.integration
def test_a_killed_broker_comes_back_on_its_port_and_an_sos_pressed_after_alerts(tmp_path: Path) -> None:
    """Issue 19 row 4: kill -9 of Mosquitto under `carebed up`; it is restarted on the same port and
    the demo's SOS, pressed after that, reaches the console through the reconnected simulator and services."""
    port, data = free_port(), tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "carebed", "up", "--demo", "--port", str(port), "--data-dir", str(data)],
        env={**env, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True).start()
    seen: list[str] = []

    def printed(pattern: str) -> tuple[int, re.Match[str]] | None:
        while not lines.empty():
            seen.append(lines.get())
        return next(((n, m) for n, line in enumerate(seen) if (m := re.search(pattern, line))), None)

    try:
        _, running = wait_for(lambda: printed(r"MQTT broker 127\.0\.0\.1:(\d+)"), 60, f"the stack; output:\n{seen}")
        password = wait_for(lambda: printed(r"password (\S+)"), 5, "the demo login")[1].group(1)
        mqtt_port = running.group(1)
        os.kill(int((data / "mosquitto" / "mosquitto.pid").read_text()), signal.SIGKILL)
        back_on = rf"mosquitto is back on 127\.0\.0\.1:{mqtt_port}\b"
        back, _ = wait_for(lambda: printed(back_on), 30, f"the broker back; output:\n{seen}")
        sms, _ = wait_for(lambda: printed(r"would send SMS to \S+: .*SOS"), 90, f"the SOS alert; output:\n{seen}")
        assert back < sms, "the SOS was alerted before the broker came back: it was not pressed after"
        assert not [line for line in seen if "exited with" in line and "mosquitto" not in line], seen
        alerts = login(f"http://127.0.0.1:{port}", "demo", password).get("/api/v1/alerts").json()
        assert [a["code"] for a in alerts] == ["sos"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, seen
