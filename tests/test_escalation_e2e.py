"""Escalation through the real alerting process: outbound calls and SMS to Prism, signed inbound webhooks.

Policy waits are shortened with CAREBED_ESCALATION_TIME_SCALE (60 s becomes a few seconds);
the tests wait on conditions, and prove "nothing more happened" by a later marker that did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from alerting.auth import Role, create_user
from carebed.db import make_engine, make_sessionmaker
from carebed.mqtt import MqttClient
from carebed.registry import HomeSpec, RegistryFile
from carebed.settings import Settings
from tests.conftest import AUTH_TOKEN, alerting_url, login
from tests.support import RecordedRequest, ServiceProcess, TwilioRecorder, publish_sos_finding, wait_for
from tests.test_end_to_end import alerts_of, start_alerting

pytestmark = pytest.mark.integration


def created(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.status == 201]


@dataclass
class Rig:
    """The alerting process with its broker, Prism behind the recorder, and a logged-in API client."""

    settings: Settings
    registry: RegistryFile
    services: dict[str, ServiceProcess]
    env: dict[str, str]
    twilio: TwilioRecorder
    device: MqttClient
    api: httpx.Client = field(init=False)

    @property
    def base(self) -> str:
        return alerting_url(self.settings)

    def start(self, time_scale: float) -> None:
        """Set the public URL (Twilio would call us there) and how much to shorten the policy's waits."""
        self.services["alerting"].env.update(
            {"CAREBED_PUBLIC_URL": self.base, "CAREBED_ESCALATION_TIME_SCALE": str(time_scale)}
        )
        start_alerting(self.services, self.settings)
        self.api = login(self.base)

    def supervisor(self) -> httpx.Client:
        """A supervisor account, added while the service runs (users are read on each request)."""
        engine = make_engine(self.settings.sqlalchemy_url)
        with make_sessionmaker(engine).begin() as session:
            create_user(session, "chief", "supervisor password 1", Role.SUPERVISOR)
        engine.dispose()
        return login(self.base, "chief", "supervisor password 1")

    def restart(self) -> None:
        self.services["alerting"].kill()  # no clean shutdown
        start_alerting(self.services, self.settings)
        self.api = login(self.base)

    def sos(self, home: HomeSpec) -> dict[str, Any]:
        """An SOS finding from the detector; returns the alert it opened."""
        publish_sos_finding(self.device, home.id)
        alert: dict[str, Any] = wait_for(lambda: alerts_of(self.api, home.id), 20, f"the alert of {home.id}")[0]
        return alert

    def post(self, path: str, form: dict[str, str], signature: str | None = None) -> httpx.Response:
        """A webhook request as Twilio sends it, signed with the auth token unless a signature is given."""
        if signature is None:
            signature = RequestValidator(AUTH_TOKEN).compute_signature(self.base + path, form)
        return httpx.post(self.base + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)

    def detail(self, alert_id: int) -> dict[str, Any]:
        answer = self.api.get(f"/api/v1/alerts/{alert_id}")
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def sent(self, alert_id: int, channel: str, phone: str) -> dict[str, Any]:
        """Wait until the alert's message or call on this channel to this phone is recorded as sent."""

        def find() -> dict[str, Any] | None:
            wanted = (channel, phone, "sent")
            rows = self.detail(alert_id)["notifications"]
            return next((n for n in rows if (n["channel"], n["recipient"], n["status"]) == wanted), None)

        found: dict[str, Any] = wait_for(find, 30, f"the {channel} of alert {alert_id} to be sent")
        return found

    def reasons(self, alert_id: int) -> list[str]:
        return [a["detail"]["reason"] for a in self.detail(alert_id)["audit"] if a["action"] == "escalated"]


@pytest.fixture
def rig(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    service_env: dict[str, str],
    twilio: TwilioRecorder,
    device: MqttClient,
) -> Rig:
    return Rig(settings, registry, services, service_env, twilio, device)


def test_sos_calls_and_texts_step_one_and_a_key_press_stops_all_calls(rig: Rig) -> None:
    rig.start(time_scale=0.05)  # 60 s waits become 3 s
    home, marker = rig.registry.homes[0], rig.registry.homes[1]
    first = home.responders[0]

    alert = rig.sos(home)
    call = rig.sent(alert["id"], "voice", first.phone)
    rig.sent(alert["id"], "sms", first.phone)
    [placed] = created(rig.twilio.calls_to(first.phone))
    hooks = f"{rig.base}/twilio"
    assert placed.form["Url"] == [f"{hooks}/voice/{call['id']}"]
    assert placed.form["StatusCallback"] == [f"{hooks}/status/{call['id']}"]
    assert placed.form["Timeout"] == ["30"]

    menu = rig.post(f"/twilio/voice/{call['id']}", {"CallSid": placed.response["sid"]})
    assert menu.status_code == 200
    assert '<Gather action="' + f"{hooks}/gather/{call['id']}" in menu.text and 'numDigits="1"' in menu.text
    assert 'language="en-US"' in menu.text and "Press 1 to accept" in menu.text  # this responder speaks English

    pressed = rig.post(f"/twilio/gather/{call['id']}", {"Digits": "1"})
    assert pressed.status_code == 200 and "accepted" in pressed.text
    after = rig.detail(alert["id"])
    assert (after["status"], after["ack_source"]) == ("acknowledged", "key_press")
    assert after["escalation"]["phase"] == "acknowledged"

    # A later alert reaching its second step proves the first alert's wait has passed too.
    marker_alert = rig.sos(marker)
    rig.sent(marker_alert["id"], "voice", marker.responders[1].phone)
    assert rig.reasons(marker_alert["id"])[:2] == ["start", "no_ack"]
    home_phones = [r.phone for r in home.responders]
    assert sum(len(rig.twilio.calls_to(p)) for p in home_phones) == 1
    assert sum(len(rig.twilio.messages_to(p)) for p in home_phones) == 1


def test_an_unanswered_call_moves_on_at_once_and_sms_replies_acknowledge_and_confirm_arrival(rig: Rig) -> None:
    rig.start(time_scale=0.5)  # 30 s waits: anything sooner was not the timer
    home = rig.registry.homes[2]
    first, second = home.responders

    alert = rig.sos(home)
    call = rig.sent(alert["id"], "voice", first.phone)
    assert rig.post(f"/twilio/status/{call['id']}", {"CallStatus": "no-answer"}).status_code == 204
    rig.sent(alert["id"], "voice", second.phone)
    assert rig.reasons(alert["id"]) == ["start", "unanswered"]

    reply = rig.post("/twilio/sms", {"From": second.phone, "Body": "收到"})
    assert reply.status_code == 200 and f"#{alert['id']}" in reply.text
    acked = rig.detail(alert["id"])
    assert (acked["status"], acked["ack_source"]) == ("acknowledged", "sms_reply")
    assert acked["acked_by"].startswith("responder:")
    late = rig.post(f"/twilio/gather/{call['id']}", {"Digits": "1"})  # the first one calls back
    assert late.status_code == 200 and "已由他人接受" in late.text
    assert rig.detail(alert["id"])["acked_by"] == acked["acked_by"]

    assert rig.post("/twilio/sms", {"From": second.phone, "Body": "3"}).status_code == 200
    final = rig.detail(alert["id"])
    assert final["arrived_at"] is not None and final["escalation"]["phase"] == "arrived"
    assert final["response_s"]["arrived"] >= final["response_s"]["acknowledged"] > 0
    stranger = rig.post("/twilio/sms", {"From": "+8613000000000", "Body": "1"})
    assert stranger.status_code == 200 and "<Message" not in stranger.text

    chief = rig.supervisor()
    assert rig.api.get("/api/v1/reports/response-times").status_code == 403  # operators do not see it
    report = chief.get("/api/v1/reports/response-times", params={"group": "street"}).json()
    [street, total] = report["rows"]
    assert (street["street"], street["alerts"], total["street"], total["alerts"]) == (home.street, 1, "", 1)
    assert street["acked_within_s"] == {"60": 1.0, "180": 1.0}
    assert street["percentiles_s"]["arrived"]["50"] == final["response_s"]["arrived"]


def test_a_home_policy_applies_to_the_next_alert(rig: Rig) -> None:
    rig.start(time_scale=0.5)
    home = rig.registry.homes[1]
    path = f"/api/v1/homes/{home.id}/escalation-policies/critical"
    assert rig.api.get(path).json()["source"] == "default"
    neighbour_first = {"steps": [{"targets": ["responder:1"], "channels": ["voice"], "wait_s": 30}], "rounds": 1}
    assert rig.api.put(path, json=neighbour_first).status_code == 403  # supervisors only
    chief = rig.supervisor()
    assert chief.put(path, json={"steps": [{"targets": []}]}).status_code == 422
    assert chief.put(path, json=neighbour_first).status_code == 200
    assert rig.api.get(path).json()["source"] == "home"

    alert = rig.sos(home)
    rig.sent(alert["id"], "voice", home.responders[1].phone)
    assert [(n["channel"], n["recipient"]) for n in rig.detail(alert["id"])["notifications"]] == [
        ("voice", home.responders[1].phone)
    ]


def test_twilio_errors_are_retried_without_loss_or_duplicate_and_a_permanent_one_skips_the_responder(
    rig: Rig,
) -> None:
    rig.start(time_scale=0.5)
    flaky, dead = rig.registry.homes[0], rig.registry.homes[1]

    rig.twilio.fail_next(5, 500, 20500)
    alert = rig.sos(flaky)
    phone = flaky.responders[0].phone
    rig.sent(alert["id"], "sms", phone)
    rig.sent(alert["id"], "voice", phone)
    assert len([r for r in rig.twilio.requests if r.status == 500]) == 5
    assert len(created(rig.twilio.messages_to(phone))) == len(created(rig.twilio.calls_to(phone))) == 1

    rig.twilio.fail_next(2, 400, 21211)  # Twilio: "the 'To' number is not a valid phone number"
    dead_alert = rig.sos(dead)
    rig.sent(dead_alert["id"], "voice", dead.responders[1].phone)
    assert rig.reasons(dead_alert["id"]) == ["start", "unanswered"]
    failed = [n for n in rig.detail(dead_alert["id"])["notifications"] if n["status"] == "failed"]
    assert {(n["channel"], n["recipient"]) for n in failed} == {
        ("sms", dead.responders[0].phone),
        ("voice", dead.responders[0].phone),
    }


def test_forged_webhooks_get_403_and_change_nothing(rig: Rig) -> None:
    rig.start(time_scale=0.5)
    home = rig.registry.homes[0]
    first = home.responders[0]
    alert = rig.sos(home)
    call = rig.sent(alert["id"], "voice", first.phone)
    before = rig.detail(alert["id"])

    gather = f"/twilio/gather/{call['id']}"
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature("https://evil.example" + gather, {"Digits": "1"})
    wrong_key = RequestValidator("not-the-token").compute_signature(rig.base + gather, {"Digits": "1"})
    attempts = [
        rig.post(gather, {"Digits": "1"}, signature=""),
        rig.post(gather, {"Digits": "1"}, signature=elsewhere),
        rig.post(gather, {"Digits": "1"}, signature=wrong_key),
        httpx.post(rig.base + "/twilio/sms", data={"From": first.phone, "Body": "1"}),
        httpx.post(rig.base + f"/twilio/status/{call['id']}", data={"CallStatus": "busy"}),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    after = rig.detail(alert["id"])
    assert (after["status"], after["audit"], after["escalation"]) == (
        before["status"],
        before["audit"],
        before["escalation"],
    )


def test_alerting_restarted_mid_escalation_resumes_where_it_was(rig: Rig) -> None:
    rig.start(time_scale=0.2)  # 12 s per step
    home = rig.registry.homes[1]
    first, second = home.responders
    alert = rig.sos(home)
    rig.sent(alert["id"], "voice", first.phone)

    rig.restart()  # between two steps
    rig.sent(alert["id"], "voice", second.phone)
    sent = [(n["step"], n["channel"]) for n in rig.detail(alert["id"])["notifications"]]
    assert sent[:4] == [(0, "sms"), (0, "voice"), (1, "sms"), (1, "voice")]
    assert len(rig.twilio.calls_to(first.phone)) == len(rig.twilio.messages_to(first.phone)) == 1
