"""`carebed up`: the whole pipeline on one machine, each service in its own process, restarted if it dies."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.auth import Role, create_user
from alerting.models import Notification, NotificationStatus
from carebed.broker import Mosquitto, free_port, wait_for_port
from carebed.db import make_engine, make_sessionmaker, migrate
from carebed.provisioning import new_service_passwords, service_account, sync_broker_auth
from carebed.registry import RegistryFile, import_registry
from carebed.settings import Settings

RESTART_BACKOFF_S = 2.0
# Each service process and the command that starts it. Both lanes on the SOS path (the gateway's
# events, the detector's alarms) run in processes of their own, beside the bulk work.
SERVICES: dict[str, tuple[str, ...]] = {
    "alerting": ("alerting",),
    "gateway": ("gateway", "--lane", "telemetry"),
    "gateway-events": ("gateway", "--lane", "events"),
    "detector": ("detector",),
    "alarms": ("alarms",),
}
# Each serves /metrics on CAREBED_METRICS_PORT; the alerting service serves it on its HTTP port.
OWN_METRICS_PORT = tuple(name for name in SERVICES if name != "alerting")


@dataclass
class Child:
    """A service process with its own broker account and environment."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "carebed", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    settings: Settings
    registry: RegistryFile | None
    simulate: list[str] | None
    console: Console = field(default_factory=Console)

    def run(self, stopping: threading.Event) -> None:
        data = self.settings.data_dir.resolve()
        broker = Mosquitto(data / "mosquitto", free_port(), authenticated=True)
        accounts = new_service_passwords(broker.data_dir)
        migrate(self.settings.sqlalchemy_url)
        engine = make_engine(self.settings.sqlalchemy_url)
        sessions = make_sessionmaker(engine)
        demo_password = None
        with sessions.begin() as session:
            if self.registry is not None:
                import_registry(session, self.registry)
            if self.simulate is not None:
                demo_password = secrets.token_urlsafe(12)
                create_user(session, "demo", demo_password, Role.SUPERVISOR)
            sync_broker_auth(session, broker.data_dir)
        broker.start()

        env = {
            **os.environ,
            "CAREBED_MQTT_HOST": "127.0.0.1",
            "CAREBED_MQTT_PORT": str(broker.port),
            "CAREBED_DATA_DIR": str(data),
            "CAREBED_HTTP_PORT": str(self.settings.http_port),
        }
        if self.simulate is not None:
            # Simulated time restarts at the wall clock and runs ahead of it.
            env["CAREBED_GATEWAY_MAX_FUTURE_SKEW_S"] = "null"
            (data / "detector" / "state.pickle").unlink(missing_ok=True)
        logs = data / "logs"
        services = [(name, list(args)) for name, args in SERVICES.items()]
        if self.simulate is not None:
            services.append(("simulator", ["simulate", *self.simulate]))
        children = []
        for name, args in services:
            account = service_account(name)
            child_env = {**env, "CAREBED_MQTT_USERNAME": account, "CAREBED_MQTT_PASSWORD": accounts[account]}
            if name in OWN_METRICS_PORT:
                child_env["CAREBED_METRICS_PORT"] = str(free_port())
            children.append(Child(name, args, logs / f"{name}.log", child_env))
        try:
            for child in children:
                child.start()
            wait_for_port(self.settings.http_port, 30, children[0].process)
            self._announce(broker.port, demo_password, logs, children)
            self._supervise(children, sessions, stopping)
        finally:
            for child in reversed(children):
                child.stop()
            broker.stop()
            engine.dispose()

    def _announce(self, mqtt_port: int, password: str | None, logs: Path, children: list[Child]) -> None:
        url = f"http://{self.settings.http_host}:{self.settings.http_port}/"
        self.console.print(f"[bold green]carebed is running[/]  console: [link={url}]{url}[/link]")
        if password is not None:
            self.console.print(f"  log in as [bold]demo[/] with password [bold]{password}[/]")
        metrics = [f"{url}metrics"] + [
            f"http://127.0.0.1:{c.env['CAREBED_METRICS_PORT']}/metrics"
            for c in children
            if "CAREBED_METRICS_PORT" in c.env
        ]
        self.console.print(f"  metrics: {' '.join(metrics)}")
        self.console.print(
            f"  MQTT broker 127.0.0.1:{mqtt_port} (password and ACL in {self.settings.data_dir / 'mosquitto'}); "
            f"service logs in {logs}; Ctrl-C stops everything"
        )

    def _supervise(self, children: list[Child], sessions: sessionmaker[Session], stopping: threading.Event) -> None:
        shown: set[int] = set()
        while not stopping.wait(1.0):
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None or (child.name == "simulator" and code == 0):
                    continue
                self.console.print(f"[red]{child.name} exited with {code}; restarting[/] (log: {child.log_path})")
                time.sleep(RESTART_BACKOFF_S)
                child.start()
            self._show_new_messages(sessions, shown)

    def _show_new_messages(self, sessions: sessionmaker[Session], shown: set[int]) -> None:
        """Print each message the alerting service sent (or, running dry, would have sent)."""
        with sessions() as session:
            rows = session.scalars(
                select(Notification)
                .where(Notification.status.in_((NotificationStatus.SENT, NotificationStatus.DRY_RUN)))
                .order_by(Notification.id)
            ).all()
        for row in rows:
            if row.id in shown:
                continue
            shown.add(row.id)
            verb = "would send" if row.status == NotificationStatus.DRY_RUN else "sent"
            masked = f"{row.recipient[:6]}****{row.recipient[-4:]}"
            self.console.print(
                f"[yellow]alert #{row.alert_id}[/]: {verb} {row.channel.upper()} to {masked}: {row.body}"
            )
