"""The alerting service's FastAPI application: API, console, finding consumer and outbox in one process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerting import api, console, console_api, webhooks
from alerting.auth import SESSION_TTL, session_secret
from alerting.health import LastAlertCollector
from alerting.metrics import OpenAlertsCollector, OperationsCollector
from alerting.state import AppState
from alerting.twilio_client import make_sender
from carebed import service
from carebed.db import make_engine, make_sessionmaker
from carebed.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        charts = make_engine(settings.charts_sqlalchemy_url)
        state = AppState(settings, make_sessionmaker(engine, charts=charts), make_sender(settings))
        app.state.carebed = state
        collectors = (
            OpenAlertsCollector(state.sessions),
            OperationsCollector(state.sessions, timedelta(minutes=settings.offline_after_min)),
            LastAlertCollector(state.sessions),
        )
        for collector in collectors:
            REGISTRY.register(collector)
        state.dispatcher.start()
        state.escalator.start()
        state.consumer.mqtt.start()
        state.board.mqtt.start()
        state.activity.start()
        service.ready()
        log.info("alerting ready", extra={"port": settings.http_port})
        yield
        state.activity.stop()
        state.board.mqtt.stop()
        state.consumer.mqtt.stop()
        state.escalator.stop()
        state.dispatcher.stop()
        for collector in collectors:
            REGISTRY.unregister(collector)
        state.probe.close()
        charts.dispose()
        engine.dispose()

    # No Swagger UI: it loads its scripts from a CDN that mainland China often cannot reach. /docs
    # lists the operations and links the OpenAPI document, both behind login (alerting/console.py).
    app = FastAPI(
        title="carebed alerting", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="carebed_session",
        same_site="strict",
        https_only=settings.secure_cookies,
        max_age=int(SESSION_TTL.total_seconds()),
    )
    app.include_router(api.router)
    app.include_router(console_api.router)
    app.include_router(console.router)
    app.include_router(webhooks.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    app.add_api_route("/metrics", metrics, include_in_schema=False)
    return app


# Scripts, styles, images and connections from this origin only; no framing; forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """On every response: CSP, no framing, no MIME sniffing, no referrer; HSTS behind HTTPS."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def metrics(request: Request) -> Response:
    """Prometheus metrics, behind the same rule as every service's metrics port (service.metrics_allowed)."""
    settings: Settings = request.app.state.carebed.settings
    address = request.client.host if request.client else ""
    if not service.metrics_allowed(address, request.headers.get("Authorization", ""), settings.metrics_token):
        return PlainTextResponse(service.METRICS_REFUSED, 403)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def run(settings: Settings) -> None:
    import uvicorn

    service.start("alerting", settings, settings.metrics_port)
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False
    )
