"""The alerting service's FastAPI application: API, console, finding consumer and outbox in one process."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.middleware.sessions import SessionMiddleware

from alerting import api, console, console_api, webhooks
from alerting.auth import SESSION_TTL, session_secret
from alerting.health import LastAlertCollector
from alerting.metrics import OpenAlertsCollector
from alerting.state import AppState
from alerting.twilio_client import make_sender
from carebed import service
from carebed.db import History, make_engine, make_sessionmaker, migrate
from carebed.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(settings.sqlalchemy_url)
        migrate(settings.charts_sqlalchemy_url, History.CHARTS)
        engine = make_engine(settings.sqlalchemy_url)
        charts = make_engine(settings.charts_sqlalchemy_url)
        state = AppState(settings, make_sessionmaker(engine, charts=charts), make_sender(settings))
        app.state.carebed = state
        collectors = (OpenAlertsCollector(state.sessions), LastAlertCollector(state.sessions))
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

    app = FastAPI(title="carebed alerting", version="1", lifespan=lifespan)
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


def metrics(request: Request) -> Response:
    """Prometheus metrics: from loopback, or with the bearer token of CAREBED_METRICS_TOKEN from anywhere.

    They name no person, but tell an outsider how many alerts are open and how the service fares.
    """
    settings: Settings = request.app.state.carebed.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    given = request.headers.get("Authorization", "")
    loopback = request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    if not loopback and not (token and secrets.compare_digest(given.encode(), f"Bearer {token}".encode())):
        return PlainTextResponse("metrics are served to loopback or with the metrics bearer token\n", 403)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def run(settings: Settings) -> None:
    import uvicorn

    service.start("alerting", settings, settings.metrics_port)
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False
    )
