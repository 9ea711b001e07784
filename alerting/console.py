"""The operator console: login, and one live page of alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from alerting.auth import CurrentUser, LoginOutcome, attempt_login, end_session, session_user, start_session
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


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: CurrentUser) -> JSONResponse:
    """The REST API's OpenAPI document, for signed-in users: it maps every operation an intruder could try."""
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs(request: Request) -> Response:
    """The operations of the REST API, each with its summary, and the OpenAPI document to load into a client."""
    if session_user(request) is None:
        return RedirectResponse("/login", status_code=303)
    paths: dict[str, dict[str, dict[str, str]]] = request.app.openapi()["paths"]
    operations = [
        (method.upper(), path, operation.get("summary", ""))
        for path, item in paths.items()
        for method, operation in item.items()
    ]
    return templates.TemplateResponse(request, "docs.html", {"operations": operations})


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
