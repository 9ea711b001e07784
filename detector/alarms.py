"""Pure core of the alarm lane: an SOS press or a fall is a finding by itself.

Nothing before a press decides whether it counts, so the alarm needs no state: its id comes from
the device, the event's own timestamp and the device's message number (``seq``) when it sends
one, so a redelivered or resent copy gets the same id and the alerting service folds it away,
while two presses of a device whose clock is stuck still differ by their numbers. Without a
number the alerting service tells such presses apart by when they arrived (alerting/folding.py).
Needing no state is what lets the alarms be raised in a process of their own
(detector/alarm_service.py), away from the pauses of the process that holds every home's learned
state (docs/architecture.md, "An alarm lane").
"""

from __future__ import annotations

from carebed.schemas import DeviceEvent, Finding, FindingCode, Reading, Severity, evidence_of

_ALARMS: dict[DeviceEvent, tuple[FindingCode, str]] = {
    DeviceEvent.SOS: (FindingCode.SOS, "SOS button pressed"),
    DeviceEvent.FALL: (FindingCode.FALL, "Fall detected by the wearable"),
}


def alarms_of(reading: Reading) -> list[Finding]:
    """The critical finding an SOS or a fall raises at once; nothing for any other reading."""
    if reading.event is None or reading.event not in _ALARMS:
        return []
    code, summary = _ALARMS[reading.event]
    number = "" if reading.seq is None else f":{reading.seq}"
    # The time as the device sent it: a corrected time is the receive time, new at each redelivery.
    stamp = reading.device_ts if reading.clock_corrected and reading.device_ts else reading.ts.isoformat()
    return [
        Finding(
            id=f"{reading.device_id}:{code.value}:{stamp}{number}",
            home_id=reading.home_id,
            device_id=reading.device_id,
            code=code,
            severity=Severity.CRITICAL,
            ts=reading.ts,
            detected_at=reading.ts,
            summary=summary,
            evidence=evidence_of(event=reading.event.value, seq=reading.seq) | reading.clock_evidence(),
            received_at=reading.received_at,
        )
    ]
