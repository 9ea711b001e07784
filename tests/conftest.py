"""Fixtures: a private Mosquitto per test, Prism serving Twilio's spec, a database with a registry, services."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting.auth import Role, create_user
from carebed.db import make_engine, make_sessionmaker, migrate, upgrade
from carebed.mqtt import MqttClient
from carebed.registry import RegistryFile, import_registry
from carebed.settings import Settings
from carebed_app.broker import Mosquitto, free_port, wait_for_port
from carebed_app.postgres import create_database, postgres_server
from carebed_app.stack import OWN_METRICS_PORT, SERVICES
from simulators.homes import build_registry
from tests.support import ServiceProcess, TwilioRecorder

ROOT = Path(__file__).resolve().parents[1]
TWILIO_SPEC = ROOT / "deploy" / "test-tools" / "twilio" / "twilio_api_v2010.json"
TEST_TOOLS = ROOT / "deploy" / "test-tools" / "node_modules"
PRISM = TEST_TOOLS / ".bin" / "prism"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token"
TWILIO_FROM = "+15005550006"
OPERATOR = ("operator", "correct horse battery staple")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto", free_port())
    mosquitto.start()
    yield mosquitto
    mosquitto.kill()


@pytest.fixture
def settings(tmp_path: Path, broker: Mosquitto) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        mqtt_port=broker.port,
        http_port=free_port(),
        database_url=f"sqlite:///{tmp_path / 'data' / 'carebed.db'}",
    )


@pytest.fixture
def device(settings: Settings) -> Iterator[MqttClient]:
    """One MQTT connection publishing on behalf of the test's devices."""
    client = MqttClient(settings, client_id="test-devices", persistent=False)
    client.start()
    yield client
    client.stop()


@pytest.fixture
def registry() -> RegistryFile:
    return build_registry(homes=3, seed=11)


@pytest.fixture
def database(settings: Settings, registry: RegistryFile) -> str:
    """A migrated database with the registry and one operator account."""
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine).begin() as session:
        import_registry(session, registry)
        create_user(session, OPERATOR[0], OPERATOR[1], Role.OPERATOR, sorted({h.street for h in registry.homes}))
    engine.dispose()
    return settings.sqlalchemy_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_server(durable=False) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'carebed.db'}"
    server: str = request.getfixturevalue("postgres")
    return create_database(server, f"t_{secrets.token_hex(6)}")


@pytest.fixture
def homes() -> RegistryFile:
    return build_registry(homes=2, seed=5)


@pytest.fixture
def sessions(database_url: str, homes: RegistryFile) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database of each kind that holds the `homes` registry."""
    migrate(database_url)
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        import_registry(session, homes)
    yield factory
    engine.dispose()


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Twilio's own OpenAPI contract served by Prism on loopback: it rejects requests that break it."""
    assert TWILIO_SPEC.exists(), f"Twilio's OpenAPI spec is expected at {TWILIO_SPEC} (vendored in the repository)"
    assert PRISM.exists(), f"Prism is not installed: run `npm ci --prefix {PRISM.parents[2]}`"
    port = free_port()
    log = (tmp_path_factory.mktemp("prism") / "prism.log").open("wb")
    process = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(TWILIO_SPEC)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def twilio(prism: str) -> Iterator[TwilioRecorder]:
    recorder = TwilioRecorder(prism)
    yield recorder
    recorder.close()


@pytest.fixture
def service_env(settings: Settings, database: str, twilio: TwilioRecorder) -> dict[str, str]:
    return {
        "CAREBED_DATA_DIR": str(settings.data_dir),
        "CAREBED_DATABASE_URL": database,
        "CAREBED_MQTT_PORT": str(settings.mqtt_port),
        "CAREBED_HTTP_PORT": str(settings.http_port),
        "CAREBED_SESSION_SECRET": secrets.token_urlsafe(16),
        "CAREBED_DETECTOR_CHECKPOINT_S": "1",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "CAREBED_TWILIO_FROM": TWILIO_FROM,
        "CAREBED_TWILIO_API_BASE": twilio.url,
    }


@pytest.fixture
def services(service_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Each service process of `carebed up` (each test starts what it needs)."""
    procs = {
        name: ServiceProcess(
            name,
            {**service_env, **({"CAREBED_METRICS_PORT": str(free_port())} if name in OWN_METRICS_PORT else {})},
            tmp_path / f"{name}.log",
        )
        for name in SERVICES
    }
    yield procs
    for proc in procs.values():
        proc.kill()


def login(base_url: str, username: str = OPERATOR[0], password: str = OPERATOR[1]) -> httpx.Client:
    """An API client with a console session and its CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=10)
    answer = client.post("/login", data={"username": username, "password": password}, follow_redirects=True)
    assert answer.status_code == 200, answer.text
    match = re.search(r'name="csrf-token" content="([^"]+)"', answer.text)
    assert match, "console page has no CSRF token"
    client.headers["X-CSRF-Token"] = match.group(1)
    return client


def alerting_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.http_port}"
