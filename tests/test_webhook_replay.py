"""Replayed Twilio callbacks are recognised and do nothing the second time (issue 19, row 13).

A signature never expires, so anyone who captured a callback can send it again; these go
through the real alerting process with requests signed as Twilio signs them.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from alerting.escalator import transact
from alerting.store import Replayed, record_receipt
from tests import test_escalation_e2e
from tests.support import wait_for
from tests.test_escalation_e2e import Rig

pytestmark = pytest.mark.integration
rig = test_escalation_e2e.rig  # the fixture: the alerting process with its broker and Prism


def effects(detail: dict[str, Any]) -> tuple[Any, ...]:
    """What a callback can change: the alert's state, its escalation, its messages and its audit log."""
    return (detail["status"], detail["acked_by"], detail["escalation"], detail["notifications"], detail["audit"])


def test_replayed_status_callbacks_sms_replies_and_key_presses_do_nothing(rig: Rig) -> None:
    rig.start(time_scale=0.5)  # 30 s waits: nothing moves by the timer meanwhile
    home = rig.registry.homes[2]
    first, second = home.responders
    alert = rig.sos(home)
    call = rig.sent(alert["id"], "voice", first.phone)
    status_path, gather_path = f"/twilio/status/{call['id']}", f"/twilio/gather/{call['id']}"
    ringing = {"CallSid": call["provider_sid"], "CallStatus": "ringing"}
    no_answer = {"CallSid": call["provider_sid"], "CallStatus": "no-answer"}
    reply = {"MessageSid": "SM" + "a1" * 16, "From": second.phone, "Body": "1"}
    callback = {"CallSid": call["provider_sid"], "Digits": "1"}  # the first one calls back and presses 1

    assert [rig.post(status_path, form).status_code for form in (ringing, no_answer)] == [204, 204]
    rig.sent(alert["id"], "voice", second.phone)
    accepted = rig.post("/twilio/sms", reply)
    assert accepted.status_code == 200 and f"#{alert['id']}" in accepted.text
    taken = rig.post(gather_path, callback)
    assert taken.status_code == 200 and "<Say" in taken.text
    before = rig.detail(alert["id"])
    assert (before["status"], before["ack_source"]) == ("acknowledged", "sms_reply")

    replays = [
        rig.post(status_path, ringing),
        rig.post(status_path, no_answer),
        rig.post("/twilio/sms", reply),
        rig.post(gather_path, callback),
    ]
    assert [r.status_code for r in replays] == [204, 204, 200, 200]
    assert "<Message" not in replays[2].text and "<Say" not in replays[3].text  # nothing said or sent again
    assert effects(rig.detail(alert["id"])) == effects(before)

    # A new callback of the same call still counts: the call's final status is recorded once.
    completed = {"CallSid": call["provider_sid"], "CallStatus": "completed"}
    assert rig.post(status_path, completed).status_code == 204
    assert [n["provider_status"] for n in rig.detail(alert["id"])["notifications"] if n["id"] == call["id"]] == [
        "completed"
    ]


def test_the_same_callback_twice_at_once_is_acted_on_once(sessions: sessionmaker[Session]) -> None:
    """Two copies in flight together: the second waits on the first's receipt and then does nothing."""
    key = "status:1:CA" + "0" * 32 + ":no-answer"
    outcome: list[str] = []

    def second() -> None:
        try:
            transact(sessions, lambda session: record_receipt(session, key))
            outcome.append("acted")
        except Replayed:
            outcome.append("replayed")

    with sessions.begin() as first:
        record_receipt(first, key)  # written, not yet committed
        copy = threading.Thread(target=second)
        copy.start()
        if first.bind.dialect.name == "postgresql":  # SQLite's lock cannot be watched: there it may come after
            wait_for(lambda: waiting_on_a_lock(sessions), 10, "the copy to wait on the first's receipt")
    copy.join(timeout=30)
    assert outcome == ["replayed"]
    with pytest.raises(Replayed), sessions.begin() as session:
        record_receipt(session, key)


def waiting_on_a_lock(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return bool(session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")))
