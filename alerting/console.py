"""The operator console: login, and one live page of alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from alerting.auth import LoginOutcome, attempt_login, end_session, session_user, start_session
from alerting.state import AppState

router = APIRouter()
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))


@router.get("/", response_class=HTMLResponse)
def console_page(request: Request) -> Response:
    user = session_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state: AppState = request.app.state.carebed
    return templates.TemplateResponse(
        request,
        "console.html",
        {
            "user": user,
            "role": request.session.get("role", "operator"),
            "csrf": request.session.get("csrf", ""),
            "timezone": state.settings.timezone,
        },
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": False})


@router.post("/login")
def login(request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
    state: AppState = request.app.state.carebed
    address = request.client.host if request.client else "unknown"
    with state.sessions() as session:
        outcome, user = attempt_login(session, state.settings, username, password, address)
        if user is not None:
            start_session(request, session, user)
            session.commit()
    if outcome is LoginOutcome.LOCKED:
        return templates.TemplateResponse(request, "login.html", {"error": "locked"}, status_code=429)
    if user is None:
        return templates.TemplateResponse(request, "login.html", {"error": "wrong"}, status_code=401)
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    """The session ends on the server: a copy of the cookie kept elsewhere no longer works."""
    end_session(request)
    return RedirectResponse("/login", status_code=303)
