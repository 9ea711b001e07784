"""MQTT adapter of the alerting service: findings in, one transaction each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from alerting.store import IngestResult, ingest_finding
from alerting.urgency import UrgentWork
from carebed import topics
from carebed.mqtt import Inbound, MqttClient, Outbound, decode
from carebed.schemas import Confirmation, DeviceEvent, Finding, FindingCode, dump
from carebed.settings import Settings

log = logging.getLogger(__name__)

# The findings a device's own event raises in the alarm lane (detector/alarms.py), which a device confirms.
_CONFIRMED = {FindingCode.SOS: DeviceEvent.SOS, FindingCode.FALL: DeviceEvent.FALL}
FINDINGS_IN = Counter("carebed_alerting_findings_total", "Findings received, by result", ["result"])


def confirmation_of(finding: Finding) -> tuple[Outbound, ...]:
    """The device's confirmation of an SOS or fall whose alert is committed, a copy's too.

    A lost confirmation costs one resend: the device publishes the event again, the copy is
    recognised by its finding id and confirmed in turn. So it is not tied to the finding's
    acknowledgement, and a broker that refuses it (an ACL not yet rewritten) never holds findings back.
    """
    if finding.device_id is None or finding.code not in _CONFIRMED:
        return ()
    seq = finding.evidence.get("seq")
    event, number = _CONFIRMED[finding.code], seq if isinstance(seq, int) else None
    try:
        # A device matches by the time it sent, not the receive time the gateway put in its place.
        confirmation = Confirmation(event=event, ts=finding.evidence.get("device_ts", finding.ts), seq=number)
    except ValidationError:
        confirmation = Confirmation(event=event, ts=finding.ts, seq=number)
    return (Outbound(topics.confirmation(finding.device_id), dump(confirmation)),)


class FindingConsumer:
    """The message is acknowledged to the broker only after its transaction commits."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        on_change: Callable[[], None],
        urgent: UrgentWork,
    ) -> None:
        self._sessions = sessions
        self._urgent = urgent
        self._tz: ZoneInfo = settings.tz
        self._time_scale = settings.escalation_time_scale
        self._on_change = on_change
        self.mqtt = MqttClient(settings, client_id="carebed-alerting")
        self.mqtt.subscribe(topics.FINDINGS_SUBSCRIPTION, self.handle)

    def handle(self, message: Inbound) -> Sequence[Outbound]:
        self._urgent.note()
        finding = decode(Finding, message)
        if finding is None:
            FINDINGS_IN.labels("malformed").inc()
            return ()
        try:
            result = self._ingest(finding)
        except IntegrityError:
            # Another consumer opened the same alert between our read and our write: fold into it.
            result = self._ingest(finding)
        outcome = "duplicate" if result.duplicate else "created" if result.created else "folded"
        FINDINGS_IN.labels(outcome).inc()
        log.info("finding recorded", extra={"finding_id": finding.id, "alert_id": result.alert_id, "result": outcome})
        if not result.duplicate:
            self._urgent.note()
            self._on_change()
        for confirmation in confirmation_of(finding):
            self.mqtt.publish(confirmation)
        return ()

    @retry(
        retry=retry_if_exception_type(OperationalError),
        wait=wait_exponential(multiplier=0.5, max=30),
        stop=stop_after_delay(600),
        reraise=True,
    )
    def _ingest(self, finding: Finding) -> IngestResult:
        """Retried while the database is unreachable; the broker keeps the message meanwhile."""
        with self._sessions.begin() as session:
            return ingest_finding(session, finding, self._tz, self._time_scale)
