"""Each SOS press is its own alert once the one before is resolved, even from a device whose clock is stuck;
a redelivered or resent press never is (issue 19, row 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.folding import Recorded, is_new_press
from alerting.models import Alert, FindingRecord
from alerting.store import IngestResult, Outcome, Source, ingest_finding, resolve
from carebed.registry import RegistryFile
from carebed.schemas import DeviceEvent, DeviceKind, Finding, Reading, utc_now
from carebed.topics import DeviceChannel
from detector.alarms import alarms_of
from tests.test_store import TZ

STUCK = datetime(2000, 1, 1, tzinfo=UTC)  # the clock of a watch whose battery ran flat once


def press(home_id: str, seq: int | None, received_at: datetime, event: DeviceEvent = DeviceEvent.SOS) -> Finding:
    """The alarm the detector raises for one press of a watch whose clock is stuck at STUCK."""
    reading = Reading(
        home_id=home_id,
        device_id=f"{home_id}-w",
        device_kind=DeviceKind.WEARABLE,
        channel=DeviceChannel.EVENT,
        ts=STUCK,
        received_at=received_at,
        seq=seq,
        event=event,
    )
    [finding] = alarms_of(reading)
    return finding


def test_numbered_presses_of_a_stuck_clock_differ_and_a_copy_does_not() -> None:
    now = utc_now()
    ids = [press("h1", seq, now).id for seq in (7, 8, 9)]
    assert len(set(ids)) == 3
    assert press("h1", 8, now + timedelta(seconds=5)).id == ids[1]  # redelivered: new receive time, same press


def test_a_repeated_id_is_a_new_press_only_without_a_number_and_after_its_alert_was_resolved() -> None:
    resolved = utc_now()
    later, earlier = resolved + timedelta(seconds=1), resolved - timedelta(seconds=1)
    assert is_new_press(press("h1", None, later), Recorded(alert_id=1, resolved_at=resolved))
    assert not is_new_press(press("h1", None, earlier), Recorded(alert_id=1, resolved_at=resolved))
    assert not is_new_press(press("h1", None, later), Recorded(alert_id=1, resolved_at=None))
    assert not is_new_press(press("h1", 3, later), Recorded(alert_id=1, resolved_at=resolved))
    assert is_new_press(press("h1", None, later, DeviceEvent.FALL), Recorded(alert_id=1, resolved_at=resolved))


def ingest(sessions: sessionmaker[Session], finding: Finding) -> IngestResult:
    with sessions.begin() as session:
        return ingest_finding(session, finding, TZ)


def close(sessions: sessionmaker[Session], alert_id: int | None) -> None:
    with sessions.begin() as session:
        assert resolve(session, session.get_one(Alert, alert_id), "op", Source.CONSOLE, Outcome.RESIDENT_OK)


def alerts(sessions: sessionmaker[Session], home_id: str) -> list[tuple[int, int]]:
    """Each alert of the home with the number of presses it holds."""
    with sessions() as session:
        rows = session.execute(
            select(Alert.id, func.count(FindingRecord.id))
            .join(FindingRecord, FindingRecord.alert_id == Alert.id)
            .where(Alert.home_id == home_id)
            .group_by(Alert.id)
            .order_by(Alert.id)
        )
        return [(alert_id, count) for alert_id, count in rows]


@pytest.mark.parametrize("numbered", [True, False], ids=["seq", "no-seq"])
def test_three_presses_of_a_stuck_clock_each_resolved_are_three_alerts(
    sessions: sessionmaker[Session], homes: RegistryFile, numbered: bool
) -> None:
    home = homes.homes[0].id
    opened = []
    for seq in (1, 2, 3):
        result = ingest(sessions, press(home, seq if numbered else None, utc_now()))
        assert result.created
        opened.append(result.alert_id)
        close(sessions, result.alert_id)
    assert alerts(sessions, home) == [(alert_id, 1) for alert_id in opened]


@pytest.mark.parametrize("numbered", [True, False], ids=["seq", "no-seq"])
def test_a_redelivered_press_is_one_alert_before_and_after_it_is_resolved(
    sessions: sessionmaker[Session], homes: RegistryFile, numbered: bool
) -> None:
    home = homes.homes[1].id
    seq = 4 if numbered else None
    received = utc_now()
    first = ingest(sessions, press(home, seq, received))
    assert first.created
    assert ingest(sessions, press(home, seq, received)).duplicate  # the broker delivered the finding again
    assert ingest(sessions, press(home, seq, utc_now())).duplicate  # the gateway got the device's resend
    close(sessions, first.alert_id)
    assert ingest(sessions, press(home, seq, received)).duplicate  # a copy received before the resolution
    if numbered:  # a numbered resend is the same press however late it comes
        assert ingest(sessions, press(home, seq, utc_now())).duplicate
    assert alerts(sessions, home) == [(first.alert_id, 1)]


def test_a_press_after_resolution_folds_into_an_alert_already_open_and_its_copy_is_a_copy(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[0].id
    first = ingest(sessions, press(home, None, utc_now()))
    close(sessions, first.alert_id)
    other_watch = press(home, 1, utc_now()).model_copy(update={"id": "another-watch:sos", "device_id": "other"})
    second = ingest(sessions, other_watch)
    repeat = press(home, None, utc_now())
    folded = ingest(sessions, repeat)
    assert (folded.created, folded.duplicate, folded.alert_id) == (False, False, second.alert_id)
    assert ingest(sessions, repeat).duplicate
    close(sessions, second.alert_id)
    assert ingest(sessions, repeat).duplicate  # received before the second alert was resolved
    assert alerts(sessions, home) == [(first.alert_id, 1), (second.alert_id, 2)]
