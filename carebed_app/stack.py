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
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.auth import Role, create_user
from alerting.models import Notification, NotificationStatus, User
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.provisioning import (
    grant_missing_passwords,
    new_service_passwords,
    password_file_path,
    service_account,
    sync_broker_auth,
    write_password_file,
)
from carebed.registry import RegistryFile, import_registry
from carebed.settings import CONFIG_ERROR_EXIT, ConfigurationError, Settings
from carebed_app.broker import Mosquitto, free_port, wait_for_port

RESTART_BACKOFF_S = 2.0
START_TIMEOUT_S = 60.0  # for the console to listen; a loaded two-core machine has taken over 30 s


class StartupError(RuntimeError):
    """A service did not start, for another reason than its configuration; the message says which and where."""


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


def broker_port(settings: Settings) -> int:
    """The configured MQTT port, else one chosen once per data folder and kept, so a broker that
    restarts comes back where its clients (the services, a running simulator) reconnect."""
    if "mqtt_port" in settings.model_fields_set:
        return settings.mqtt_port
    saved = settings.data_dir / "mosquitto" / "port"
    if saved.exists():
        return int(saved.read_text(encoding="utf-8"))
    port = free_port()
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(f"{port}\n", encoding="utf-8")
    return port


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
                [sys.executable, "-m", "carebed_app", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def last_words(self) -> str:
        """The last line the process wrote: a service that stops on a configuration error says why there."""
        lines = [line for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line]
        return lines[-1] if lines else "(nothing logged)"

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
    speed: float = 1.0  # of the simulated homes: at 1 their clock is the wall clock, the one clock of the demo

    def run(self, stopping: threading.Event) -> None:
        data = self.settings.data_dir.resolve()
        broker = Mosquitto(data / "mosquitto", broker_port(self.settings), authenticated=True)
        accounts = new_service_passwords(broker.data_dir)
        upgrade(self.settings.sqlalchemy_url, self.settings.charts_sqlalchemy_url)
        engine = make_engine(self.settings.sqlalchemy_url)
        sessions = make_sessionmaker(engine)
        demo_password = None
        passwords_file = password_file_path(data)
        granted: dict[str, tuple[str, str]] = {}
        with sessions.begin() as session:
            if self.registry is not None:
                import_registry(session, self.registry)
                if self.simulate is None:  # simulated devices publish through the simulator's account
                    granted = grant_missing_passwords(session)
                    if granted:
                        write_password_file(passwords_file, granted)
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
            (data / "detector" / "state.pickle").unlink(missing_ok=True)
            if self.speed > 1:
                # Accelerated simulated time restarts at the wall clock and runs ahead of it.
                env["CAREBED_GATEWAY_MAX_FUTURE_SKEW_S"] = "null"
                env["CAREBED_GATEWAY_DEVICE_RATE_PER_S"] = "null"  # a simulated minute lasts under a second
        logs = data / "logs"
        env["CAREBED_LOG_DIR"] = str(logs)  # {service}.log, rotated; a child's .out file gets only what a crash prints
        services = [(name, list(args)) for name, args in SERVICES.items()]
        if self.simulate is not None:
            services.append(("simulator", ["simulate", *self.simulate]))
        children = []
        for name, args in services:
            account = service_account(name)
            child_env = {**env, "CAREBED_MQTT_USERNAME": account, "CAREBED_MQTT_PASSWORD": accounts[account]}
            if name in OWN_METRICS_PORT:
                child_env["CAREBED_METRICS_PORT"] = str(free_port())
            children.append(Child(name, args, logs / f"{name}.out", child_env))
        try:
            for child in children:
                child.start()
            self._wait_until_serving(children[0])
            self._announce(broker.port, demo_password, logs, children)
            if granted:
                self.console.print(f"  {len(granted)} new device passwords written to {passwords_file} (owner-only)")
            if demo_password is None:
                self._first_user_hint(sessions)
            self._supervise(broker, children, sessions, stopping)
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

    def _wait_until_serving(self, alerting: Child) -> None:
        """The console answers, or one line on why not: a configuration error stops here, not in a restart loop."""
        try:
            wait_for_port(self.settings.http_port, START_TIMEOUT_S, alerting.process)
        except RuntimeError:
            assert alerting.process is not None
            failed = ConfigurationError if alerting.process.returncode == CONFIG_ERROR_EXIT else StartupError
            raise failed(f"{alerting.name} did not start: {alerting.last_words()} (log: {alerting.log_path})") from None
        except TimeoutError as exc:
            raise StartupError(f"{alerting.name}: {exc} (log: {alerting.log_path})") from None

    def _first_user_hint(self, sessions: sessionmaker[Session]) -> None:
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return
        self.console.print(
            "  no console user yet: create the first with "
            f"[bold]carebed admin create NAME --role admin --data-dir {self.settings.data_dir}[/]"
        )

    def _supervise(
        self, broker: Mosquitto, children: list[Child], sessions: sessionmaker[Session], stopping: threading.Event
    ) -> None:
        shown: set[int] = set()
        while not stopping.wait(1.0):
            self._restart_broker_if_dead(broker)
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None or (child.name == "simulator" and code == 0):
                    continue
                if code == CONFIG_ERROR_EXIT:  # restarting cannot mend a configuration error
                    raise ConfigurationError(f"{child.name} stopped: {child.last_words()} (log: {child.log_path})")
                self.console.print(f"[red]{child.name} exited with {code}; restarting[/] (log: {child.log_path})")
                time.sleep(RESTART_BACKOFF_S)
                child.start()
            self._show_new_messages(sessions, shown)

    def _restart_broker_if_dead(self, broker: Mosquitto) -> None:
        """Like any other child, on the same port: the services and the simulator reconnect by themselves."""
        code = broker.exit_code()
        if code is None:
            return
        log = broker.data_dir / "mosquitto.log"
        self.console.print(f"[red]mosquitto exited with {code}; restarting[/] (log: {log})")
        time.sleep(RESTART_BACKOFF_S)
        try:
            broker.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.console.print(f"[red]mosquitto did not start again: {exc}[/]")
            return
        self.console.print(f"[green]mosquitto is back on 127.0.0.1:{broker.port}[/]")

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
