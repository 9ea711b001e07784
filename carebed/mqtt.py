"""The one MQTT client wrapper; nothing else in carebed imports paho.

Services consume with a persistent MQTT 5 session (clean start off, long session expiry), so
the broker queues their messages while they are down. Acknowledgements are manual: an input
is acknowledged only once every output it produced has been acknowledged by the broker, so a
crash between the two re-delivers the input instead of losing the output. Outputs carry
stable ids, which makes the re-delivery harmless downstream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ValidationError

from carebed.settings import Settings

log = logging.getLogger(__name__)

MAX_UNACKED = 10_000


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    retain: bool


Handler = Callable[[Inbound], Sequence[Outbound]]
Model = TypeVar("Model", bound=BaseModel)


def decode(model: type[Model], message: Inbound) -> Model | None:
    """An internal message as its schema, or None (logged) so one bad message never stalls a consumer."""
    try:
        return model.model_validate_json(message.payload)
    except ValidationError:
        log.error("malformed message on an internal topic", extra={"topic": message.topic, "schema": model.__name__})
        return None


@dataclass(slots=True)
class _PendingAck:
    mid: int
    qos: int
    remaining: int


@dataclass(slots=True)
class _Confirmation:
    done: threading.Event = field(default_factory=threading.Event)
    accepted: bool = False


@dataclass(slots=True)
class _Subscription:
    """Renewed on every (re)connect; the handler itself is registered with paho's topic tree."""

    topic_filter: str
    qos: int


@dataclass
class MqttClient:
    """A connection to the broker for one service (or one simulator)."""

    settings: Settings
    client_id: str
    persistent: bool = True
    max_inflight: int = 1000
    _subscriptions: list[_Subscription] = field(default_factory=list)
    _pending: dict[int, _PendingAck] = field(default_factory=dict)
    _confirmations: dict[int, _Confirmation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    connected: threading.Event = field(default_factory=threading.Event)
    _connect_answered: threading.Event = field(default_factory=threading.Event)
    _unacked: int = 0
    _unacked_changed: threading.Condition = field(default_factory=threading.Condition)
    _refusal: str | None = None

    def __post_init__(self) -> None:
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self._client.max_inflight_messages_set(self.max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if self.settings.mqtt_tls:
            self._client.tls_set(
                ca_certs=str(self.settings.mqtt_ca_file) if self.settings.mqtt_ca_file else None,
                certfile=str(self.settings.mqtt_cert_file) if self.settings.mqtt_cert_file else None,
                keyfile=str(self.settings.mqtt_key_file) if self.settings.mqtt_key_file else None,
            )
        if self.settings.mqtt_username:
            password = self.settings.mqtt_password.get_secret_value() if self.settings.mqtt_password else None
            self._client.username_pw_set(self.settings.mqtt_username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Register a handler; call before :meth:`start`. Its outputs are published for it.

        Filters of one client must not overlap: paho's topic tree routes each message to every
        filter it matches, and each would handle (and acknowledge) it.
        """
        self._subscriptions.append(_Subscription(topic_filter, qos))
        self._client.message_callback_add(topic_filter, partial(self._deliver, handler))

    def will(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self._client.will_set(topic, payload, qos=1, retain=retain)

    def start(self, timeout: float = 15.0) -> None:
        """Connect and run the network loop in a background thread; wait until connected."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.mqtt_session_expiry_s if self.persistent else 0
        self._client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=not self.persistent,
            properties=properties,
        )
        self._client.loop_start()
        if not self._connect_answered.wait(timeout) or not self.connected.is_set():
            self.stop()
            where = f"{self.settings.mqtt_host}:{self.settings.mqtt_port}"
            raise ConnectionError(f"MQTT connection to {where} failed: {self._refusal or 'no answer'}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, message: Outbound) -> paho.MQTTMessageInfo:
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if message.qos > 0:
            with self._unacked_changed:
                self._unacked += 1
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish to {message.topic} failed: {paho.error_string(info.rc)}")
        return info

    def publish_paced(self, message: Outbound, timeout: float = 60.0) -> None:
        """Publish from a producer thread, waiting while too many messages are unacknowledged.

        paho refuses more than 65,535 unacknowledged QoS 1 messages; a fast producer (the
        simulator, a benchmark) waits here instead. Never call it from a message handler:
        the network thread that would deliver the acknowledgements is the one waiting.
        """
        with self._unacked_changed:
            if not self._unacked_changed.wait_for(lambda: self._unacked < MAX_UNACKED, timeout):
                raise TimeoutError(f"{self._unacked} publishes unacknowledged for {timeout:.0f} s")
        self.publish(message)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the broker has acknowledged everything published; True if it has."""
        with self._unacked_changed:
            return self._unacked_changed.wait_for(lambda: self._unacked == 0, timeout)

    def publish_confirmed(self, message: Outbound, timeout: float = 10.0) -> bool:
        """Publish at QoS 1 and wait for the broker's verdict: False if it refused (say, by its ACL)."""
        confirmation = _Confirmation()
        with self._lock:
            info = self.publish(message)
            self._confirmations[info.mid] = confirmation
        if not confirmation.done.wait(timeout):
            raise TimeoutError(f"no acknowledgement for {message.topic} within {timeout:.0f} s")
        return confirmation.accepted

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", extra={"client_id": self.client_id, "reason": str(reason)})
            self._refusal = str(reason)
            self._connect_answered.set()
            return
        with self._lock:
            self._pending.clear()
        for sub in self._subscriptions:
            client.subscribe(sub.topic_filter, qos=sub.qos)
        log.info(
            "mqtt connected",
            extra={"client_id": self.client_id, "session_present": flags.session_present},
        )
        self.connected.set()
        self._connect_answered.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("mqtt disconnected", extra={"client_id": self.client_id, "reason": str(reason)})

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        """A message no filter of ours matches (left from an old subscription of the session): acknowledge it."""
        self._deliver(None, client, userdata, message)

    def _deliver(
        self, handler: Handler | None, client: paho.Client, userdata: object, message: paho.MQTTMessage
    ) -> None:
        outputs: Sequence[Outbound] = ()
        if handler is not None:
            try:
                outputs = handler(Inbound(message.topic, message.payload, bool(message.retain)))
            except Exception:
                # Not acknowledged: the broker re-delivers it after a reconnect.
                log.exception("handler failed; message left unacknowledged", extra={"topic": message.topic})
                return
        if message.qos == 0:
            for out in outputs:
                self.publish(out)
            return
        if not outputs:
            client.ack(message.mid, message.qos)
            return
        pending = _PendingAck(message.mid, message.qos, len(outputs))
        with self._lock:
            for out in outputs:
                info = self.publish(out)
                if out.qos == 0:
                    pending.remaining -= 1
                else:
                    self._pending[info.mid] = pending
            if pending.remaining == 0:
                client.ack(pending.mid, pending.qos)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._unacked_changed:
            self._unacked = max(0, self._unacked - 1)
            self._unacked_changed.notify_all()
        with self._lock:
            confirmation = self._confirmations.pop(mid, None)
            if confirmation is not None:
                confirmation.accepted = not reason.is_failure
                confirmation.done.set()
            pending = self._pending.pop(mid, None)
            if pending is None:
                return
            if reason.is_failure:
                # Acknowledging the input would lose it: leave it for re-delivery and make noise.
                log.error("broker refused an output", extra={"client_id": self.client_id, "reason": str(reason)})
                return
            pending.remaining -= 1
            if pending.remaining == 0:
                client.ack(pending.mid, pending.qos)
