"""Vendor formats, one module each: each turns a vendor message into a native carebed payload.

An adapter only translates; validation against the registry and the native schema happens
once, in `gateway.core`, for every format alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from carebed.schemas import RejectReason
from carebed.topics import DeviceChannel


class Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Translation:
    """A vendor message as the native payload of one device.

    ``via`` is the path it came by (a hub id, "chirpstack"), checked against the registry so a
    hub cannot speak for a device that is not attached to it.
    """

    device_id: str
    channel: DeviceChannel
    payload: dict[str, Any]
    via: str | None = None


class Adapter(Protocol):
    name: str
    subscriptions: tuple[str, ...]

    def matches(self, topic: str) -> bool: ...

    def sender(self, topic: str) -> str:
        """Who answers for a message on this topic (the broker account, or the device behind a shared one)."""
        ...

    def translate(self, topic: str, payload: bytes, received_at: datetime) -> Translation | None:
        """None means: nothing to pass on (a duplicate, or a message of no interest)."""
        ...


def parse_json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError as exc:  # not UTF-8, not JSON, or an integer of more than 4,300 digits
        raise Rejected(RejectReason.NOT_JSON, str(exc)[:300]) from None
    except RecursionError:
        raise Rejected(RejectReason.NOT_JSON, "nested deeper than the parser allows") from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.NOT_JSON, "payload is not a JSON object")
    return data
