"""Benchmark: how fast an SOS reaches step 1 (SMS and call accepted by Twilio) through the real alerting process.

Starts a private Mosquitto, Prism serving Twilio's OpenAPI spec behind the tests' recording
proxy, and the alerting service; publishes SOS findings one at a time and prints, from the
database, the seconds from publication to the alert and to Twilio accepting each message.

    .venv/bin/python scripts/bench_escalation.py --alerts 20
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerting.dashboard import percentile  # noqa: E402
from alerting.models import Alert, Notification  # noqa: E402
from carebed.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from carebed.mqtt import MqttClient  # noqa: E402
from carebed.registry import import_registry  # noqa: E402
from carebed.settings import Settings  # noqa: E402
from carebed_app.broker import Mosquitto, free_port, wait_for_port  # noqa: E402
from simulators.homes import build_registry  # noqa: E402
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PRISM, TWILIO_FROM, TWILIO_SPEC  # noqa: E402
from tests.support import ServiceProcess, TwilioRecorder, publish_sos_finding, wait_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carebed-bench-"))
    broker = Mosquitto(work / "mosquitto", free_port())
    broker.start()
    prism_port = free_port()
    prism = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(prism_port), str(TWILIO_SPEC)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    twilio = TwilioRecorder(f"http://127.0.0.1:{prism_port}")
    url = f"sqlite:///{work / 'carebed.db'}"
    registry = build_registry(homes=args.alerts, seed=3)
    upgrade(url, Settings(database_url=url).charts_sqlalchemy_url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as session:
        import_registry(session, registry)
    http_port = free_port()
    env = {
        "CAREBED_DATA_DIR": str(work),
        "CAREBED_DATABASE_URL": url,
        "CAREBED_MQTT_PORT": str(broker.port),
        "CAREBED_HTTP_PORT": str(http_port),
        "CAREBED_SESSION_SECRET": secrets.token_urlsafe(16),
        "CAREBED_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "CAREBED_TWILIO_FROM": TWILIO_FROM,
        "CAREBED_TWILIO_API_BASE": twilio.url,
    }
    alerting = ServiceProcess("alerting", env, work / "alerting.log")
    device = MqttClient(Settings(mqtt_port=broker.port), client_id="bench", persistent=False)
    try:
        wait_for_port(prism_port, 60, prism)
        alerting.start().wait_logged("alerting ready", timeout=60)
        device.start()
        published = {}
        for home in registry.homes:
            published[home.id] = publish_sos_finding(device, home.id)
            home_phone = home.responders[0].phone
            wait_for(lambda p=home_phone: len(twilio.calls_to(p)) and len(twilio.messages_to(p)), 30, "step 1")
            time.sleep(0.5)  # pacing: one alert at a time, as they arrive in life
        with sessions() as session:
            rows = session.execute(
                select(Alert.home_id, Alert.created_at, Notification.channel, Notification.sent_at).join(Notification)
            ).all()
    finally:
        device.stop()
        alerting.stop()
        twilio.close()
        prism.terminate()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, list[float]] = {"alert opened": [], "sms accepted": [], "call accepted": []}
    for home_id, created_at, channel, sent_at in rows:
        start = published[home_id]
        if channel == "sms":
            figures["alert opened"].append((created_at - start).total_seconds())
        if sent_at is not None:
            figures[f"{'call' if channel == 'voice' else channel} accepted"].append((sent_at - start).total_seconds())
    print(f"{args.alerts} SOS findings, seconds from publication (p50 / p95 / max):")
    for name, values in figures.items():
        print(f"  {name:14} {percentile(values, 50):.3f} / {percentile(values, 95):.3f} / {max(values):.3f}")


if __name__ == "__main__":
    main()
