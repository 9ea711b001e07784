"""Escalation through the real alerting process: outbound calls and SMS to Prism, signed inbound webhooks.

Policy waits are shortened with CAREBED_ESCALATION_TIME_SCALE (60 s becomes a few seconds);
the tests wait on conditions, and prove "nothing more happened" by a later marker that did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import HomeSpec, RegistryFile
from carebed.schemas import Finding, FindingCode, Severity, dump, utc_now
from carebed.settings import Settings
from tests.conftest import AUTH_TOKEN, alerting_url, login
from tests.support import RecordedRequest, ServiceProcess, TwilioRecorder, wait_for
from tests.test_end_to_end import alerts_of, start_alerting

pytestmark = pytest.mark.integration


@pytest.fixture
def escalating(service_env: dict[str, str], settings: Settings) -> Callable[[float], None]:
    """Set the public URL (Twilio would call us there) and how much to shorten the policy's waits."""

    def configure(time_scale: float) -> None:
        service_env["CAREBED_PUBLIC_URL"] = alerting_url(settings)
        service_env["CAREBED_ESCALATION_TIME_SCALE"] = str(time_scale)

    return configure


def raise_sos(device: MqttClient, home: HomeSpec, n: int = 0) -> None:
    """A detector's SOS finding on the internal topic, as the detector publishes it."""
    now = utc_now()
    finding = Finding(
        id=f"{home.id}:sos:{now.isoformat()}:{n}",
        home_id=home.id,
        code=FindingCode.SOS,
        severity=Severity.CRITICAL,
        ts=now,
        detected_at=now,
        summary="SOS button pressed",
    )
    device.publish(Outbound(topics.findings(home.id), dump(finding)))


def signed_post(settings: Settings, path: str, form: dict[str, str], signature: str | None = None) -> httpx.Response:
    url = alerting_url(settings) + path
    if signature is None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def created(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.status == 201]


def detail(api: httpx.Client, alert_id: int) -> dict[str, Any]:
    answer = api.get(f"/api/v1/alerts/{alert_id}")
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def notification(api: httpx.Client, alert_id: int, channel: str, phone: str) -> dict[str, Any] | None:
    found = [n for n in detail(api, alert_id)["notifications"] if (n["channel"], n["recipient"]) == (channel, phone)]
    return found[0] if found and found[0]["status"] == "sent" else None


def audit(api: httpx.Client, alert_id: int, action: str) -> list[dict[str, Any]]:
    return [a for a in detail(api, alert_id)["audit"] if a["action"] == action]


def one_alert(api: httpx.Client, home: HomeSpec) -> dict[str, Any]:
    alert: dict[str, Any] = wait_for(lambda: alerts_of(api, home.id), 20, f"the alert of {home.id}")[0]
    return alert


def test_sos_calls_and_texts_step_one_and_a_key_press_stops_all_calls(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
    escalating: Callable[[float], None],
) -> None:
    escalating(0.05)  # 60 s waits become 3 s
    start_alerting(services, settings)
    home, marker = registry.homes[0], registry.homes[1]
    first = home.responders[0]

    raise_sos(device, home)
    api = login(alerting_url(settings))
    alert = one_alert(api, home)
    wait_for(lambda: created(twilio.calls_to(first.phone)) and created(twilio.messages_to(first.phone)), 20, "step 1")
    call = wait_for(lambda: notification(api, alert["id"], "voice", first.phone), 20, "the call recorded as sent")
    [placed] = created(twilio.calls_to(first.phone))
    hooks = f"{alerting_url(settings)}/twilio"
    assert placed.form["Url"] == [f"{hooks}/voice/{call['id']}"]
    assert placed.form["StatusCallback"] == [f"{hooks}/status/{call['id']}"]

    menu = signed_post(settings, f"/twilio/voice/{call['id']}", {"CallSid": placed.response["sid"]})
    assert menu.status_code == 200
    assert '<Gather action="' + f"{hooks}/gather/{call['id']}" in menu.text and 'numDigits="1"' in menu.text
    assert 'language="en-US"' in menu.text and "Press 1 to accept" in menu.text  # this responder speaks English

    pressed = signed_post(settings, f"/twilio/gather/{call['id']}", {"Digits": "1"})
    assert pressed.status_code == 200 and "accepted" in pressed.text
    after = detail(api, alert["id"])
    assert (after["status"], after["ack_source"]) == ("acknowledged", "key_press")
    assert after["escalation"]["phase"] == "acknowledged"

    # A later alert reaching its second step proves the first alert's wait has passed too.
    raise_sos(device, marker)
    marker_second = marker.responders[1].phone
    wait_for(lambda: created(twilio.calls_to(marker_second)), 30, "the marker's step 2 after its wait")
    marker_alert = one_alert(api, marker)
    assert [a["detail"]["reason"] for a in audit(api, marker_alert["id"], "escalated")][:2] == ["start", "no_ack"]
    home_phones = [r.phone for r in home.responders]
    assert sum(len(twilio.calls_to(p)) for p in home_phones) == 1
    assert sum(len(twilio.messages_to(p)) for p in home_phones) == 1


def test_an_unanswered_call_moves_on_at_once_and_sms_replies_acknowledge_and_confirm_arrival(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
    escalating: Callable[[float], None],
) -> None:
    escalating(0.5)  # 30 s waits: anything sooner was not the timer
    start_alerting(services, settings)
    home = registry.homes[2]
    first, second = home.responders

    raise_sos(device, home)
    api = login(alerting_url(settings))
    alert = one_alert(api, home)
    call = wait_for(lambda: notification(api, alert["id"], "voice", first.phone), 20, "the first call")
    assert signed_post(settings, f"/twilio/status/{call['id']}", {"CallStatus": "no-answer"}).status_code == 204
    wait_for(lambda: created(twilio.calls_to(second.phone)), 20, "the second responder's call")
    reasons = [a["detail"]["reason"] for a in audit(api, alert["id"], "escalated")]
    assert reasons == ["start", "unanswered"]

    reply = signed_post(settings, "/twilio/sms", {"From": second.phone, "Body": "收到"})
    assert reply.status_code == 200 and f"#{alert['id']}" in reply.text
    acked = detail(api, alert["id"])
    assert (acked["status"], acked["ack_source"]) == ("acknowledged", "sms_reply")
    assert acked["acked_by"].startswith("responder:")
    arrived = signed_post(settings, "/twilio/sms", {"From": second.phone, "Body": "3"})
    assert arrived.status_code == 200
    final = detail(api, alert["id"])
    assert final["arrived_at"] is not None and final["escalation"]["phase"] == "arrived"
    assert signed_post(settings, "/twilio/sms", {"From": "+8613000000000", "Body": "1"}).text.count("<Message") == 0


def test_twilio_errors_are_retried_without_loss_or_duplicate_and_a_permanent_one_skips_the_responder(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
    escalating: Callable[[float], None],
) -> None:
    escalating(0.5)
    start_alerting(services, settings)
    flaky, dead = registry.homes[0], registry.homes[1]

    twilio.fail_next(5, 500, 20500)
    raise_sos(device, flaky)
    api = login(alerting_url(settings))
    alert = one_alert(api, flaky)
    phone = flaky.responders[0].phone
    for channel in ("sms", "voice"):
        wait_for(lambda c=channel: notification(api, alert["id"], c, phone), 30, f"the {channel} after the outage")
    assert len([r for r in twilio.requests if r.status == 500]) == 5
    assert len(created(twilio.messages_to(phone))) == len(created(twilio.calls_to(phone))) == 1

    twilio.fail_next(2, 400, 21211)  # Twilio: "the 'To' number is not a valid phone number"
    raise_sos(device, dead)
    dead_alert = one_alert(api, dead)
    wait_for(lambda: created(twilio.calls_to(dead.responders[1].phone)), 20, "the next responder's call")
    assert [a["detail"]["reason"] for a in audit(api, dead_alert["id"], "escalated")] == ["start", "unanswered"]
    failed = [n for n in detail(api, dead_alert["id"])["notifications"] if n["status"] == "failed"]
    assert {(n["channel"], n["recipient"]) for n in failed} == {
        ("sms", dead.responders[0].phone),
        ("voice", dead.responders[0].phone),
    }


def test_forged_webhooks_get_403_and_change_nothing(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
    escalating: Callable[[float], None],
) -> None:
    escalating(0.5)
    start_alerting(services, settings)
    home = registry.homes[0]
    first = home.responders[0]
    raise_sos(device, home)
    api = login(alerting_url(settings))
    alert = one_alert(api, home)
    call = wait_for(lambda: notification(api, alert["id"], "voice", first.phone), 20, "the first call")
    before = detail(api, alert["id"])

    gather = f"/twilio/gather/{call['id']}"
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature("https://evil.example" + gather, {"Digits": "1"})
    wrong_key = RequestValidator("not-the-token").compute_signature(alerting_url(settings) + gather, {"Digits": "1"})
    attempts = [
        signed_post(settings, gather, {"Digits": "1"}, signature=""),
        signed_post(settings, gather, {"Digits": "1"}, signature=elsewhere),
        signed_post(settings, gather, {"Digits": "1"}, signature=wrong_key),
        httpx.post(alerting_url(settings) + "/twilio/sms", data={"From": first.phone, "Body": "1"}),
        httpx.post(alerting_url(settings) + f"/twilio/status/{call['id']}", data={"CallStatus": "busy"}),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    after = detail(api, alert["id"])
    assert (after["status"], after["audit"], after["escalation"]) == (
        before["status"],
        before["audit"],
        before["escalation"],
    )


def test_alerting_restarted_mid_escalation_resumes_where_it_was(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
    escalating: Callable[[float], None],
) -> None:
    escalating(0.2)  # 12 s per step
    start_alerting(services, settings)
    home = registry.homes[1]
    first, second = home.responders
    raise_sos(device, home)
    api = login(alerting_url(settings))
    alert = one_alert(api, home)
    wait_for(lambda: notification(api, alert["id"], "voice", first.phone), 20, "the first call recorded")

    services["alerting"].kill()  # no clean shutdown, between two steps
    start_alerting(services, settings)
    wait_for(lambda: created(twilio.calls_to(second.phone)), 40, "step 2 after the restart")
    api = login(alerting_url(settings))
    sent = [(n["step"], n["channel"]) for n in detail(api, alert["id"])["notifications"]]
    assert sent[:4] == [(0, "sms"), (0, "voice"), (1, "sms"), (1, "voice")]
    assert len(twilio.calls_to(first.phone)) == len(twilio.messages_to(first.phone)) == 1
