"""The one MQTT client wrapper; nothing else in carebed imports paho.

Services consume with a persistent MQTT 5 session (clean start off, long session expiry), so
the broker queues their messages while they are down. Acknowledgements are manual: an input
is acknowledged only once every output it produced has been acknowledged by the broker, so a
crash between the two re-delivers the input instead of losing the output. Outputs carry
stable ids, which makes the re-delivery harmless downstream.

A handler that raises never leaves its input lying unacknowledged (after a thousand such, the
broker sends a client nothing more). Each subscription says what a failure means:
``on_error`` given, the input is poison (what devices send): its outputs (a dead letter) stand in
for the handler's and the input is acknowledged; without it, the failure is taken for a passing
one (the database is away) and the handler is run again in place, backing off, so an SOS finding
is never dropped because the database blinked. Both are counted in
``carebed_mqtt_handler_failures_total`` and logged in one line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, TypeAdapter, ValidationError

from carebed import service
from carebed.settings import Settings

log = logging.getLogger(__name__)

MAX_UNACKED = 10_000
# A handler that failed for a passing reason is run again after 0.5 s, 1 s, 2 s... at most 30 s apart.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
HANDLER_FAILURES = Counter(
    "carebed_mqtt_handler_failures_total",
    "Messages whose handler raised, by client and what was done: dead_lettered (acknowledged) or retried",
    ["client_id", "action"],
)


def login_name(username: str, client_id: str) -> str:
    """The account a connection logs in as; the broker makes it the connection's client id.

    A service's further connections have accounts of their own named as their client ids,
    ``{service}-{lane}`` (carebed.provisioning.CONNECTIONS), so two connections of one service
    never take each other's session; any other connection logs in as the service itself.
    """
    return client_id if client_id.startswith(f"{username}-") else username


OLDEST_UNACKED = Gauge(
    "carebed_lane_oldest_unacked_seconds",
    "Age of the oldest input this lane received and has not acknowledged (0 when none is pending)",
    ["lane"],
)
SINCE_PROCESSED = Gauge(
    "carebed_lane_since_processed_seconds",
    "Seconds since this lane last finished an input (since it started, if it has not yet)",
    ["lane"],
)


@dataclass(frozen=True, slots=True)
class LaneHealth:
    """What a consuming connection can tell about itself: a stalled handler shows as a growing oldest age."""

    lane: str
    connected: bool
    oldest_unacked_s: float
    since_processed_s: float


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to publish at QoS 1: carebed sends nothing it may lose.

    A batched message may wait up to the client's batch window and travel with the other
    batched messages for its topic as one JSON array; without a window it travels at once, as
    an array of one. Read either with :func:`decode_batch`.
    """

    topic: str
    payload: bytes
    retain: bool = False
    batched: bool = False


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    retain: bool


Handler = Callable[[Inbound], Sequence[Outbound]]
# What to publish instead when a handler raised on a poison input (a dead letter); the input is then acknowledged.
OnError = Callable[[Inbound, Exception], Sequence[Outbound]]
Model = TypeVar("Model", bound=BaseModel)
Settle = Callable[[ReasonCode], None]


def decode(model: type[Model], message: Inbound) -> Model | None:
    """An internal message as its schema, or None (logged) so one bad message never stalls a consumer."""
    try:
        return model.model_validate_json(message.payload)
    except ValidationError:
        log.error("malformed message on an internal topic", extra={"topic": message.topic, "schema": model.__name__})
        return None


def decode_batch(model: type[Model], message: Inbound) -> list[Model]:
    """A batch from an internal topic; a malformed item is logged and skipped, never the rest of the batch."""
    try:
        return _batch_adapter(model).validate_json(message.payload)
    except ValidationError:
        pass
    try:
        items = json.loads(message.payload)
    except ValueError:
        items = None
    if not isinstance(items, list):
        log.error("malformed batch on an internal topic", extra={"topic": message.topic, "schema": model.__name__})
        return []
    valid: list[Model] = []
    for item in items:
        try:
            valid.append(model.model_validate(item))
        except ValidationError:
            log.error("malformed item in a batch", extra={"topic": message.topic, "schema": model.__name__})
    return valid


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


@cache
def _batch_adapter(model: type[Model]) -> TypeAdapter[list[Model]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


@dataclass(slots=True)
class _PendingAck:
    """An input held unacknowledged until the broker has acknowledged each of its outputs."""

    mid: int
    qos: int
    remaining: int
    connection: int


@dataclass(slots=True)
class _Confirmation:
    done: threading.Event = field(default_factory=threading.Event)
    accepted: bool = False

    def settle(self, reason: ReasonCode) -> None:
        self.accepted = not reason.is_failure
        self.done.set()


@dataclass(slots=True)
class _Subscription:
    """Renewed on every (re)connect; the handler itself is registered with paho's topic tree."""

    topic_filter: str
    qos: int


@dataclass
class MqttClient:
    """A connection to the broker for one service (or one simulator).

    Threads: paho's network thread calls the handlers and reports acknowledgements; any other
    thread may publish. paho holds its own lock while it reports an acknowledgement, so this
    class never holds its lock while calling paho's publish, and an acknowledgement that
    overtakes the publisher's bookkeeping is kept until the publisher asks for it.
    """

    settings: Settings
    client_id: str
    persistent: bool = True
    max_inflight: int = 1000
    batch_window_s: float | None = None
    # Telemetry rather than events: its threads yield the CPU to the SOS path (Settings.bulk_nice).
    bulk: bool = False
    connected: threading.Event = field(default_factory=threading.Event)
    _subscriptions: list[_Subscription] = field(default_factory=list)
    _state: threading.Condition = field(default_factory=threading.Condition)
    _awaiting: dict[int, Settle | None] = field(default_factory=dict)
    _overtaken: dict[int, ReasonCode] = field(default_factory=dict)
    _batches: defaultdict[str, list[tuple[bytes, _PendingAck | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _connection: int = 0
    _subscribe_mid: int | None = None
    _session_present: bool = False
    _connect_answered: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _refusal: str | None = None
    # Inputs handed to a handler and not yet acknowledged: (connection, mid) -> monotonic time received.
    _unacked: dict[tuple[int, int], float] = field(default_factory=dict)
    _processed_at: float = field(default_factory=time.monotonic)

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
            self._client.username_pw_set(login_name(self.settings.mqtt_username, self.client_id), password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._flusher = threading.Thread(target=self._flush_batches_periodically, name="mqtt-batches", daemon=True)
        # A weak reference, so a gauge keeps no stopped client alive.
        ref = weakref.ref(self)
        OLDEST_UNACKED.labels(self.client_id).set_function(lambda: _lane_figure(ref, "oldest_unacked_s"))
        SINCE_PROCESSED.labels(self.client_id).set_function(lambda: _lane_figure(ref, "since_processed_s"))

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, on_error: OnError | None = None) -> None:
        """Register a handler; call before :meth:`start`. Its outputs are published for it.

        ``on_error`` decides what a raising handler means (see the module's docstring): given,
        the input is poison and ``on_error``'s outputs replace the handler's; absent, the handler
        is retried in place until it succeeds or the client stops.

        Filters of one client must not overlap: paho's topic tree routes each message to every
        filter it matches, and each would handle (and acknowledge) it.
        """
        self._subscriptions.append(_Subscription(topic_filter, qos))
        self._client.message_callback_add(
            topic_filter, partial(self._deliver, partial(self._guarded, handler, on_error))
        )

    def will(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self._client.will_set(topic, payload, qos=1, retain=retain)

    def start(self, timeout: float = 15.0) -> None:
        """Connect and run the network loop in a background thread; wait until connected and subscribed."""
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
        if self.batch_window_s:
            self._flusher.start()
        if not self._connect_answered.wait(timeout) or not self.connected.is_set():
            self.stop()
            where = f"{self.settings.mqtt_host}:{self.settings.mqtt_port}"
            raise ConnectionError(f"MQTT connection to {where} failed: {self._refusal or 'no answer'}")

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is batched, give the broker `timeout` seconds to acknowledge it, and disconnect."""
        self._stopping.set()
        if self._flusher.is_alive():
            self._flusher.join()
        self._flush_batches()
        if self.connected.is_set():
            self.flush(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def health(self) -> LaneHealth:
        now = time.monotonic()
        with self._state:
            oldest = min(self._unacked.values(), default=now)
            processed = self._processed_at
        return LaneHealth(self.client_id, self.connected.is_set(), now - oldest, now - processed)

    def publish(self, message: Outbound) -> None:
        """Publish without waiting; paho sends it again after a reconnect until the broker acknowledges it."""
        self._emit(message, None)

    def publish_paced(self, message: Outbound, timeout: float = 60.0) -> None:
        """Publish from a producer thread, waiting while too many messages are unacknowledged.

        paho refuses more than 65,535 unacknowledged QoS 1 messages; a fast producer (the
        simulator, a benchmark) waits here instead. Never call it from a message handler:
        the network thread that would deliver the acknowledgements is the one waiting.
        """
        with self._state:
            if not self._state.wait_for(lambda: len(self._awaiting) < MAX_UNACKED, timeout):
                raise TimeoutError(f"{len(self._awaiting)} publishes unacknowledged for {timeout:.0f} s")
        self.publish(message)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the broker has acknowledged everything published; True if it has."""
        with self._state:
            return self._state.wait_for(lambda: not self._awaiting and not self._batches, timeout)

    def publish_confirmed(self, message: Outbound, timeout: float = 10.0) -> bool:
        """Publish and wait for the broker's verdict: False if it refused (say, by its ACL)."""
        confirmation = _Confirmation()
        self._send(message.topic, message.payload, message.retain, confirmation.settle)
        if not confirmation.done.wait(timeout):
            raise TimeoutError(f"no acknowledgement for {message.topic} within {timeout:.0f} s")
        return confirmation.accepted

    def _emit(self, message: Outbound, pending: _PendingAck | None) -> None:
        if message.batched and self.batch_window_s:
            with self._state:
                self._batches[message.topic].append((message.payload, pending))
            return
        payload = b"[" + message.payload + b"]" if message.batched else message.payload
        self._send(message.topic, payload, message.retain, self._settler([pending] if pending else []))

    def _send(self, topic: str, payload: bytes, retain: bool, settle: Settle | None) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        with self._state:
            reason = self._overtaken.pop(info.mid, None)
            if reason is None:
                self._awaiting[info.mid] = settle
                return
        if settle is not None:
            settle(reason)

    def _flush_batches_periodically(self) -> None:
        assert self.batch_window_s
        self._deprioritise_if_bulk()
        while not self._stopping.wait(self.batch_window_s):
            self._flush_batches()

    def _flush_batches(self) -> None:
        """One message per topic; only one thread at a time calls this, which keeps batches in order."""
        with self._state:
            batches, self._batches = self._batches, defaultdict(list)
        for topic, items in batches.items():
            payload = b"[" + b",".join(item for item, _ in items) + b"]"
            self._send(topic, payload, False, self._settler([pending for _, pending in items if pending]))

    def _settler(self, inputs: list[_PendingAck]) -> Settle | None:
        return partial(self._settle_inputs, inputs) if inputs else None

    def _settle_inputs(self, inputs: list[_PendingAck], reason: ReasonCode) -> None:
        """An output was acknowledged: acknowledge each input whose outputs are now all acknowledged."""
        if reason.is_failure:
            # Acknowledging the inputs would lose them: leave them for re-delivery and make noise.
            log.error("broker refused an output", extra={"client_id": self.client_id, "reason": str(reason)})
            return
        complete = []
        with self._state:
            for pending in inputs:
                pending.remaining -= 1
                if pending.remaining == 0 and pending.connection == self._connection:
                    complete.append(pending)
        for pending in complete:
            self._acknowledge(pending.connection, pending.mid, pending.qos)

    def _acknowledge(self, connection: int, mid: int, qos: int) -> None:
        with self._state:
            self._unacked.pop((connection, mid), None)
            self._processed_at = time.monotonic()
        if qos > 0:
            self._client.ack(mid, qos)

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
        self._deprioritise_if_bulk()  # paho's network thread, which runs the handlers
        with self._state:
            # Inputs of the previous connection come again; batched outputs would only duplicate them.
            self._connection += 1
            self._batches.clear()
            # Inputs of the previous connection are re-delivered and tracked anew.
            self._unacked.clear()
            self._state.notify_all()
        self._session_present = flags.session_present
        if self._subscriptions:
            _, self._subscribe_mid = client.subscribe([(sub.topic_filter, sub.qos) for sub in self._subscriptions])
        else:
            self._ready()

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Connected means subscribed too: until the broker has the filters, what is published to them is not ours.

        On a session's first connection a message published in between would be lost to this
        client; a service that announced itself on CONNACK alone could miss the first SOS.
        """
        if mid != self._subscribe_mid:
            return
        for sub, reason in zip(self._subscriptions, reasons, strict=False):
            if reason.is_failure:
                log.error(
                    "mqtt subscription refused",
                    extra={"client_id": self.client_id, "topic": sub.topic_filter, "reason": str(reason)},
                )
        self._ready()

    def _ready(self) -> None:
        log.info("mqtt connected", extra={"client_id": self.client_id, "session_present": self._session_present})
        self.connected.set()
        self._connect_answered.set()

    def _deprioritise_if_bulk(self) -> None:
        if self.bulk:
            service.deprioritise_thread(self.settings.bulk_nice)

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
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def _guarded(self, handler: Handler, on_error: OnError | None, message: Inbound) -> Sequence[Outbound]:
        """The handler's outputs, or on_error's; raises only when the client stops while retrying."""
        delay = RETRY_FIRST_S
        while True:
            try:
                return handler(message)
            except Exception as exc:
                # One line, no traceback: a flood of one fault must not become a flood of stack dumps.
                failure = {"client_id": self.client_id, "topic": message.topic, "error": _one_line(exc)}
                if on_error is not None:
                    HANDLER_FAILURES.labels(self.client_id, "dead_lettered").inc()
                    log.error("handler failed; input dead-lettered", extra=failure)
                    return on_error(message, exc)
                HANDLER_FAILURES.labels(self.client_id, "retried").inc()
                log.error("handler failed; retrying in place", extra={**failure, "retry_in_s": delay})
                if self._stopping.wait(delay):
                    raise
                delay = min(delay * 2, RETRY_MAX_S)

    def _deliver(self, handler: Handler, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        connection = self._connection
        with self._state:
            self._unacked[(connection, message.mid)] = time.monotonic()
        try:
            outputs = handler(Inbound(message.topic, message.payload, bool(message.retain)))
        except Exception as exc:
            # Stopping in the middle of retries (or on_error failed): the broker re-delivers it at the next start.
            log.warning("message left unacknowledged", extra={"topic": message.topic, "error": _one_line(exc)})
            return
        if message.qos == 0:
            self._acknowledge(connection, message.mid, 0)
            for out in outputs:
                self._emit(out, None)
            return
        if not outputs:
            self._acknowledge(connection, message.mid, message.qos)
            return
        pending = _PendingAck(message.mid, message.qos, len(outputs), connection)
        for out in outputs:
            self._emit(out, pending)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._state:
            if mid not in self._awaiting:
                # The publisher has not noted this mid yet; it settles it when it does.
                self._overtaken[mid] = reason
                return
            settle = self._awaiting[mid]
        if settle is not None:
            settle(reason)
        with self._state:
            # Only now, so that flush() returns after the inputs' acknowledgements are queued.
            del self._awaiting[mid]
            self._state.notify_all()


def _lane_figure(ref: weakref.ref[MqttClient], name: str) -> float:
    client = ref()
    return float(getattr(client.health(), name)) if client is not None else 0.0
