"""End to end: a wearable's SOS through broker, gateway, the detector's alarm lane, alerting and Twilio's API.

Every service runs as its own process; Twilio is Prism serving Twilio's OpenAPI spec, behind a
recording proxy so the test sees exactly what the real `twilio` client sent.
"""

from __future__ import annotations

import json
import random
import signal
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from carebed import topics
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import HomeSpec, RegistryFile
from carebed.schemas import DeviceKind, utc_now
from carebed.settings import Settings
from simulators.homes import Incident, SimulatedHome
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM, alerting_url, login
from tests.support import Observer, ServiceProcess, TwilioRecorder, wait_for

pytestmark = pytest.mark.integration


def press_sos(device: MqttClient, settings: Settings, home: HomeSpec) -> None:
    """The simulator's own wearable model produces the payload, as a real watch would."""
    simulated = SimulatedHome(home, settings.tz, random.Random(1))
    [message] = simulated.inject(Incident.SOS, utc_now())
    assert message.device_id == simulated.device(DeviceKind.WEARABLE)
    payload = json.dumps(message.payload).encode()
    device.publish(Outbound(topics.device(message.device_id, message.channel), payload))


def start_pipeline(services: dict[str, ServiceProcess], settings: Settings) -> None:
    start_alerting(services, settings)
    for name in services.keys() - {"alerting"}:
        services[name].start().wait_logged("mqtt connected")


def start_alerting(services: dict[str, ServiceProcess], settings: Settings) -> None:
    services["alerting"].start()
    wait_for(_healthy(settings), 30, "alerting to be healthy")


def _healthy(settings: Settings) -> Any:
    def check() -> bool:
        try:
            return httpx.get(f"{alerting_url(settings)}/api/v1/health", timeout=1).json()["status"] == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    return check


def alerts_of(api: httpx.Client, home_id: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/alerts")
    answer.raise_for_status()
    return [a for a in answer.json() if a["home_id"] == home_id]


def sent_notification(api: httpx.Client, alert_id: int) -> dict[str, Any] | None:
    detail = api.get(f"/api/v1/alerts/{alert_id}").json()
    return next((n for n in detail["notifications"] if n["status"] == "sent"), None)


def test_sos_reaches_the_api_and_twilio(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
) -> None:
    start_pipeline(services, settings)
    home = registry.homes[0]
    responder, resident = home.responders[0], home.residents[0]

    press_sos(device, settings, home)

    api = login(alerting_url(settings))
    [alert] = wait_for(lambda: alerts_of(api, home.id), 20, "the SOS alert in the API")
    assert (alert["code"], alert["severity"], alert["status"]) == ("sos", "critical", "open")
    assert alert["resident"] == resident.name
    notification = wait_for(lambda: sent_notification(api, alert["id"]), 20, "the SMS to be sent")
    assert notification["recipient"] == responder.phone

    [request] = twilio.messages_to(responder.phone)
    assert request.status == 201, request.response
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form["From"] == [TWILIO_FROM]
    [body] = request.form["Body"]
    assert resident.name in body
    assert ("SOS" in body) and (f"#{alert['id']}" in body)
    assert notification["provider_sid"] == request.response["sid"]

    def both_dispatched() -> dict[str, float] | None:
        """The call to step 1 goes out after the SMS: its dispatch may not be counted yet."""
        now = scrape(services["alerting"])
        return now if now.get("carebed_alerting_dispatch_seconds_count", 0) >= 2 else None

    metrics = {name: scrape(proc) for name, proc in services.items()}
    metrics["alerting"] = wait_for(both_dispatched, 20, "the SMS and the call to step 1 to be dispatched")
    # The press came by the gateway's event lane, a process of its own.
    assert metrics["gateway-events"]["carebed_gateway_messages_total"] == 1
    assert metrics["gateway"].get("carebed_gateway_messages_total", 0) == 0
    assert metrics["alarms"]['carebed_detector_findings_total{code="sos"}'] == 1
    # The detector reads the press too, for its state, but leaves the alarm to the lane.
    read = wait_for(lambda: scrape(services["detector"]).get("carebed_detector_readings_total"), 20, "the detector")
    assert read >= 1 and 'carebed_detector_findings_total{code="sos"}' not in scrape(services["detector"])
    assert metrics["alerting"]['carebed_alerting_findings_total{result="created"}'] == 1
    assert metrics["alerting"]['carebed_alerting_open_alerts{severity="critical",status="open"}'] == 1
    assert metrics["alerting"]["carebed_alerting_dispatch_seconds_count"] == 2  # SMS and call to step 1
    assert metrics["alerting"]["carebed_alerting_end_to_end_seconds_count"] == 1


def scrape(service: ServiceProcess) -> dict[str, float]:
    """Prometheus text format, as {series: value}."""
    port = service.env.get("CAREBED_METRICS_PORT") or service.env["CAREBED_HTTP_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", follow_redirects=True, timeout=5).text
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {series: float(value) for series, value in samples}


def test_an_sos_published_while_alerting_is_down_arrives_exactly_once(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
) -> None:
    start_alerting(services, settings)  # its persistent session now exists on the broker
    services["alerting"].stop()
    services["gateway-events"].start().wait_logged("mqtt connected")
    services["alarms"].start().wait_logged("mqtt connected")
    findings = Observer(settings, topics.FINDINGS_SUBSCRIPTION)
    findings.client.start()
    home, marker = registry.homes[0], registry.homes[1]

    press_sos(device, settings, home)
    assert json.loads(findings.next().payload)["home_id"] == home.id  # detected while alerting is down

    start_alerting(services, settings)
    api = login(alerting_url(settings))
    [alert] = wait_for(lambda: alerts_of(api, home.id), 20, "the SOS queued while alerting was down")
    wait_for(lambda: sent_notification(api, alert["id"]), 20, "its SMS")

    # Restart once more, then push a marker through the same path: once the marker's alert
    # exists, anything re-delivered before it has been processed too.
    services["alerting"].stop()
    start_alerting(services, settings)
    api = login(alerting_url(settings))
    press_sos(device, settings, marker)
    [marker_alert] = wait_for(lambda: alerts_of(api, marker.id), 20, "the marker alert")
    wait_for(lambda: sent_notification(api, marker_alert["id"]), 20, "the marker SMS")

    [only] = alerts_of(api, home.id)
    assert only["id"] == alert["id"] and only["finding_count"] == 1
    assert len(twilio.messages_to(home.responders[0].phone)) == 1


def test_an_sos_reaches_twilio_while_the_detector_is_stopped(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
) -> None:
    """The alarm lane is a process of its own: a detector stopped (a long pause, a hang) does not hold an SOS."""
    start_pipeline(services, settings)
    detector = services["detector"].process
    assert detector is not None
    home = registry.homes[1]
    detector.send_signal(signal.SIGSTOP)
    try:
        press_sos(device, settings, home)
        api = login(alerting_url(settings))
        [alert] = wait_for(lambda: alerts_of(api, home.id), 20, "the SOS alert while the detector is stopped")
        wait_for(lambda: sent_notification(api, alert["id"]), 20, "its SMS")
        assert len(twilio.messages_to(home.responders[0].phone)) == 1
    finally:
        detector.send_signal(signal.SIGCONT)


def test_console_and_api_require_a_login_and_actions_a_csrf_token(
    settings: Settings, registry: RegistryFile, services: dict[str, ServiceProcess], device: MqttClient
) -> None:
    start_pipeline(services, settings)
    base = alerting_url(settings)
    anonymous = httpx.Client(base_url=base)
    assert anonymous.get("/").headers["location"] == "/login"
    assert anonymous.get("/api/v1/alerts").status_code == 401
    assert anonymous.post("/login", data={"username": "operator", "password": "wrong password"}).status_code == 401

    press_sos(device, settings, registry.homes[2])
    api = login(base)
    [alert] = wait_for(lambda: alerts_of(api, registry.homes[2].id), 20, "the SOS alert")
    forged = httpx.Client(base_url=base, cookies=api.cookies)
    assert forged.post(f"/api/v1/alerts/{alert['id']}/ack").status_code == 403
    acked = api.post(f"/api/v1/alerts/{alert['id']}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acked_by"] == "operator"


def test_prism_enforces_twilios_contract(twilio: TwilioRecorder) -> None:
    """The mock is only worth something if it rejects what Twilio would reject."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = twilio.url
    good = client.messages.create(to="+8613800138000", from_=TWILIO_FROM, body="contract check")
    assert good.sid
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to="+8613800138000", from_=TWILIO_FROM, body="x", content_retention="forever")
    assert error.value.status == 422
    unsigned = httpx.post(
        f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data={"To": "+8613800138000"}
    )
    assert unsigned.status_code == 401
