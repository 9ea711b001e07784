"""The native carebed format: `carebed/v1/devices/{device_id}/{telemetry|event|status}`, payload as is."""

from __future__ import annotations

from datetime import datetime

from carebed import topics
from carebed.schemas import RejectReason
from gateway.adapters import Rejected, Translation, parse_json_object


class NativeAdapter:
    name = "native"
    subscriptions: tuple[str, ...] = topics.DEVICE_ROUTINE_SUBSCRIPTIONS  # events come by their own lane

    def matches(self, topic: str) -> bool:
        return topic.startswith(f"{topics.PREFIX}/devices/")

    def sender(self, topic: str) -> str:
        return topic.split("/")[3]  # the ACL lets only this device write here

    def translate(self, topic: str, payload: bytes, received_at: datetime) -> Translation:
        parsed = topics.parse_device(topic)
        if parsed is None:
            raise Rejected(RejectReason.BAD_TOPIC, "not carebed/v1/devices/{device_id}/{telemetry|event|status}")
        device_id, channel = parsed
        data = parse_json_object(payload)
        if data.pop("device_id", device_id) != device_id:
            raise Rejected(RejectReason.DEVICE_MISMATCH, f"payload names another device than topic {device_id!r}")
        return Translation(device_id, channel, data)
