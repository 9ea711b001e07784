"""REST API v1: alerts, their notifications, acknowledgement and resolution, health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from alerting.api_schemas import (
    AlertDetail,
    AlertOut,
    AuditOut,
    CallIn,
    EscalationOut,
    Health,
    HomeOut,
    NoteIn,
    ResolveIn,
)
from alerting.auth import CurrentUser, CurrentViewer, Viewer, session_user
from alerting.escalation import Plan, State
from alerting.health import disk_problem, since_last_alert_s
from alerting.messages import CAUSES
from alerting.models import Alert, AlertStatus, AuditEntry, AwayPeriod, Escalation
from alerting.response_times import AlertRecord, seconds_to
from alerting.state import AppState
from alerting.store import Outcome, Source, acknowledge, add_note, confirm_arrival, queue_call, resolve
from carebed.health import lane_problems
from carebed.registry import Home, Resident
from carebed.schemas import Feedback, FeedbackKind, FindingCode, LaneReport, utc_now

router = APIRouter(prefix="/api/v1")

# How often a live stream checks that its session still exists.
SESSION_RECHECK_S = 5.0
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def app_state(request: Request) -> AppState:
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


def _get_alert(session: Session, alert_id: int, viewer: Viewer) -> Alert:
    """404 for an alert of a home outside the viewer's area, as for one that does not exist."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id, Alert.home_id.in_(viewer.homes())))
    if alert is None:
        raise HTTPException(404, "no such alert")
    return alert


def current_away(session: Session, home_id: str) -> AwayPeriod | None:
    now = utc_now()
    return session.scalar(
        select(AwayPeriod)
        .where(
            AwayPeriod.home_id == home_id,
            AwayPeriod.ended_at.is_(None),
            (AwayPeriod.until.is_(None)) | (AwayPeriod.until > now),
        )
        .order_by(AwayPeriod.id.desc())
    )


@router.get("/health", responses={503: {"model": Health, "description": "degraded: see reasons"}})
def health(request: Request, response: Response) -> Health:
    """No login: for load balancers and monitors. Degraded (503) when an SOS may not become an alert now."""
    state = app_state(request)
    settings = state.settings
    commit = state.probe.problem()
    local = state.consumer.mqtt.health()
    reasons = [
        *([commit] if commit else []),
        *([disk] if (disk := disk_problem(settings.data_dir, settings.health_min_free_disk_pct)) else []),
        *lane_problems([local], settings.health_stall_s, "alerting"),
        *state.board.problems(),
    ]
    try:
        since = since_last_alert_s(state.sessions)
    except SQLAlchemyError:
        since = None
    lanes = {
        "alerting": [LaneReport.model_validate(local, from_attributes=True)],
        **{process: list(reported) for process, reported in state.board.lanes().items()},
    }
    if reasons:
        response.status_code = 503
    return Health(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        database=commit is None,
        mqtt=local.connected,
        twilio="dry_run" if state.sender.dry_run else "live",
        since_last_alert_s=since,
        lanes=lanes,
    )


@router.get("/alerts")
def list_alerts(
    request: Request,
    viewer: CurrentViewer,
    status: Annotated[AlertStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    """Unresolved alerts first, most severe then oldest first; resolved ones after, newest first."""
    with app_state(request).sessions() as session:
        query = (
            select(Alert)
            .options(selectinload(Alert.notifications))
            .where(Alert.home_id.in_(viewer.homes()))
            .order_by(Alert.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(Alert.status == status.value)
        alerts = session.scalars(query).all()
        home_ids = {a.home_id for a in alerts}
        names = _resident_names(session, home_ids)
        rows = session.execute(select(Home.id, Home.community).where(Home.id.in_(home_ids)))
        communities = {home_id: community for home_id, community in rows}
        out = [
            AlertOut.model_validate(a).model_copy(
                update={"resident": names.get(a.home_id), "community": communities.get(a.home_id)}
            )
            for a in alerts
        ]
    unresolved = sorted(
        (a for a in out if a.status != AlertStatus.RESOLVED),
        key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), a.created_at),
    )
    return unresolved + [a for a in out if a.status == AlertStatus.RESOLVED]


@router.get("/alerts/events")
async def alert_events(request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-sent events: one 'change' each time an alert or its notifications change."""
    state = app_state(request)

    async def stream() -> AsyncIterator[str]:
        seen = -1
        checked = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - checked >= SESSION_RECHECK_S:
                # Logged out, or a new password: the live view ends with the session.
                if await asyncio.to_thread(session_user, request) is None:
                    return
                checked = time.monotonic()
            version = state.version
            if version != seen:
                seen = version
                yield f"event: change\ndata: {version}\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/alerts/{alert_id}")
def get_alert(request: Request, alert_id: int, viewer: CurrentViewer) -> AlertDetail:
    state = app_state(request)
    with state.sessions() as session:
        alert = _get_alert(session, alert_id, viewer)
        audit = session.scalars(select(AuditEntry).where(AuditEntry.alert_id == alert_id).order_by(AuditEntry.id)).all()
        names = _resident_names(session, {alert.home_id})
        home = session.get(Home, alert.home_id)
        return AlertDetail(
            **AlertOut.model_validate(alert).model_dump(exclude={"resident"}),
            resident=names.get(alert.home_id),
            cause=CAUSES[FindingCode(alert.code)],
            home=HomeOut.of(home, current_away(session, home.id), state.settings.tz) if home else None,
            audit=[AuditOut.model_validate(a) for a in audit],
            escalation=_escalation(session.get(Escalation, alert_id)),
            response_s=seconds_to(record_of(alert)),
        )


def record_of(alert: Alert, street: str = "", community: str = "") -> AlertRecord:
    """The alert's response-time milestones."""
    return AlertRecord(
        street=street,
        community=community,
        created_at=alert.created_at,
        notified_at=alert.first_notified_at,
        acked_at=alert.acked_at,
        arrived_at=alert.arrived_at,
        resolved_at=alert.resolved_at,
    )


def _escalation(row: Escalation | None) -> EscalationOut | None:
    if row is None:
        return None
    plan, state = Plan.model_validate(row.plan), State.model_validate(row.state)
    return EscalationOut(
        phase=state.phase,
        round=state.round,
        step=state.step,
        steps=len(plan.steps),
        rounds=plan.rounds,
        next_at=state.deadline,
    )


def _console_change(
    request: Request, alert_id: int, viewer: Viewer, change: Callable[[Session, Alert, str, Source], bool]
) -> AlertOut:
    state = app_state(request)
    with state.sessions.begin() as session:
        alert = _get_alert(session, alert_id, viewer)
        changed = change(session, alert, viewer.username, Source.CONSOLE)
        session.flush()
        result = AlertOut.model_validate(alert)
    if changed:
        state.changed()
    return result


@router.post("/alerts/{alert_id}/ack")
def ack_alert(request: Request, alert_id: int, viewer: CurrentViewer) -> AlertOut:
    return _console_change(request, alert_id, viewer, acknowledge)


@router.post("/alerts/{alert_id}/arrived")
def arrived(request: Request, alert_id: int, viewer: CurrentViewer) -> AlertOut:
    """Someone reported by phone that they are with the resident: the operator records it."""
    return _console_change(request, alert_id, viewer, confirm_arrival)


@router.post("/alerts/{alert_id}/resolve")
def resolve_alert(request: Request, alert_id: int, body: ResolveIn, viewer: CurrentViewer) -> AlertOut:
    """Resolving as a false alarm also tells the detector, so it can learn that home's pattern."""
    state = app_state(request)
    with state.sessions.begin() as session:
        alert = _get_alert(session, alert_id, viewer)
        changed = resolve(session, alert, actor=viewer.username, source=Source.CONSOLE, outcome=body.outcome)
        if changed and body.note:
            add_note(session, alert, viewer.username, body.note)
        session.flush()
        result = AlertOut.model_validate(alert)
    if changed:
        state.changed()
        if body.outcome == Outcome.FALSE_ALARM:
            state.publish_feedback(
                Feedback(
                    id=f"false_alarm:{alert_id}",
                    home_id=result.home_id,
                    kind=FeedbackKind.FALSE_ALARM,
                    ts=utc_now(),
                    code=FindingCode(result.code),
                )
            )
    return result


@router.post("/alerts/{alert_id}/call")
def call_responder(request: Request, alert_id: int, body: CallIn, viewer: CurrentViewer) -> AlertOut:
    """Queue a voice call to one of the home's responders; the outbox places it through Twilio."""
    state = app_state(request)
    with state.sessions.begin() as session:
        alert = _get_alert(session, alert_id, viewer)
        home = session.get(Home, alert.home_id)
        responder = next((r for r in home.responders if r.id == body.responder_id), None) if home else None
        if responder is None:
            raise HTTPException(404, "no such responder for this home")
        queue_call(session, alert, responder, viewer.username, state.settings.tz)
        session.flush()
        session.refresh(alert)
        result = AlertOut.model_validate(alert)
    state.changed()
    state.dispatcher.wake()
    return result


@router.post("/alerts/{alert_id}/notes", status_code=201)
def note_alert(request: Request, alert_id: int, body: NoteIn, viewer: CurrentViewer) -> dict[str, bool]:
    state = app_state(request)
    with state.sessions.begin() as session:
        add_note(session, _get_alert(session, alert_id, viewer), viewer.username, body.text)
    state.changed()
    return {"ok": True}
