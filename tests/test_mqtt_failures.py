"""A handler that raises, against a real Mosquitto: its input is never left lying unacknowledged.

Before, such an input stayed unacknowledged and was not delivered again until the next
connection; after the broker's in-flight window (1,000) of them, the client received nothing
more (issue 19, row 1).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from carebed.mqtt import HANDLER_FAILURES, Inbound, MqttClient, Outbound
from carebed.settings import Settings
from tests.support import Observer, wait_for

pytestmark = pytest.mark.integration
POISON = 1500  # more than the broker's in-flight window of 1,000


def failures(client_id: str, action: str) -> float:
    return HANDLER_FAILURES.labels(client_id, action)._value.get()


@pytest.fixture
def consumer(settings: Settings) -> Iterator[MqttClient]:
    client = MqttClient(settings, client_id="test-consumer")
    yield client
    client.stop()


def test_poison_input_is_dead_lettered_and_acknowledged_and_the_lane_moves_on(
    settings: Settings, consumer: MqttClient, device: MqttClient
) -> None:
    handled: queue.Queue[bytes] = queue.Queue()

    def handle(message: Inbound) -> list[Outbound]:
        if message.payload.startswith(b"poison"):
            raise RecursionError("maximum recursion depth exceeded")
        handled.put(message.payload)
        return []

    def dead_letter(message: Inbound, exc: Exception) -> list[Outbound]:
        return [Outbound("test/dead", message.payload)]

    dead = Observer(settings, "test/dead")
    dead.client.start()
    consumer.subscribe("test/in", handle, on_error=dead_letter)
    consumer.start()
    try:
        for i in range(POISON):
            device.publish(Outbound("test/in", b"poison %d" % i))
        device.publish(Outbound("test/in", b"good"))
        assert handled.get(timeout=60) == b"good"
        wait_for(lambda: dead.received == POISON, 60, f"{POISON} dead letters (got {dead.received})")
        assert failures("test-consumer", "dead_lettered") >= POISON
    finally:
        dead.client.stop()


def test_a_passing_failure_is_retried_in_place_until_it_succeeds(
    settings: Settings, consumer: MqttClient, device: MqttClient
) -> None:
    """The database blinked: the finding is handled late, never dropped, and nothing is dead-lettered."""
    attempts: list[bytes] = []
    done: queue.Queue[bytes] = queue.Queue()

    def handle(message: Inbound) -> list[Outbound]:
        attempts.append(message.payload)
        if len(attempts) < 3:
            raise ConnectionError("database is away")
        done.put(message.payload)
        return [Outbound("test/out", message.payload)]

    out = Observer(settings, "test/out")
    out.client.start()
    consumer.subscribe("test/in", handle)
    consumer.start()
    try:
        device.publish(Outbound("test/in", b"sos finding"))
        assert done.get(timeout=30) == b"sos finding"
        assert out.next(timeout=10).payload == b"sos finding"
        assert attempts == [b"sos finding"] * 3
        assert failures("test-consumer", "retried") >= 2
    finally:
        out.client.stop()
