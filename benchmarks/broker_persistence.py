"""What Mosquitto's persistence promises on kill -9, and what it costs: `python -m benchmarks.broker_persistence`.

For each autosave setting: an offline persistent session (a service that is down or behind)
holds a backlog; a device publishes a burst of QoS 1 messages, each acknowledged by the broker;
the broker is killed (SIGKILL) `--kill-after` seconds after the last acknowledgement and
restarted on its data folder; the lost count is how many acknowledged messages the session
never receives. The cost is the acknowledged publish rate into such a session.
Prints one JSON line per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.settings import Settings
from carebed_app.broker import AUTOSAVE, Mosquitto, free_port

SETTINGS = {
    "interval-5s": AUTOSAVE,
    "interval-1s": "autosave_interval 1",
    "on-changes-1": "autosave_on_changes true\nautosave_interval 1",
    "on-changes-100": "autosave_on_changes true\nautosave_interval 100",
}
TOPIC = "bench/sos"


class Sink:
    """A service's persistent session: subscribed once, then offline while the messages queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.payloads: set[bytes] = set()
        self.lock = threading.Lock()

    def connect(self) -> MqttClient:
        client = MqttClient(self.settings, client_id="bench-sink")
        client.subscribe(TOPIC, self._record)
        client.start()
        return client

    def _record(self, message: Inbound) -> list[Outbound]:
        with self.lock:
            self.payloads.add(message.payload)
        return []


def saved(broker: Mosquitto) -> None:
    """Make the broker write its state now (SIGUSR1) and wait until the file has changed."""
    db = broker.data_dir / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while (db.stat().st_mtime_ns if db.exists() else 0) == before and time.monotonic() < deadline:
        time.sleep(0.01)


def publish(client: MqttClient, count: int, tag: str) -> list[bytes]:
    payloads = [f'{{"tag":"{tag}","n":{n}}}'.encode() for n in range(count)]
    for payload in payloads:
        client.publish_paced(Outbound(TOPIC, payload))
    if not client.flush(120):
        raise TimeoutError("the broker did not acknowledge the backlog")
    return payloads


def one_round(folder: Path, autosave: str, backlog: int, burst: int, kill_after: float) -> int:
    """Acknowledged messages of the burst lost by a kill -9 `kill_after` seconds after the last acknowledgement."""
    broker = Mosquitto(folder, free_port(), autosave=autosave)
    broker.start()
    settings = Settings(mqtt_port=broker.port, data_dir=folder)
    sink = Sink(settings)
    sink.connect().stop()
    device = MqttClient(settings, client_id="bench-device", persistent=False)
    device.start()
    publish(device, backlog, "backlog")
    saved(broker)  # the session and its backlog are on disk, as in a broker that has run a while
    sent = []
    for n in range(burst):
        message = Outbound(TOPIC, f'{{"tag":"sos","n":{n}}}'.encode())
        if not device.publish_confirmed(message):
            raise RuntimeError("the broker refused a message")
        sent.append(message.payload)
    time.sleep(kill_after)
    broker.kill()
    device.stop(timeout=0)
    broker.start()
    client = sink.connect()
    deadline = time.monotonic() + 5  # a restored session delivers its queue within a second here
    while time.monotonic() < deadline and not set(sent) <= sink.payloads:
        time.sleep(0.05)
    client.stop()
    broker.stop()
    return len(set(sent) - sink.payloads)


def publish_rate(folder: Path, autosave: str, backlog: int, count: int) -> float:
    """Acknowledged QoS 1 messages per second into an offline session that holds `backlog` messages."""
    broker = Mosquitto(folder, free_port(), autosave=autosave)
    broker.start()
    try:
        settings = Settings(mqtt_port=broker.port, data_dir=folder)
        Sink(settings).connect().stop()
        device = MqttClient(settings, client_id="bench-device", persistent=False)
        device.start()
        publish(device, backlog, "backlog")
        started = time.perf_counter()
        publish(device, count, "timed")
        rate = count / (time.perf_counter() - started)
        device.stop()
        return rate
    finally:
        broker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=5, help="acknowledged messages before the kill")
    parser.add_argument("--kill-after", type=float, default=1.0, help="seconds between the last ack and the kill")
    parser.add_argument("--backlog", type=int, default=1_000, help="messages queued for the session")
    parser.add_argument("--count", type=int, default=1_000, help="messages timed for the publish rate")
    parser.add_argument("--settings", nargs="*", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carebed-persistence-") as tmp:
        for name in args.settings:
            lost = [
                one_round(Path(tmp) / f"{name}-{n}", SETTINGS[name], args.backlog, args.burst, args.kill_after)
                for n in range(args.rounds)
            ]
            rates = {
                f"msg_per_s_backlog_{backlog}": round(
                    publish_rate(Path(tmp) / f"{name}-rate-{backlog}", SETTINGS[name], backlog, args.count)
                )
                for backlog in (0, args.backlog)
            }
            figures = {"setting": name, "burst": args.burst, "kill_after_s": args.kill_after, "lost": lost, **rates}
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
