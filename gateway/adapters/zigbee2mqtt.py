"""zigbee2mqtt hubs: a home's Zigbee sensors (leak, gas, CO, smoke, SOS buttons) through its bridge.

The hub's zigbee2mqtt `base_topic` is set to `carebed/v1/z2m/{hub_id}`, the hub logs in to the
broker as `{hub_id}` (the ACL confines it to that branch), and each Zigbee device's friendly
name is its carebed device id, registered with `via: {hub_id}`. zigbee2mqtt publishes a
device's whole state as one JSON object on `{base_topic}/{friendly_name}`, its availability
on `{base_topic}/{friendly_name}/availability`, and the bridge's own on `{base_topic}/bridge/state`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carebed import topics
from carebed.schemas import RejectReason
from carebed.topics import DeviceChannel
from gateway.adapters import Rejected, Translation, parse_json_object

PREFIX = topics.Z2M_PREFIX

# zigbee2mqtt exposes → native carebed fields
_STATE_FIELDS = {
    "water_leak": "leak",
    "gas": "gas_alarm",
    "carbon_monoxide": "co_alarm",
    "smoke": "smoke",
    "battery": "battery_pct",
    "battery_low": "battery_low",
}
_SOS_ACTIONS = {"emergency", "sos"}


class Zigbee2MqttAdapter:
    name = "zigbee2mqtt"
    subscriptions: tuple[str, ...] = (f"{PREFIX}/#",)

    def matches(self, topic: str) -> bool:
        return topic.startswith(f"{PREFIX}/")

    def sender(self, topic: str) -> str:
        return topic.split("/")[3]  # the hub: it logs in as itself, and may name any friendly name below it

    def translate(self, topic: str, payload: bytes, received_at: datetime) -> Translation | None:
        parts = topic.split("/")[len(PREFIX.split("/")) :]
        if len(parts) < 2:
            raise Rejected(RejectReason.BAD_TOPIC, "not carebed/v1/z2m/{hub_id}/{friendly_name}[/availability]")
        hub, name, rest = parts[0], parts[1], parts[2:]
        if name == "bridge":
            if rest == ["state"]:
                return Translation(hub, DeviceChannel.STATUS, {"online": _online(payload)}, via=None)
            return None  # bridge/info, bridge/devices, bridge/logging: nothing about the home
        if rest == ["availability"]:
            return Translation(name, DeviceChannel.STATUS, {"online": _online(payload)}, via=hub)
        if rest:
            return None  # {friendly_name}/set and /get are requests to the hub, not reports
        state = parse_json_object(payload)
        ts = _last_seen(state.get("last_seen"), received_at)
        action = state.get("action")
        if state.get("sos") is True or (isinstance(action, str) and action in _SOS_ACTIONS):
            return Translation(name, DeviceChannel.EVENT, {"ts": ts, "event": "sos"}, via=hub)
        values = {native: state[vendor] for vendor, native in _STATE_FIELDS.items() if vendor in state}
        if not values:
            return None  # e.g. only linkquality or voltage
        return Translation(name, DeviceChannel.TELEMETRY, {"ts": ts, **values}, via=hub)


def _online(payload: bytes) -> bool:
    """Availability is `{"state": "online"}` in current zigbee2mqtt and plain `online` in older releases."""
    text = payload.decode("utf-8", errors="replace").strip()
    state: Any = text
    if text.startswith("{"):
        state = parse_json_object(payload).get("state")
    if state not in ("online", "offline"):
        raise Rejected(RejectReason.INVALID_PAYLOAD, f"availability must be online or offline, not {text[:40]!r}")
    return bool(state == "online")


def _last_seen(value: Any, received_at: datetime) -> Any:
    """zigbee2mqtt's optional `last_seen` is ISO 8601 or epoch milliseconds; without it, the gateway's clock.

    A value that is neither is passed on as sent, for the native schema to refuse (or, for an SOS,
    to replace by the receive time).
    """
    if value is None:
        return received_at.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC).isoformat()
        except (ValueError, OverflowError, OSError):
            return value
    return value
