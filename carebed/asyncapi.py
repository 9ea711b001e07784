"""The MQTT API as an AsyncAPI 2.6 document, generated from the message schemas so it cannot drift.

`carebed asyncapi > docs/asyncapi.yaml` writes it; a test checks the committed copy is current.
In AsyncAPI 2 words, `publish` on a channel is what a client may send to it and `subscribe`
what a client may receive from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from carebed import __version__
from carebed.schemas import (
    ID_PATTERN,
    TELEMETRY_BY_KIND,
    Confirmation,
    DeadLetter,
    EventPayload,
    Feedback,
    Finding,
    HealthReport,
    Reading,
    StatusPayload,
)
from carebed.topics import PREFIX

_REF = "#/components/schemas/{model}"
_ID = {"type": "string", "pattern": ID_PATTERN}
_SECURITY = [{"brokerLogin": []}]

# Examples a person can copy. tests/test_asyncapi.py checks each against its schema and passes the
# device ones through the gateway; the vendor ones are the captured payloads in tests/fixtures/.
_TELEMETRY_EXAMPLES = {
    "wearable": {"ts": "2026-11-24T08:00:00+08:00", "seq": 1042, "heart_rate_bpm": 72, "spo2_pct": 97,
                 "steps": 1830, "worn": True, "battery_pct": 64},
    "water_meter": {"ts": "2026-11-24T08:00:00+08:00", "volume_l": 12345.6, "flow_l_min": 6.5, "battery_pct": 87},
    "gas_sensor": {"ts": "2026-11-24T08:00:00+08:00", "ch4_lel_pct": 0.0, "co_ppm": 3, "volume_m3": 812.4,
                   "flow_m3_h": 0.0},
    "leak_sensor": {"ts": "2026-11-24T08:00:00+08:00", "leak": False, "battery_low": False},
    "hub": {"ts": "2026-11-24T08:00:00+08:00"},
}  # fmt: skip
_EVENT_EXAMPLES = {
    "sos": {"ts": "2026-11-24T08:01:12+08:00", "seq": 1043, "event": "sos"},
    "fall": {"ts": "2026-11-24T03:20:05+08:00", "event": "fall"},
    "leak": {"ts": "2026-11-24T10:02:40+08:00", "event": "leak"},
}
_STATUS_EXAMPLES = {
    "online": {"ts": "2026-11-24T07:59:58+08:00", "online": True, "battery_pct": 64},
    "lastWill": {"online": False},
}
# tests/fixtures/zigbee2mqtt/sos.json, water_leak.json and action_emergency.json, as zigbee2mqtt sent them.
_Z2M_EXAMPLES = {
    "sos": {"battery_low": True, "linkquality": 60, "sos": True, "tamper": False},
    "water_leak": {"battery": 100, "battery_low": False, "device_temperature": 25, "linkquality": 116,
                   "power_outage_count": 3, "voltage": 3015, "water_leak": True},
    "action_emergency": {"action": "emergency", "battery": 100, "linkquality": 120, "voltage": 3000},
}  # fmt: skip
# tests/fixtures/chirpstack/uplink_water_meter.json: a ChirpStack v4 uplink whose codec decoded a meter's frame.
_CHIRPSTACK_EXAMPLES = {
    "uplink_water_meter": {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-11-24T07:59:15.775023242+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "carebed meters",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "water meter",
            "deviceName": "meter-502",
            "devEui": "0101010101010101",
            "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": "00189440",
        "adr": True,
        "dr": 1,
        "fCnt": 10,
        "fPort": 1,
        "confirmed": False,
        "data": "AAAwOQAAAAA=",
        "object": {"volume_l": 12345.6, "flow_l_min": 0.0, "leak": False, "battery_pct": 87},
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 4217106255,
                "rssi": -36,
                "snr": 10.5,
                "channel": 2,
                "location": {},
                "context": "E3OWOQ==",
                "metadata": {"region_common_name": "CN470", "region_config_id": "cn470_10"},
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": 486300000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5"}},
        },
    }
}
_SOS_READING = {
    "home_id": "home-00001", "device_id": "home-00001-watch", "device_kind": "wearable", "channel": "event",
    "ts": "2026-11-24T00:01:12Z", "received_at": "2026-11-24T00:01:12.041000Z", "seq": 1043, "event": "sos",
}  # fmt: skip
_TELEMETRY_READINGS = [
    {"home_id": "home-00001", "device_id": "home-00001-watch", "device_kind": "wearable", "channel": "telemetry",
     "ts": "2026-11-24T00:00:00Z", "received_at": "2026-11-24T00:00:00.032000Z", "heart_rate_bpm": 72.0,
     "spo2_pct": 97.0, "steps": 1830, "worn": True, "battery_pct": 64.0},
    {"home_id": "home-00001", "device_id": "home-00001-meter", "device_kind": "water_meter", "channel": "telemetry",
     "ts": "2026-11-24T00:00:00Z", "received_at": "2026-11-24T00:00:00.035000Z", "water_volume_l": 12345.6,
     "water_flow_l_min": 6.5, "battery_pct": 87.0},
]  # fmt: skip
_FINDING = {
    "id": "home-00001:sos:home-00001-watch:2026-11-24T00:01:12+00:00", "home_id": "home-00001",
    "device_id": "home-00001-watch", "code": "sos", "severity": "critical", "ts": "2026-11-24T00:01:12Z",
    "detected_at": "2026-11-24T00:01:12Z", "summary": "SOS button pressed", "evidence": {"seq": 1043},
    "received_at": "2026-11-24T00:01:12.041000Z",
}  # fmt: skip
_CONFIRMATION = {"event": "sos", "ts": "2026-11-24T00:01:12Z", "seq": 1043, "kind": "confirmation"}
_HEALTH_REPORT = {
    "process": "gateway-events", "ts": "2026-11-24T00:01:15Z",
    "lanes": [{"lane": "carebed-gateway-events", "connected": True, "oldest_unacked_s": 0.0, "since_processed_s": 3.2}],
}  # fmt: skip
_FEEDBACK = {
    "id": "away-17", "home_id": "home-00001", "kind": "away", "ts": "2026-11-24T01:30:00Z",
    "until": "2026-11-27T10:00:00Z",
}  # fmt: skip
_DEAD_LETTER = {
    "reason": "unknown_device", "detail": "device 'watch-9' is not in the registry",
    "topic": "carebed/v1/devices/watch-9/event", "payload": '{"ts":"2026-11-24T08:01:12+08:00","event":"sos"}',
    "received_at": "2026-11-24T00:01:12.040000Z", "kind": "dead_letter",
}  # fmt: skip


def _examples(examples: dict[str, Any], summary: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "summary": summary.format(name=name), "payload": payload} for name, payload in examples.items()
    ]


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        *TELEMETRY_BY_KIND.values(),
        EventPayload,
        StatusPayload,
        Reading,
        Finding,
        Feedback,
        DeadLetter,
        Confirmation,
        HealthReport,
    ]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _message(name: str, summary: str, examples: list[dict[str, Any]], *schemas: str) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(model=s)} for s in schemas]
    # anyOf, not oneOf: the device's registered kind picks the schema, and a sparse payload may fit several.
    payload = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {
        "name": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
        "examples": examples,
    }


def _batch(name: str, summary: str, examples: list[dict[str, Any]], schema: str) -> dict[str, Any]:
    message = _message(name, summary, examples, schema)
    return {**message, "payload": {"type": "array", "items": message["payload"]}}


def _parameters(*names: str) -> dict[str, Any]:
    return {name: {"schema": dict(_ID)} for name in names}


def document() -> dict[str, Any]:
    telemetry = [m.__name__ for m in TELEMETRY_BY_KIND.values()]
    qos1 = {"mqtt": {"qos": 1, "bindingVersion": "0.1.0"}}
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "carebed MQTT API",
            "version": __version__,
            "description": (
                "Devices publish under their own id (the MQTT user name; the broker's ACL enforces it). "
                "Timestamps carry a UTC offset; unknown keys are refused. A message the gateway refuses is "
                "republished on the dead-letter channel with its reason. Internal channels carry normalised "
                "readings, findings and operator feedback between the services at QoS 1 with persistent sessions."
            ),
        },
        "servers": {
            "local": {
                "url": "127.0.0.1:1883",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "The broker `carebed up` starts (its port is printed at start).",
                "security": _SECURITY,
            },
            "devices": {
                "url": "{host}:8883",
                "protocol": "secure-mqtt",
                "protocolVersion": "5",
                "description": (
                    "The compose stack's device listener: MQTT over TLS 1.2 or later, the broker's certificate "
                    "signed by the CA the centre gives its devices (docs/operations.md, TLS for devices)."
                ),
                "variables": {"host": {"description": "The broker's public name, as in its certificate."}},
                "security": _SECURITY,
            },
        },
        "defaultContentType": "application/json",
        "channels": {
            f"{PREFIX}/devices/{{device_id}}/telemetry": {
                "description": "Periodic readings; the schema depends on the device's registered kind.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendTelemetry",
                    "bindings": qos1,
                    "message": _message(
                        "telemetry",
                        "Device readings",
                        _examples(_TELEMETRY_EXAMPLES, "Telemetry of a device registered as {name}"),
                        *telemetry,
                    ),
                },
            },
            f"{PREFIX}/devices/{{device_id}}/event": {
                "description": "Discrete events: sos and fall from a wearable, leak from a meter or leak sensor.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendEvent",
                    "bindings": qos1,
                    "message": _message(
                        "event", "A discrete event", _examples(_EVENT_EXAMPLES, "A {name} event"), "EventPayload"
                    ),
                },
            },
            f"{PREFIX}/devices/{{device_id}}/status": {
                "description": "Online/offline (retained; a Last Will may omit ts) and battery.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendStatus",
                    "bindings": qos1,
                    "message": _message(
                        "status",
                        "Connection and battery status",
                        _examples(_STATUS_EXAMPLES, "Status: {name}"),
                        "StatusPayload",
                    ),
                },
            },
            f"{PREFIX}/confirmations/{{device_id}}": {
                "description": (
                    "The alerting service has committed the alert for this device's SOS or fall (or recognised a "
                    "copy of it); a device may read only its own. The broker acknowledges a message before it is "
                    "on disk, so a device keeps each SOS and fall and publishes the very same payload again (same "
                    "ts and seq) until it is confirmed: after 5 s, then with a pause that doubles up to 60 s. A "
                    "copy never opens a second alert. Matched by seq when the event had one, else by event and ts."
                ),
                "parameters": _parameters("device_id"),
                "subscribe": {
                    "operationId": "receiveConfirmation",
                    "bindings": qos1,
                    "message": _message(
                        "confirmation",
                        "An SOS or fall is alerted",
                        _examples({"sos": _CONFIRMATION}, "The device's SOS {name} is alerted; stop resending it"),
                        "Confirmation",
                    ),
                },
            },
            f"{PREFIX}/z2m/{{hub_id}}/{{friendly_name}}": {
                "description": (
                    "A zigbee2mqtt hub's device state (its base_topic is carebed/v1/z2m/{hub_id}; each friendly name "
                    "is a carebed device id registered with via: {hub_id}). Read: water_leak, gas, carbon_monoxide, "
                    "smoke, sos, action (emergency), battery, battery_low, last_seen; other keys are ignored. "
                    "Also {friendly_name}/availability and bridge/state."
                ),
                "parameters": _parameters("hub_id", "friendly_name"),
                "publish": {
                    "operationId": "sendZigbee2mqttState",
                    "message": {
                        "name": "zigbee2mqttState",
                        "payload": {"type": "object"},
                        "examples": _examples(_Z2M_EXAMPLES, "Captured zigbee2mqtt state ({name})"),
                    },
                },
            },
            "application/{application_id}/device/{dev_eui}/event/up": {
                "description": (
                    "ChirpStack v4 uplink events. The device profile's codec must decode the frame into native "
                    "telemetry fields in `object`; the device id is the DevEUI in lower case, registered with "
                    "via: chirpstack. Repeated deduplicationIds are dropped; fCnt gaps are counted."
                ),
                "parameters": {"application_id": {"schema": {"type": "string"}}, **_parameters("dev_eui")},
                "publish": {
                    "operationId": "sendChirpstackUplink",
                    "message": {
                        "name": "chirpstackUplink",
                        "payload": {
                            "type": "object",
                            "required": ["deduplicationId", "deviceInfo", "object"],
                            "properties": {
                                "deduplicationId": {"type": "string"},
                                "time": {"type": "string", "format": "date-time"},
                                "deviceInfo": {
                                    "type": "object",
                                    "required": ["devEui"],
                                    "properties": {"devEui": {"type": "string"}},
                                },
                                "fCnt": {"type": "integer"},
                                "object": {"type": "object"},
                            },
                        },
                        "examples": _examples(_CHIRPSTACK_EXAMPLES, "Captured ChirpStack v4 uplink ({name})"),
                    },
                },
            },
            f"{PREFIX}/internal/readings": {
                "description": (
                    "Validated telemetry and status readings of every home in batches: the gateway gathers what "
                    "arrives within 50 ms into one message (gateway → detector, alerting)."
                ),
                "subscribe": {
                    "operationId": "receiveReadings",
                    "bindings": qos1,
                    "message": _batch(
                        "readings",
                        "Normalised readings, oldest first",
                        [{"name": "telemetry", "summary": "A watch and a meter", "payload": _TELEMETRY_READINGS}],
                        "Reading",
                    ),
                },
            },
            f"{PREFIX}/internal/events": {
                "description": (
                    "Validated event readings (SOS, fall, leak), each sent at once as a batch of one: a lane of "
                    "their own, so they never queue behind telemetry (gateway → detector and its alarm lane)."
                ),
                "subscribe": {
                    "operationId": "receiveEventReadings",
                    "bindings": qos1,
                    "message": _batch(
                        "eventReadings",
                        "A normalised event reading",
                        [{"name": "sos", "summary": "An SOS press", "payload": [_SOS_READING]}],
                        "Reading",
                    ),
                },
            },
            f"{PREFIX}/internal/findings/{{home_id}}": {
                "description": "Findings with stable ids, keyed by home (detector and its alarm lane → alerting).",
                "parameters": _parameters("home_id"),
                "subscribe": {
                    "operationId": "receiveFinding",
                    "bindings": qos1,
                    "message": _message(
                        "finding",
                        "Something a person should look at",
                        [{"name": "sos", "summary": "An SOS finding", "payload": _FINDING}],
                        "Finding",
                    ),
                },
            },
            f"{PREFIX}/internal/feedback/{{home_id}}": {
                "description": "Operator feedback for a home's detector: away, back, false alarm.",
                "parameters": _parameters("home_id"),
                "subscribe": {
                    "operationId": "receiveFeedback",
                    "bindings": qos1,
                    "message": _message(
                        "feedback",
                        "Operator feedback",
                        [{"name": "away", "summary": "The resident is away", "payload": _FEEDBACK}],
                        "Feedback",
                    ),
                },
            },
            f"{PREFIX}/internal/health/{{process}}": {
                "description": "Each process's lanes, retained and replaced every few seconds, cleared when it stops"
                " cleanly (every process → alerting's /api/v1/health).",
                "parameters": {"process": {"schema": {"type": "string"}}},
                "subscribe": {
                    "operationId": "receiveHealthReport",
                    "bindings": qos1,
                    "message": _message(
                        "healthReport",
                        "A process's lane health",
                        _examples({"gateway-events": _HEALTH_REPORT}, "The lanes of {name}"),
                        "HealthReport",
                    ),
                },
            },
            f"{PREFIX}/deadletter/{{reason}}": {
                "description": "Messages the gateway refused, with the reason, for integrators to see.",
                "parameters": {"reason": {"schema": {"type": "string"}}},
                "subscribe": {
                    "operationId": "receiveDeadLetter",
                    "message": _message(
                        "deadLetter",
                        "A refused message",
                        [{"name": "unknownDevice", "summary": "A device not in the registry", "payload": _DEAD_LETTER}],
                        "DeadLetter",
                    ),
                },
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "brokerLogin": {
                    "type": "userPassword",
                    "description": (
                        "Every client logs in; anonymous clients are refused. A device's user name is its id and its "
                        "password comes from `carebed devices add` (shown once); a zigbee2mqtt hub logs in as its "
                        "hub id, ChirpStack as carebed-chirpstack. The broker's ACL lets a device write only below "
                        "its own id; a publish elsewhere is refused (reason code 135, not authorized)."
                    ),
                }
            },
        },
    }
