"""Every MQTT topic name in one place.

Device topics are keyed by device id so a broker ACL can confine each device to its own
branch. Readings travel between the services in batches (JSON arrays) on one topic per lane,
so one broker message carries many readings; findings and feedback are keyed by home id.
"""

from __future__ import annotations

from enum import StrEnum

PREFIX = "carebed/v1"


class DeviceChannel(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


DEVICE_SUBSCRIPTION = f"{PREFIX}/devices/+/+"
# Events (SOS, fall, leak) travel in a lane of their own, so they never queue behind telemetry.
DEVICE_EVENT_SUBSCRIPTION = f"{PREFIX}/devices/+/{DeviceChannel.EVENT}"
DEVICE_ROUTINE_SUBSCRIPTIONS = (
    f"{PREFIX}/devices/+/{DeviceChannel.TELEMETRY}",
    f"{PREFIX}/devices/+/{DeviceChannel.STATUS}",
)
READINGS = f"{PREFIX}/internal/readings"
EVENTS = f"{PREFIX}/internal/events"
FINDINGS_SUBSCRIPTION = f"{PREFIX}/internal/findings/+"
FEEDBACK_SUBSCRIPTION = f"{PREFIX}/internal/feedback/+"
DEAD_LETTER_SUBSCRIPTION = f"{PREFIX}/deadletter/#"
# The alerting service confirms each SOS and fall once its alert is committed, on a topic of the
# device's own; the device publishes the event again until then (docs/architecture.md, "Delivery").
CONFIRMATION_SUBSCRIPTION = f"{PREFIX}/confirmations/+"
# Vendor trees: zigbee2mqtt hubs publish below their own id; ChirpStack v4 uplinks by application and DevEUI.
Z2M_PREFIX = f"{PREFIX}/z2m"
CHIRPSTACK_UPLINKS = "application/+/device/+/event/up"
HEALTH_SUBSCRIPTION = f"{PREFIX}/internal/health/+"


def device(device_id: str, channel: DeviceChannel) -> str:
    return f"{PREFIX}/devices/{device_id}/{channel}"


def parse_device(topic: str) -> tuple[str, DeviceChannel] | None:
    """Split a device topic into (device id, channel); None if it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] != "devices":
        return None
    try:
        return parts[3], DeviceChannel(parts[4])
    except ValueError:
        return None


def findings(home_id: str) -> str:
    return f"{PREFIX}/internal/findings/{home_id}"


def feedback(home_id: str) -> str:
    return f"{PREFIX}/internal/feedback/{home_id}"


def dead_letter(reason: str) -> str:
    return f"{PREFIX}/deadletter/{reason}"


def confirmation(device_id: str) -> str:
    return f"{PREFIX}/confirmations/{device_id}"


def health(process: str) -> str:
    """Each process's retained lane report (carebed/health.py)."""
    return f"{PREFIX}/internal/health/{process}"
