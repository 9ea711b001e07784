"""`carebed up` supervises the broker like every other child, on a port that stays put."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from carebed.settings import Settings, get_settings, load_settings
from carebed_app.broker import free_port
from carebed_app.stack import broker_port
from tests.conftest import login
from tests.support import CarebedUp, wait_for


def test_the_broker_port_is_chosen_once_per_data_folder_unless_configured(tmp_path: Path) -> None:
    first = broker_port(Settings(data_dir=tmp_path / "a"))
    assert broker_port(Settings(data_dir=tmp_path / "a")) == first
    configured = free_port()
    assert broker_port(Settings(data_dir=tmp_path / "a", mqtt_port=configured)) == configured


def test_an_option_does_not_pin_the_broker_to_the_default_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`carebed up --data-dir X` with no CAREBED_MQTT_PORT chose 1883 and failed when another broker held it."""
    monkeypatch.delenv("CAREBED_MQTT_PORT", raising=False)
    get_settings.cache_clear()
    settings = load_settings({}, data_dir=tmp_path, http_port=free_port())
    get_settings.cache_clear()
    assert "mqtt_port" not in settings.model_fields_set
    assert broker_port(settings) == int((tmp_path / "mosquitto" / "port").read_text())


@pytest.mark.integration
def test_a_killed_broker_comes_back_on_its_port_and_an_sos_pressed_after_alerts(tmp_path: Path) -> None:
    """Issue 19 row 4: kill -9 of Mosquitto under `carebed up`; it is restarted on the same port and
    the demo's SOS, pressed after that, reaches the console through the reconnected simulator and services."""
    port, data = free_port(), tmp_path / "var"
    stack = CarebedUp("--demo", "--port", str(port), "--data-dir", str(data))
    try:
        _, running = wait_for(
            lambda: stack.printed_at(r"MQTT broker 127\.0\.0\.1:(\d+)"), 60, f"the stack; output:\n{stack.lines}"
        )
        password = wait_for(lambda: stack.printed_at(r"password (\S+)"), 5, "the demo login")[1].group(1)
        os.kill(int((data / "mosquitto" / "mosquitto.pid").read_text()), signal.SIGKILL)
        back_on = rf"mosquitto is back on 127\.0\.0\.1:{running.group(1)}\b"
        back, _ = wait_for(lambda: stack.printed_at(back_on), 30, f"the broker back; output:\n{stack.lines}")
        sms, _ = wait_for(
            lambda: stack.printed_at(r"would send SMS to \S+: .*SOS"), 90, f"the SOS alert; output:\n{stack.lines}"
        )
        assert back < sms, "the SOS was alerted before the broker came back: it was not pressed after"
        assert not [line for line in stack.lines if "exited with" in line and "mosquitto" not in line], stack.lines
        alerts = login(f"http://127.0.0.1:{port}", "demo", password).get("/api/v1/alerts").json()
        assert [a["code"] for a in alerts] == ["sos"]
    finally:
        assert stack.stop() == 0, stack.lines
    # The simulator, the reference device, was told its SOS is alerted: it stopped sending it again.
    assert '"unconfirmed": 0' in (data / "logs" / "simulator.log").read_text(encoding="utf-8")
