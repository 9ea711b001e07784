"""The ceiling: a bare subscriber that only counts device messages, at the pipeline's QoS.

Run as a process (`python -m benchmarks.counter`) so it has a core of its own like the services;
it prints `{"count": N, "first": t0, "last": t1}` (wall-clock seconds) twice a second until SIGTERM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from carebed import service, topics
from carebed.mqtt import Inbound, MqttClient, Outbound
from carebed.settings import get_settings


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.count += 1
        return ()


def main() -> None:
    settings = get_settings()
    stopping = service.start("counter", settings, None)
    counter = Counter()
    # No session left behind: the broker would queue every later device message for it.
    client = MqttClient(settings, client_id="carebed-bench-counter", persistent=False)
    client.subscribe(topics.DEVICE_SUBSCRIPTION, counter.handle)
    client.start()
    while not stopping.wait(0.5):
        print(json.dumps({"count": counter.count, "first": counter.first, "last": counter.last}), flush=True)
    client.stop()


if __name__ == "__main__":
    main()
