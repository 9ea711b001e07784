"""Pure core: the simulated homes' messages in each format the gateway reads.

`native` publishes as the devices themselves. `zigbee2mqtt` publishes as each home's hub:
the wearable becomes an SOS button, the water meter a leak sensor, the gas sensor a gas
detector. `chirpstack` publishes as a LoRaWAN network server: devices are named by DevEUI
and their native fields travel as the decoded `object` of an uplink.
"""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from typing import Any

from carebed import topics
from carebed.registry import DeviceSpec, HomeSpec, RegistryFile
from carebed.schemas import DeviceKind
from carebed.topics import DeviceChannel
from simulators.homes import Message

CHIRPSTACK_APPLICATION = "4f1d7c3e-58a0-4a2b-9c1e-c0ffee000001"
Z2M_GAS_ALARM_LEL_PCT = 10.0  # where a Zigbee gas detector's own alarm would trip


class Format(StrEnum):
    NATIVE = "native"
    ZIGBEE2MQTT = "zigbee2mqtt"
    CHIRPSTACK = "chirpstack"


def hub_id(home_id: str) -> str:
    return f"{home_id}-hub"


def dev_eui(device_id: str) -> str:
    """A stable 64-bit EUI for a simulated device."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"carebed:{device_id}").hex[:16]


def registry_for(registry: RegistryFile, fmt: Format) -> RegistryFile:
    """The registry an integrator loads so the gateway accepts the simulator in this format."""
    if fmt is Format.NATIVE:
        return registry
    homes = []
    for home in registry.homes:
        if fmt is Format.ZIGBEE2MQTT:
            hub = hub_id(home.id)
            devices = [DeviceSpec(id=hub, kind=DeviceKind.HUB, model="zigbee2mqtt")] + [
                DeviceSpec(id=d.id, kind=_Z2M_KIND[d.kind], model=d.model, via=hub) for d in home.devices
            ]
        else:
            devices = [DeviceSpec(id=dev_eui(d.id), kind=d.kind, model=d.model, via="chirpstack") for d in home.devices]
        homes.append(HomeSpec(**{**home.model_dump(exclude={"devices"}), "devices": devices}))
    return RegistryFile(homes=homes)


_Z2M_KIND = {
    DeviceKind.WEARABLE: DeviceKind.WEARABLE,
    DeviceKind.WATER_METER: DeviceKind.LEAK_SENSOR,
    DeviceKind.GAS_SENSOR: DeviceKind.GAS_SENSOR,
}


def encode(message: Message, home_id: str, fmt: Format, seed: int = 0) -> tuple[str, bytes]:
    """Topic and payload of one simulated message in the given format."""
    if fmt is Format.NATIVE:
        return topics.device(message.device_id, message.channel), _json(message.payload)
    if fmt is Format.ZIGBEE2MQTT:
        return f"{topics.PREFIX}/z2m/{hub_id(home_id)}/{message.device_id}", _json(_z2m_state(message))
    eui = dev_eui(message.device_id)
    decoded = {k: v for k, v in message.payload.items() if k not in ("ts", "seq")}
    uplink = {
        "deduplicationId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}:{eui}:{message.payload.get('seq')}")),
        "time": message.payload["ts"],
        "deviceInfo": {"applicationId": CHIRPSTACK_APPLICATION, "applicationName": "carebed simulator", "devEui": eui},
        "fCnt": message.payload.get("seq", 0),
        "fPort": 1,
        "object": decoded,
    }
    return f"application/{CHIRPSTACK_APPLICATION}/device/{eui}/event/up", _json(uplink)


def _z2m_state(message: Message) -> dict[str, Any]:
    payload = message.payload
    state: dict[str, Any] = {"last_seen": payload["ts"], "linkquality": 120}
    if message.channel is DeviceChannel.EVENT:
        return state | ({"action": "emergency"} if payload["event"] in ("sos", "fall") else {"water_leak": True})
    if "battery_pct" in payload:
        state["battery"] = round(payload["battery_pct"])
    if "volume_l" in payload:
        state["water_leak"] = bool(payload.get("leak"))
    if "ch4_lel_pct" in payload:
        state["gas"] = payload["ch4_lel_pct"] >= Z2M_GAS_ALARM_LEL_PCT
    return state


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
