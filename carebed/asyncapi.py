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


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        *TELEMETRY_BY_KIND.values(),
        EventPayload,
        StatusPayload,
        Reading,
        Finding,
        Feedback,
        DeadLetter,
        HealthReport,
    ]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _message(name: str, summary: str, *schemas: str) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(model=s)} for s in schemas]
    # anyOf, not oneOf: the device's registered kind picks the schema, and a sparse payload may fit several.
    payload = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"name": name, "summary": summary, "contentType": "application/json", "payload": payload}


def _batch(name: str, summary: str, schema: str) -> dict[str, Any]:
    message = _message(name, summary, schema)
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
            }
        },
        "defaultContentType": "application/json",
        "channels": {
            f"{PREFIX}/devices/{{device_id}}/telemetry": {
                "description": "Periodic readings; the schema depends on the device's registered kind.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendTelemetry",
                    "bindings": qos1,
                    "message": _message("telemetry", "Device readings", *telemetry),
                },
            },
            f"{PREFIX}/devices/{{device_id}}/event": {
                "description": "Discrete events: sos and fall from a wearable, leak from a meter or leak sensor.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendEvent",
                    "bindings": qos1,
                    "message": _message("event", "A discrete event", "EventPayload"),
                },
            },
            f"{PREFIX}/devices/{{device_id}}/status": {
                "description": "Online/offline (retained; a Last Will may omit ts) and battery.",
                "parameters": _parameters("device_id"),
                "publish": {
                    "operationId": "sendStatus",
                    "bindings": qos1,
                    "message": _message("status", "Connection and battery status", "StatusPayload"),
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
                    "message": {"name": "zigbee2mqttState", "payload": {"type": "object"}},
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
                    "message": _batch("readings", "Normalised readings, oldest first", "Reading"),
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
                    "message": _batch("eventReadings", "A normalised event reading", "Reading"),
                },
            },
            f"{PREFIX}/internal/findings/{{home_id}}": {
                "description": "Findings with stable ids, keyed by home (detector and its alarm lane → alerting).",
                "parameters": _parameters("home_id"),
                "subscribe": {
                    "operationId": "receiveFinding",
                    "bindings": qos1,
                    "message": _message("finding", "Something a person should look at", "Finding"),
                },
            },
            f"{PREFIX}/internal/feedback/{{home_id}}": {
                "description": "Operator feedback for a home's detector: away, back, false alarm.",
                "parameters": _parameters("home_id"),
                "subscribe": {
                    "operationId": "receiveFeedback",
                    "bindings": qos1,
                    "message": _message("feedback", "Operator feedback", "Feedback"),
                },
            },
            f"{PREFIX}/internal/health/{{process}}": {
                "description": "Each process's lanes, retained and replaced every few seconds, cleared when it stops"
                " cleanly (every process → alerting's /api/v1/health).",
                "parameters": {"process": {"schema": {"type": "string"}}},
                "subscribe": {
                    "operationId": "receiveHealthReport",
                    "bindings": qos1,
                    "message": _message("healthReport", "A process's lane health", "HealthReport"),
                },
            },
            f"{PREFIX}/deadletter/{{reason}}": {
                "description": "Messages the gateway refused, with the reason, for integrators to see.",
                "parameters": {"reason": {"schema": {"type": "string"}}},
                "subscribe": {
                    "operationId": "receiveDeadLetter",
                    "message": _message("deadLetter", "A refused message", "DeadLetter"),
                },
            },
        },
        "components": {"schemas": _schemas()},
    }
