"""REST API v1 for the rest of the console: who am I, away periods, activity chart, registry, dashboard,
escalation policies and the response-time report."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from alerting.api import app_state, current_away, record_of
from alerting.api_schemas import AwayIn, AwayOut, HomeOut
from alerting.auth import CurrentViewer, Supervisor, Viewer
from alerting.dashboard import AlertTimes, summarise
from alerting.escalation import DEFAULT_POLICIES, Policy
from alerting.models import (
    ActivityBucket,
    Alert,
    AlertStatus,
    AwayPeriod,
    DeviceSeen,
    EscalationPolicyRecord,
    Notification,
)
from alerting.response_times import report
from carebed.registry import Device, Home, import_registry
from carebed.registry_files import CSV_COLUMNS, RegistryFileError, parse_registry
from carebed.schemas import Feedback, FeedbackKind, Severity, utc_now

router = APIRouter(prefix="/api/v1")

MAX_IMPORT_BYTES = 2_000_000


def _home(session: Session, home_id: str, viewer: Viewer) -> Home:
    home = session.scalar(select(Home).where(Home.id == home_id, Home.id.in_(viewer.homes())))
    if home is None:
        raise HTTPException(404, "no such home")
    return home


@router.get("/me")
def me(viewer: CurrentViewer) -> dict[str, Any]:
    return {"username": viewer.username, "role": viewer.role.value, "areas": list(viewer.areas)}


@router.post("/homes/{home_id}/away", status_code=201)
def declare_away(request: Request, home_id: str, body: AwayIn, viewer: CurrentViewer) -> AwayOut:
    """Record the away period, then tell the detector (it stops expecting activity from this home)."""
    state = app_state(request)
    with state.sessions.begin() as session:
        _home(session, home_id, viewer)
        period = AwayPeriod(home_id=home_id, until=body.until, reason=body.reason, declared_by=viewer.username)
        session.add(period)
        session.flush()
        result = AwayOut.model_validate(period)
    state.publish_feedback(
        Feedback(id=f"away:{result.id}", home_id=home_id, kind=FeedbackKind.AWAY, ts=result.since, until=body.until)
    )
    state.changed()
    return result


@router.delete("/homes/{home_id}/away")
def declare_back(request: Request, home_id: str, viewer: CurrentViewer) -> dict[str, int]:
    state = app_state(request)
    now = utc_now()
    with state.sessions.begin() as session:
        _home(session, home_id, viewer)
        period = current_away(session, home_id)
        if period is None:
            raise HTTPException(404, "the home is not marked away")
        period.ended_at = now
        period_id = period.id
    state.publish_feedback(Feedback(id=f"back:{period_id}", home_id=home_id, kind=FeedbackKind.BACK, ts=now))
    state.changed()
    return {"ended": period_id}


@router.get("/homes/{home_id}/activity")
def activity(
    request: Request,
    home_id: str,
    viewer: CurrentViewer,
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
    until: Annotated[datetime | None, Query(description="End of the window (default now)")] = None,
) -> dict[str, Any]:
    """Water, gas and steps per 15 minutes of device time, for the chart on an alert."""
    end = until or utc_now()
    with app_state(request).sessions() as session:
        _home(session, home_id, viewer)
        rows = session.scalars(
            select(ActivityBucket)
            .where(
                ActivityBucket.home_id == home_id,
                ActivityBucket.start >= end - timedelta(hours=hours),
                ActivityBucket.start <= end,
            )
            .order_by(ActivityBucket.start)
        ).all()
    return {
        "home_id": home_id,
        "from": end - timedelta(hours=hours),
        "until": end,
        "bucket_min": 15,
        "buckets": [
            {"start": r.start, "water_l": round(r.water_l, 2), "gas_m3": round(r.gas_m3, 4), "steps": r.steps}
            for r in rows
        ],
    }


@router.get("/registry")
def registry(request: Request, viewer: CurrentViewer) -> dict[str, Any]:
    """The homes this user may see, with residents, devices (last seen, battery), responders and policy."""
    state = app_state(request)
    offline_after = timedelta(minutes=state.settings.offline_after_min)
    with state.sessions() as session:
        homes = session.scalars(
            select(Home)
            .where(Home.id.in_(viewer.homes()))
            .options(selectinload(Home.residents), selectinload(Home.devices), selectinload(Home.responders))
            .order_by(Home.community, Home.id)
        ).all()
        seen = {
            row.device_id: row
            for row in session.scalars(select(DeviceSeen).where(DeviceSeen.home_id.in_([h.id for h in homes])))
        }
        own = {
            (r.home_id, r.severity)
            for r in session.scalars(
                select(EscalationPolicyRecord).where(EscalationPolicyRecord.home_id.in_([h.id for h in homes]))
            )
        }
        out = []
        for home in homes:
            data = HomeOut.of(home, current_away(session, home.id), state.settings.tz).model_dump(mode="json")
            data["devices"] = [_device(d, seen.get(d.id), offline_after) for d in home.devices]
            data["escalation_policy"] = {s.value: "home" if (home.id, s.value) in own else "default" for s in Severity}
            out.append(data)
    return {"homes": out, "csv_columns": list(CSV_COLUMNS)}


def _device(device: Device, seen: DeviceSeen | None, offline_after: timedelta) -> dict[str, Any]:
    return {
        "id": device.id,
        "kind": device.kind,
        "model": device.model,
        "last_seen": seen.last_seen.isoformat() if seen else None,
        "battery_pct": seen.battery_pct if seen else None,
        "offline": _offline(seen, offline_after),
    }


def _offline(seen: DeviceSeen | None, offline_after: timedelta) -> bool:
    """Never heard from, said it is offline, or silent too long (by its own last timestamp)."""
    return seen is None or not seen.online or seen.last_seen < utc_now() - offline_after


@router.post("/registry/import")
async def import_file(request: Request, file: UploadFile, viewer: Supervisor) -> JSONResponse:
    """All or nothing: any error in any row, and nothing is written; the report names each row and field."""
    content = await file.read(MAX_IMPORT_BYTES + 1)
    if len(content) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"a registry file may have at most {MAX_IMPORT_BYTES} bytes")
    try:
        parsed = parse_registry(content, file.filename or "")
    except RegistryFileError as exc:
        return JSONResponse({"imported": 0, "errors": [asdict(e) for e in exc.errors]}, status_code=422)
    state = app_state(request)
    with state.sessions.begin() as session:
        count = import_registry(session, parsed)
    state.changed()
    return JSONResponse({"imported": count, "errors": []})


@router.get("/dashboard")
def dashboard(request: Request, viewer: Supervisor, days: Annotated[int, Query(ge=1, le=90)] = 7) -> dict[str, Any]:
    """Per community: open alerts, response-time percentiles, share acknowledged within 60 s and 180 s."""
    state = app_state(request)
    since = utc_now() - timedelta(days=days)
    offline_after = timedelta(minutes=state.settings.offline_after_min)
    with state.sessions() as session:
        first_sent = (
            select(Notification.alert_id, func.min(Notification.sent_at).label("sent_at"))
            .where(Notification.sent_at.is_not(None))
            .group_by(Notification.alert_id)
            .subquery()
        )
        rows = session.execute(
            select(Alert, Home.community, first_sent.c.sent_at)
            .outerjoin(Home, Home.id == Alert.home_id)
            .outerjoin(first_sent, first_sent.c.alert_id == Alert.id)
            .where((Alert.created_at >= since) | (Alert.status != AlertStatus.RESOLVED))
        ).all()
        alerts = [
            AlertTimes(community or "", a.created_at, a.acked_at, sent_at, a.status != AlertStatus.RESOLVED)
            for a, community, sent_at in rows
        ]
        seen = {row.device_id: row for row in session.scalars(select(DeviceSeen))}
        devices = [
            (community, _offline(seen.get(device_id), offline_after))
            for device_id, community in session.execute(select(Device.id, Home.community).join(Home))
        ]
    return {"days": days, "communities": [_public(asdict(s)) for s in summarise(alerts, devices)]}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


@router.get("/homes/{home_id}/escalation-policies/{severity}")
def get_policy(request: Request, home_id: str, severity: Severity, viewer: CurrentViewer) -> dict[str, Any]:
    """The policy new alerts of this home and severity will copy: the home's own, or the default."""
    with app_state(request).sessions() as session:
        _home(session, home_id, viewer)
        record = session.get(EscalationPolicyRecord, (home_id, severity.value))
        policy = Policy.model_validate(record.policy) if record else DEFAULT_POLICIES[severity]
        return {"source": "home" if record else "default", "policy": policy.model_dump(mode="json")}


@router.put("/homes/{home_id}/escalation-policies/{severity}")
def put_policy(request: Request, home_id: str, severity: Severity, body: Policy, viewer: Supervisor) -> dict[str, Any]:
    """Applies to alerts that start from now on; alerts in flight keep the plan they started with."""
    state = app_state(request)
    with state.sessions.begin() as session:
        _home(session, home_id, viewer)
        record = session.get(EscalationPolicyRecord, (home_id, severity.value))
        if record is None:
            record = EscalationPolicyRecord(home_id=home_id, severity=severity.value, updated_by=viewer.username)
            session.add(record)
        record.policy, record.updated_by = body.model_dump(mode="json"), viewer.username
    return {"source": "home", "policy": body.model_dump(mode="json")}


@router.delete("/homes/{home_id}/escalation-policies/{severity}")
def delete_policy(request: Request, home_id: str, severity: Severity, viewer: Supervisor) -> dict[str, str]:
    with app_state(request).sessions.begin() as session:
        _home(session, home_id, viewer)
        record = session.get(EscalationPolicyRecord, (home_id, severity.value))
        if record is not None:
            session.delete(record)
    return {"source": "default"}


@router.get("/reports/response-times")
def response_times(
    request: Request,
    viewer: Supervisor,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    group: Literal["street", "community"] = "community",
) -> dict[str, Any]:
    """Share acknowledged within 60 s and 180 s (targets 97.5 % and 99 %) and percentiles, per area and period."""
    until = until or utc_now()
    since = since or until - timedelta(days=30)
    with app_state(request).sessions() as session:
        rows = session.execute(
            select(Alert, Home.street, Home.community)
            .outerjoin(Home, Home.id == Alert.home_id)
            .where(Alert.created_at >= since, Alert.created_at < until, Alert.home_id.in_(viewer.homes()))
        ).all()
    records = [record_of(a, street or "", community or "") for a, street, community in rows]
    return {
        "since": since,
        "until": until,
        "group": group,
        "rows": [_public(asdict(row)) for row in report(records, group)],
    }
