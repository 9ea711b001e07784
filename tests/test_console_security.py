"""Console sessions and exposure, tried as an attacker would, against the real alerting process."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from alerting.auth import Role, create_user
from alerting.models import AuditEntry, ConsoleSession
from carebed.db import make_engine, make_sessionmaker
from carebed.registry import RegistryFile
from carebed.service import metrics_allowed
from carebed.settings import Settings
from tests.conftest import OPERATOR, alerting_url, login
from tests.support import ServiceProcess, wait_for

pytestmark = pytest.mark.integration


def start_alerting(services: dict[str, ServiceProcess], settings: Settings, **env: str) -> ServiceProcess:
    alerting = services["alerting"]
    alerting.env.update(env)
    alerting.start()
    wait_for(lambda: _answers(settings), 90, "the alerting service to answer")
    return alerting


def _answers(settings: Settings) -> bool:
    try:
        httpx.get(f"{alerting_url(settings)}/login", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def sign_in(settings: Settings, username: str, password: str) -> int:
    answer = httpx.post(f"{alerting_url(settings)}/login", data={"username": username, "password": password})
    return answer.status_code


def lockouts(database: str) -> list[AuditEntry]:
    engine = make_engine(database)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "login_locked")))
    finally:
        engine.dispose()


def test_wrong_passwords_lock_the_account_then_the_lock_ends(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    """The issue's attack: many wrong passwords, then the right one. Five wrong ones lock the account,
    the right password included, and leave an audit entry; the lock ends after its time."""
    start_alerting(services, settings, CAREBED_LOGIN_LOCKOUT_S="3")
    username, password = OPERATOR
    assert [sign_in(settings, username, f"wrong-{i}-password") for i in range(5)] == [401] * 5
    assert sign_in(settings, username, password) == 429
    [entry] = lockouts(database)
    assert entry.actor == username and entry.source == "console"
    assert entry.detail["scope"] == "account" and entry.detail["address"] == "127.0.0.1"
    wait_for(lambda: sign_in(settings, username, password) == 303, 15, "the lock to end")


def test_wrong_passwords_from_one_address_lock_that_address(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    """Guessing across many accounts from one address locks the address, even for a right password."""
    start_alerting(services, settings, CAREBED_LOGIN_MAX_FAILURES_PER_ADDRESS="8")
    assert {sign_in(settings, f"user{i}", "not-the-password") for i in range(8)} == {401}
    assert sign_in(settings, *OPERATOR) == 429
    assert [entry.detail["scope"] for entry in lockouts(database)] == ["address"]


def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    start_alerting(services, settings)
    api = login(alerting_url(settings))
    saved = dict(api.cookies)
    assert api.get("/api/v1/me").status_code == 200
    with api.stream("GET", "/api/v1/alerts/events", timeout=30) as live:
        lines = live.iter_lines()
        assert next(lines).startswith("event: change")
        assert api.post("/logout").status_code == 303
        # The open live view ends too (a read timeout here if it did not).
        assert [line for line in lines if line.startswith("event:")] == []
    replay = httpx.Client(base_url=alerting_url(settings), cookies=saved)
    assert replay.get("/api/v1/me").status_code == 401
    assert replay.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_new_password_ends_the_users_sessions(
    settings: Settings, database: str, registry: RegistryFile, services: dict[str, ServiceProcess]
) -> None:
    start_alerting(services, settings)
    api = login(alerting_url(settings))
    assert api.get("/api/v1/me").status_code == 200
    engine = make_engine(database)
    with make_sessionmaker(engine).begin() as session:
        # As `carebed admin create` does for an existing user.
        create_user(session, OPERATOR[0], "a brand new passphrase", Role.OPERATOR, [registry.homes[0].street])
    with make_sessionmaker(engine)() as session:
        assert session.scalars(select(ConsoleSession)).all() == []
    engine.dispose()
    assert api.get("/api/v1/me").status_code == 401
    assert login(alerting_url(settings), OPERATOR[0], "a brand new passphrase").get("/api/v1/me").status_code == 200


def test_the_session_secret_is_kept_across_restarts(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    """Without CAREBED_SESSION_SECRET a key is made once, 0600 in the data folder: a restart signs no one out."""
    alerting = services["alerting"]
    del alerting.env["CAREBED_SESSION_SECRET"]
    start_alerting(services, settings)
    api = login(alerting_url(settings))
    alerting.stop()
    start_alerting(services, settings)
    assert api.get("/api/v1/me").status_code == 200
    assert (settings.data_dir / "session.secret").stat().st_mode & 0o777 == 0o600


SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


def test_every_response_carries_the_security_headers(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    start_alerting(services, settings)
    api = login(alerting_url(settings))
    anonymous = httpx.Client(base_url=alerting_url(settings))
    answers = [
        anonymous.get("/login"),
        anonymous.get("/api/v1/health"),
        anonymous.get("/api/v1/alerts"),
        anonymous.get("/static/console.js"),
        anonymous.get("/no-such-page"),
        api.get("/"),
        api.get("/api/v1/me"),
    ]
    for answer in answers:
        missing = [name for name in SECURITY_HEADERS if name not in answer.headers]
        assert not missing, f"{answer.request.url.path} ({answer.status_code}) lacks {missing}"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "script-src 'self';" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_api_description_is_for_signed_in_users_and_loads_nothing_from_elsewhere(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    start_alerting(services, settings)
    anonymous = httpx.Client(base_url=alerting_url(settings))
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get("/docs").headers["location"] == "/login"
    api = login(alerting_url(settings))
    assert "/api/v1/alerts" in api.get("/openapi.json").json()["paths"]
    page = api.get("/docs")
    assert page.status_code == 200 and "/api/v1/alerts/{alert_id}/ack" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "the page loads something from elsewhere"


def test_metrics_are_for_loopback_or_the_bearer_token(
    settings: Settings, database: str, services: dict[str, ServiceProcess]
) -> None:
    """A request relayed by a reverse proxy on this host carries the client's address (X-Forwarded-For),
    so the rule holds behind the proxy too."""
    start_alerting(services, settings, CAREBED_METRICS_TOKEN="scrape-token-123")
    metrics = f"{alerting_url(settings)}/metrics"
    assert "carebed_alerting_open_alerts" in httpx.get(metrics).text
    outsider = {"X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(metrics, headers=outsider).status_code == 403
    assert httpx.get(metrics, headers={**outsider, "Authorization": "Bearer wrong"}).status_code == 403
    scraper = {**outsider, "Authorization": "Bearer scrape-token-123"}
    assert "carebed_alerting_open_alerts" in httpx.get(metrics, headers=scraper).text


@pytest.mark.parametrize(
    ("address", "authorization", "token", "allowed"),
    [
        ("127.0.0.1", "", None, True),
        ("::1", "", None, True),
        ("192.0.2.7", "", None, False),
        ("192.0.2.7", "Bearer t0ken", None, False),
        ("192.0.2.7", "Bearer t0ken", "t0ken", True),
        ("192.0.2.7", "Bearer other", "t0ken", False),
        ("", "", None, False),
    ],
)
def test_the_metrics_rule_of_every_services_port(
    address: str, authorization: str, token: str | None, allowed: bool
) -> None:
    secret = SecretStr(token) if token is not None else None
    assert metrics_allowed(address, authorization, secret) is allowed


def test_data_files_are_private(settings: Settings, database: str, services: dict[str, ServiceProcess]) -> None:
    """The database (this test made it 0644, as an older version would have), the chart database,
    the session key and the detector's checkpoints: none readable by other users of the machine."""
    start_alerting(services, settings)
    services["detector"].start()
    wait_for(lambda: list((settings.data_dir / "detector").glob("*")), 30, "a detector checkpoint")
    login(alerting_url(settings))
    paths = [settings.data_dir, *settings.data_dir.rglob("*")]
    assert len(paths) > 4
    exposed = {
        str(p.relative_to(settings.data_dir)): oct(p.stat().st_mode & 0o777) for p in paths if p.stat().st_mode & 0o077
    }
    assert not exposed
