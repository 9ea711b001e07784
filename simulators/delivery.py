"""The reference device's side of delivery: an SOS or a fall is published again until it is confirmed.

A broker acknowledges a message before it has written it to disk (benchmarks/broker_persistence.py),
so an acknowledgement is not delivery. The device keeps each alarm event until the alerting service,
having committed its alert, confirms it on the device's own topic (topics.confirmation), and
publishes the very same payload again meanwhile, with a growing pause. The same ts and seq make the
copy the same finding, which the alerting service recognises: a resend never opens a second alert.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from carebed.mqtt import Inbound, Outbound
from carebed.schemas import Confirmation, DeviceEvent

RESEND_AFTER_S = 5.0
RESEND_MAX_S = 60.0
CONFIRMED_EVENTS = frozenset({DeviceEvent.SOS, DeviceEvent.FALL})

# A device matches a confirmation by its sequence number when it sent one, else by event and time.
Key = tuple[str, int] | tuple[str, DeviceEvent, datetime]


def _key(device_id: str, event: DeviceEvent, ts: datetime, seq: int | None) -> Key:
    return (device_id, seq) if seq is not None else (device_id, event, ts)


@dataclass(slots=True)
class _Pending:
    message: Outbound
    due: float
    pause: float


class Unconfirmed:
    """Alarm events sent and not yet confirmed. Thread-safe: confirmations arrive on the network thread."""

    def __init__(
        self,
        resend_after_s: float = RESEND_AFTER_S,
        resend_max_s: float = RESEND_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first, self._max, self._clock = resend_after_s, resend_max_s, clock
        self._pending: dict[Key, _Pending] = {}
        self._lock = threading.Lock()
        self.resent = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def sent(self, device_id: str, message: Outbound) -> None:
        """Note an event just published on the device's event topic; only SOS and falls are kept."""
        payload = json.loads(message.payload)
        event = DeviceEvent(payload["event"])
        if event not in CONFIRMED_EVENTS:
            return
        key = _key(device_id, event, datetime.fromisoformat(payload["ts"]), payload.get("seq"))
        with self._lock:
            self._pending[key] = _Pending(message, self._clock() + self._first, self._first)

    def confirm(self, message: Inbound) -> list[Outbound]:
        """Handler of the confirmation topic: the event is delivered; an unknown or late copy is ignored."""
        try:
            confirmation = Confirmation.model_validate_json(message.payload)
        except ValidationError:
            return []
        device_id = message.topic.rsplit("/", 1)[-1]
        with self._lock:
            self._pending.pop(_key(device_id, confirmation.event, confirmation.ts, confirmation.seq), None)
        return []

    def due(self) -> list[Outbound]:
        """The events to publish again now; each waits twice as long for its next turn, up to the maximum."""
        now = self._clock()
        with self._lock:
            late = [pending for pending in self._pending.values() if pending.due <= now]
            for pending in late:
                pending.pause = min(pending.pause * 2, self._max)
                pending.due = now + pending.pause
            self.resent += len(late)
        return [pending.message for pending in late]
