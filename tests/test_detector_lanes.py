"""The detector's lanes share one state: an SOS gets it between two telemetry readings, not after the batch."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from carebed.schemas import DeviceEvent, DeviceKind, Finding, FindingCode, Reading, Severity
from carebed.topics import DeviceChannel
from detector.service import StateLock
from tests.support import wait_for

TS = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def reading(n: int, event: DeviceEvent | None = None) -> Reading:
    return Reading(
        home_id="h1",
        device_id=f"h1-wearable-{n}",
        device_kind=DeviceKind.WEARABLE,
        channel=DeviceChannel.EVENT if event else DeviceChannel.TELEMETRY,
        ts=TS,
        received_at=TS,
        event=event,
        heart_rate_bpm=None if event else 70.0,
    )


def finding_for(item: Reading) -> Finding:
    return Finding(
        id=item.device_id,
        home_id=item.home_id,
        device_id=item.device_id,
        code=FindingCode.SOS,
        severity=Severity.CRITICAL,
        ts=item.ts,
        detected_at=item.ts,
        summary="seen",
    )


def test_an_urgent_lane_gets_the_state_between_two_bulk_readings() -> None:
    state = StateLock()
    judged: list[str] = []
    urgent_results: list[list[Finding]] = []

    def judge(item: Reading) -> list[Finding]:
        judged.append(item.device_id)
        return [finding_for(item)]

    def urgent_lane() -> None:
        urgent_results.append(state.first(judge, [reading(99, DeviceEvent.SOS)]))

    urgent = threading.Thread(target=urgent_lane)

    def bulk_judge(item: Reading) -> list[Finding]:
        if item.device_id.endswith("-0"):
            # The SOS arrives while the batch holds the state, and waits for it.
            urgent.start()
            wait_for(lambda: state._urgent_waiting, 5, "the urgent lane to wait for the state", interval=0.001)
        return judge(item)

    bulk = state.each(bulk_judge, [reading(n) for n in range(5)])
    urgent.join(timeout=5)

    assert judged == [f"h1-wearable-{n}" for n in (0, 99, 1, 2, 3, 4)]
    assert [f.id for f in bulk] == [f"h1-wearable-{n}" for n in range(5)]
    assert [f.id for f in urgent_results[0]] == ["h1-wearable-99"]
    assert state._urgent_waiting == 0
