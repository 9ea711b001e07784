"""The console's API against the real pipeline: areas, away and false-alarm feedback on the broker, voice calls
through Twilio's contract, registry import and the dashboard's roles."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from alerting.auth import Role, create_user
from carebed import topics
from carebed.db import make_engine, make_sessionmaker
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import RegistryFile
from carebed.schemas import Feedback, FeedbackKind, utc_now
from carebed.settings import Settings
from tests.conftest import ACCOUNT_SID, TWILIO_FROM, alerting_url, login
from tests.support import Observer, ServiceProcess, TwilioRecorder, wait_for
from tests.test_end_to_end import alerts_of, press_sos, start_alerting, start_pipeline

pytestmark = pytest.mark.integration

SUPERVISOR = ("chief", "supervisor password 1")
NARROW = ("narrow", "operator password 22")


@pytest.fixture
def users(database: str, registry: RegistryFile) -> None:
    """A supervisor, and an operator who watches only the first home's community."""
    with make_sessionmaker(make_engine(database)).begin() as session:
        create_user(session, *SUPERVISOR, Role.SUPERVISOR)
        create_user(session, *NARROW, Role.OPERATOR, [registry.homes[0].community])


def feedback_of(observer: Observer) -> Feedback:
    return Feedback.model_validate_json(observer.next().payload)


def test_away_and_false_alarm_reach_the_detector_as_feedback(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    device: MqttClient,
    users: None,
) -> None:
    start_pipeline(services, settings)
    observer = Observer(settings, topics.FEEDBACK_SUBSCRIPTION)
    observer.client.start()
    home = registry.homes[0]
    api = login(alerting_url(settings), *NARROW)

    until = (utc_now() + timedelta(days=3)).replace(microsecond=0)
    declared = api.post(f"/api/v1/homes/{home.id}/away", json={"until": until.isoformat(), "reason": "hospital"})
    assert declared.status_code == 201, declared.text
    away = feedback_of(observer)
    assert (away.kind, away.home_id, away.until) == (FeedbackKind.AWAY, home.id, until)
    assert away.id == f"away:{declared.json()['id']}"
    assert api.delete(f"/api/v1/homes/{home.id}/away").status_code == 200
    assert feedback_of(observer).kind == FeedbackKind.BACK
    assert api.delete(f"/api/v1/homes/{home.id}/away").status_code == 404

    press_sos(device, settings, home)
    [alert] = wait_for(lambda: alerts_of(api, home.id), 20, "the SOS alert")
    resolved = api.post(
        f"/api/v1/alerts/{alert['id']}/resolve", json={"outcome": "false_alarm", "note": "pressed by mistake"}
    )
    assert resolved.json()["outcome"] == "false_alarm"
    false_alarm = feedback_of(observer)
    assert (false_alarm.kind, false_alarm.code, false_alarm.id) == ("false_alarm", "sos", f"false_alarm:{alert['id']}")
    audit = api.get(f"/api/v1/alerts/{alert['id']}").json()["audit"]
    assert [a["detail"].get("text") for a in audit if a["action"] == "note"] == ["pressed by mistake"]
    # Resolving twice changes nothing and tells the detector nothing more.
    api.post(f"/api/v1/alerts/{alert['id']}/resolve", json={"outcome": "false_alarm"})
    with pytest.raises(AssertionError):
        observer.next(timeout=1)


def test_an_operator_calls_a_responder_through_twilio(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    twilio: TwilioRecorder,
    device: MqttClient,
) -> None:
    start_pipeline(services, settings)
    home = registry.homes[1]
    api = login(alerting_url(settings))
    press_sos(device, settings, home)
    [alert] = wait_for(lambda: alerts_of(api, home.id), 20, "the SOS alert")
    detail = api.get(f"/api/v1/alerts/{alert['id']}").json()
    responder = detail["home"]["responders"][1]  # the escalation calls the first one itself
    assert detail["home"]["residents"][0]["name"] == home.residents[0].name

    assert api.post(f"/api/v1/alerts/{alert['id']}/call", json={"responder_id": responder["id"]}).status_code == 200
    call = wait_for(
        lambda: next(
            (
                n
                for n in api.get(f"/api/v1/alerts/{alert['id']}").json()["notifications"]
                if n["channel"] == "voice" and n["status"] == "sent" and n["recipient"] == responder["phone"]
            ),
            None,
        ),
        20,
        "the call to be placed",
    )
    [request] = twilio.calls_to(responder["phone"])
    assert request.status == 201, request.response
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert request.form["To"] == [responder["phone"]] and request.form["From"] == [TWILIO_FROM]
    [twiml] = request.form["Twiml"]
    language = {"zh-CN": 'language="cmn-CN"', "en": 'language="en-US"'}[responder["language"]]
    assert language in twiml and home.residents[0].name in twiml and f"{alert['id']}" in twiml
    assert call["provider_sid"] == request.response["sid"]
    assert api.post(f"/api/v1/alerts/{alert['id']}/call", json={"responder_id": 999_999}).status_code == 404


def test_areas_roles_and_registry_import(
    settings: Settings,
    registry: RegistryFile,
    services: dict[str, ServiceProcess],
    device: MqttClient,
    users: None,
) -> None:
    start_pipeline(services, settings)
    base = alerting_url(settings)
    mine = registry.homes[0]
    others = [h for h in registry.homes if h.community != mine.community and h.street != mine.street]
    assert others, "the test registry should have homes in another area"
    narrow, chief = login(base, *NARROW), login(base, *SUPERVISOR)
    press_sos(device, settings, others[0])
    [alert] = wait_for(lambda: alerts_of(chief, others[0].id), 20, "the SOS alert")

    # The operator of another area neither lists, opens nor acts on it.
    assert alerts_of(narrow, others[0].id) == []
    assert narrow.get(f"/api/v1/alerts/{alert['id']}").status_code == 404
    assert narrow.post(f"/api/v1/alerts/{alert['id']}/ack").status_code == 404
    assert {h["id"] for h in narrow.get("/api/v1/registry").json()["homes"]} == {
        h.id for h in registry.homes if mine.community in (h.community, h.street)
    }
    assert narrow.get("/api/v1/dashboard").status_code == 403
    good = "homes:\n  - id: h-new\n    residents: [{name: 王秀英}]\n"
    assert narrow.post("/api/v1/registry/import", files={"file": ("r.yaml", good)}).status_code == 403

    # A supervisor's import with one bad row names it, and imports nothing; a good file goes in whole.
    bad = good + "  - id: h-bad\n    residents: [{name: 李}]\n    responders: [{name: 李明, phone: '12345'}]\n"
    answer = chief.post("/api/v1/registry/import", files={"file": ("r.yaml", bad)})
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert (error["row"], error["field"]) == (2, "responders[0].phone")
    assert "h-new" not in {h["id"] for h in chief.get("/api/v1/registry").json()["homes"]}
    assert chief.post("/api/v1/registry/import", files={"file": ("r.yaml", good)}).json() == {
        "imported": 1,
        "errors": [],
    }
    assert "h-new" in {h["id"] for h in chief.get("/api/v1/registry").json()["homes"]}

    chief.post(f"/api/v1/alerts/{alert['id']}/ack")
    totals = chief.get("/api/v1/dashboard").json()["communities"][0]
    assert totals["community"] == "" and totals["alerts"] == 1 and totals["open"] == 1
    assert totals["ack_p50_s"] is not None and totals["acked_within_180s"] in (0.0, 1.0)
    assert totals["devices"] == sum(len(h.devices) for h in registry.homes)


def test_the_rollup_records_usage_and_last_seen(
    settings: Settings, registry: RegistryFile, services: dict[str, ServiceProcess], device: MqttClient
) -> None:
    start_pipeline(services, settings)
    home = registry.homes[2]
    meter = next(d.id for d in home.devices if d.kind == "water_meter")
    api = login(alerting_url(settings))
    start = utc_now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    for minutes, volume in ((0, 1000.0), (1, 1012.5), (2, 3.0)):  # the third is a meter reset
        payload = {"ts": (start + timedelta(minutes=minutes)).isoformat(), "volume_l": volume, "battery_pct": 77}
        device.publish(_telemetry(meter, payload))

    def water() -> float:
        buckets = api.get(f"/api/v1/homes/{home.id}/activity").json()["buckets"]
        return sum(b["water_l"] for b in buckets)

    assert wait_for(lambda: water() == pytest.approx(15.5) or None, 20, "15.5 litres in the chart")
    [seen] = [
        d
        for h in api.get("/api/v1/registry").json()["homes"]
        if h["id"] == home.id
        for d in h["devices"]
        if d["id"] == meter
    ]
    assert seen["battery_pct"] == 77 and seen["last_seen"] is not None


def _running_children(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(child) for child in children.read_text().split()} if children.exists() else set()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper that a container lacks)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_the_rollup_process_ends_when_the_alerting_service_is_killed(
    settings: Settings, services: dict[str, ServiceProcess]
) -> None:
    start_alerting(services, settings)
    process = services["alerting"].process
    assert process is not None
    children = _running_children(process.pid)
    assert children, "the activity rollup runs in a child process"
    services["alerting"].kill()
    wait_for(lambda: not any(_running(child) for child in children), 20, "the rollup process to end with its parent")


def _telemetry(device_id: str, payload: dict[str, object]) -> Outbound:
    return Outbound(topics.device(device_id, topics.DeviceChannel.TELEMETRY), json.dumps(payload).encode())
