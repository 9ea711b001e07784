"""ChirpStack v4 uplinks: LoRaWAN meters and sensors through a network server.

ChirpStack's MQTT integration publishes each uplink on
`application/{application_id}/device/{dev_eui}/event/up` as JSON (`deduplicationId`, `time`,
`deviceInfo.devEui`, `fCnt`, `object`, ...). The device profile's codec must decode the frame
into native carebed fields (`volume_l`, `flow_l_min`, `leak`, `battery_pct`, or `event`); the
carebed device id is the DevEUI in lower case, registered with `via: chirpstack`. Only the
network server's broker account may write below `application/`.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from carebed import topics
from carebed.schemas import RejectReason
from carebed.topics import DeviceChannel
from gateway.adapters import Rejected, Translation, parse_json_object

VIA = "chirpstack"
SEEN_UPLINKS = 10_000


class ChirpStackAdapter:
    """Drops a repeated `deduplicationId` (ChirpStack may publish an uplink again) and counts frame-counter gaps."""

    name = "chirpstack"
    subscriptions: tuple[str, ...] = (topics.CHIRPSTACK_UPLINKS,)

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_fcnt: dict[str, int] = {}
        self.frame_gaps = 0
        self.duplicates = 0

    def matches(self, topic: str) -> bool:
        return topic.startswith("application/")

    def sender(self, topic: str) -> str:
        """The DevEUI: every uplink comes through the network server's one account, so that says nothing."""
        parts = topic.split("/")
        return parts[3].lower() if len(parts) > 3 else topic

    def translate(self, topic: str, payload: bytes, received_at: datetime) -> Translation | None:
        parts = topic.split("/")
        if len(parts) != 6 or parts[2] != "device" or parts[4:] != ["event", "up"]:
            raise Rejected(RejectReason.BAD_TOPIC, "not application/{application_id}/device/{dev_eui}/event/up")
        dev_eui = parts[3].lower()
        uplink = parse_json_object(payload)
        info = uplink.get("deviceInfo")
        if not isinstance(info, dict) or str(info.get("devEui", "")).lower() != dev_eui:
            raise Rejected(RejectReason.DEVICE_MISMATCH, f"deviceInfo.devEui does not match the topic's {dev_eui}")
        dedup = uplink.get("deduplicationId")
        if not isinstance(dedup, str) or not dedup:
            raise Rejected(RejectReason.INVALID_PAYLOAD, "deduplicationId: missing")
        if dedup in self._seen:
            self.duplicates += 1
            return None
        self._seen[dedup] = None
        if len(self._seen) > SEEN_UPLINKS:
            self._seen.popitem(last=False)
        decoded = uplink.get("object")
        if not isinstance(decoded, dict) or not decoded:
            raise Rejected(
                RejectReason.INVALID_PAYLOAD, "object: no decoded payload (set a codec on the device profile)"
            )
        fcnt = uplink.get("fCnt")
        if isinstance(fcnt, int):
            self._count_gap(dev_eui, fcnt)
        native = {**decoded, "ts": uplink.get("time") or received_at.isoformat()}
        if isinstance(fcnt, int):
            native["seq"] = fcnt
        channel = DeviceChannel.EVENT if "event" in decoded else DeviceChannel.TELEMETRY
        return Translation(dev_eui, channel, native, via=VIA)

    def _count_gap(self, dev_eui: str, fcnt: int) -> None:
        """Frames lost on the air show as a jump in fCnt; a lower fCnt is a device reset, not a gap."""
        last = self._last_fcnt.get(dev_eui)
        if last is not None and fcnt > last + 1:
            self.frame_gaps += fcnt - last - 1
        self._last_fcnt[dev_eui] = fcnt
