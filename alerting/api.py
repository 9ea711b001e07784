"""REST API v1: alerts, their notifications, acknowledgement and resolution, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from alerting.api_schemas import AlertDetail, AlertOut, AuditOut, Health, ResolveIn
from alerting.auth import CurrentUser
from alerting.models import Alert, AlertStatus, AuditEntry
from alerting.state import AppState
from alerting.store import Source, acknowledge, resolve
from carebed.registry import Resident

router = APIRouter(prefix="/api/v1")

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.carebed
    return state


def _resident_names(session: Session, home_ids: set[str]) -> dict[str, str]:
    rows = session.execute(
        select(Resident.home_id, Resident.name).where(Resident.home_id.in_(home_ids)).order_by(Resident.id)
    )
    names: dict[str, str] = {}
    for home_id, name in rows:
        names.setdefault(home_id, name)
    return names


def _get_alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(404, "no such alert")
    return alert


@router.get("/health")
def health(request: Request) -> Health:
    state = _state(request)
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    mqtt = state.consumer.mqtt.connected.is_set()
    return Health(
        status="ok" if database and mqtt else "degraded",
        database=database,
        mqtt=mqtt,
        twilio="dry_run" if state.sender.dry_run else "live",
    )


@router.get("/alerts")
def list_alerts(
    request: Request,
    user: CurrentUser,
    status: Annotated[AlertStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    """Unresolved alerts first, most severe then oldest first; resolved ones after, newest first."""
    with _state(request).sessions() as session:
        query = select(Alert).options(selectinload(Alert.notifications)).order_by(Alert.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Alert.status == status.value)
        alerts = session.scalars(query).all()
        names = _resident_names(session, {a.home_id for a in alerts})
        out = [AlertOut.model_validate(a).model_copy(update={"resident": names.get(a.home_id)}) for a in alerts]
    unresolved = sorted(
        (a for a in out if a.status != AlertStatus.RESOLVED),
        key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), a.created_at),
    )
    return unresolved + [a for a in out if a.status == AlertStatus.RESOLVED]


@router.get("/alerts/events")
async def alert_events(request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-sent events: one 'change' each time an alert or its notifications change."""
    state = _state(request)

    async def stream() -> AsyncIterator[str]:
        seen = -1
        while not await request.is_disconnected():
            version = state.version
            if version != seen:
                seen = version
                yield f"event: change\ndata: {version}\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/alerts/{alert_id}")
def get_alert(request: Request, alert_id: int, user: CurrentUser) -> AlertDetail:
    with _state(request).sessions() as session:
        alert = _get_alert(session, alert_id)
        audit = session.scalars(select(AuditEntry).where(AuditEntry.alert_id == alert_id).order_by(AuditEntry.id)).all()
        names = _resident_names(session, {alert.home_id})
        return AlertDetail(
            **AlertOut.model_validate(alert).model_dump(exclude={"resident"}),
            resident=names.get(alert.home_id),
            audit=[AuditOut.model_validate(a) for a in audit],
        )


@router.post("/alerts/{alert_id}/ack")
def ack_alert(request: Request, alert_id: int, user: CurrentUser) -> AlertOut:
    state = _state(request)
    with state.sessions.begin() as session:
        alert = _get_alert(session, alert_id)
        changed = acknowledge(session, alert, actor=user, source=Source.CONSOLE)
        session.flush()
        result = AlertOut.model_validate(alert)
    if changed:
        state.changed()
    return result


@router.post("/alerts/{alert_id}/resolve")
def resolve_alert(request: Request, alert_id: int, body: ResolveIn, user: CurrentUser) -> AlertOut:
    state = _state(request)
    with state.sessions.begin() as session:
        alert = _get_alert(session, alert_id)
        changed = resolve(session, alert, actor=user, source=Source.CONSOLE, outcome=body.outcome)
        session.flush()
        result = AlertOut.model_validate(alert)
    if changed:
        state.changed()
    return result
