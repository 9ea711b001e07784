"""The `carebed` command: run the stack or one service, simulate homes, manage the registry and users."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click
import yaml
from pydantic import SecretStr
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

from carebed.schemas import DeviceKind
from carebed.settings import CONFIG_ERROR_EXIT, ConfigurationError, Settings, load_settings
from simulators.formats import Format

if TYPE_CHECKING:
    from carebed.registry import RegistryFile


class ConfigError(click.ClickException):
    """A configuration error: one line on what is wrong and how to fix it; `carebed up` does not restart on it."""

    exit_code = CONFIG_ERROR_EXIT


def _settings(**overrides: object) -> Settings:
    """The settings (with the command's options and --data-dir over the environment), or one clear line."""
    from carebed.provisioning import SERVICE_ACL, account_variable

    context = click.get_current_context(silent=True)
    data_dir = context.meta.get(_DATA_DIR) if context is not None else None
    given = {k: v for k, v in {"data_dir": data_dir, **overrides}.items() if v is not None}
    try:
        return load_settings(os.environ, [account_variable(a) for a in SERVICE_ACL], **given)
    except ConfigurationError as exc:
        raise ConfigError(str(exc)) from None


_DATA_DIR = "carebed.data_dir"


def _remember_data_dir(context: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        context.meta[_DATA_DIR] = value


def data_dir_option(command: Callable[..., None]) -> Callable[..., None]:
    """`--data-dir` on a command that reads or writes the data folder (its database, broker files)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_data_dir,
        help="Folder of the database and broker files [default: CAREBED_DATA_DIR, or ./var].",
    )(command)


def _sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on a database whose schema is current: other commands than `db upgrade` and `up` never migrate."""
    from carebed.db import SchemaBehind, make_engine, make_sessionmaker, require_current

    try:
        require_current(settings.sqlalchemy_url)
    except SchemaBehind as exc:
        raise ConfigError(
            f"{exc}: run `carebed db upgrade` (with the same --data-dir or CAREBED_DATABASE_URL) first"
        ) from None
    return make_sessionmaker(make_engine(settings.sqlalchemy_url))


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program holds, before anything starts (it would answer in our place)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigError(
                f"port {port} on {host} is in use by another program: stop it, or choose another port"
                " with --port (or CAREBED_HTTP_PORT)"
            ) from None


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


@click.group()
@click.version_option(package_name="carebed")
def main() -> None:
    """carebed: emergency monitoring and alerting for elders who live alone."""
    from carebed.service import private_files

    private_files()


@main.command()
@click.option("--demo", is_flag=True, help="Also simulate homes and inject an SOS within the first minute.")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port of the console and REST API [default: CAREBED_HTTP_PORT, 8000]."
)
@data_dir_option
@click.option("--registry", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Registry file to load.")
@click.option("--homes", type=int, default=5, show_default=True, help="Simulated homes (with --demo).")
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Simulated seconds per second (with --demo). At 1 the homes live in real time and every time shown"
    " (console, SMS, audit, a real device you add) is the wall clock's; above 1 device times run ahead of it.",
)
def up(demo: bool, port: int | None, registry: Path | None, homes: int, speed: float) -> None:
    """Run the broker, gateway, detector and alerting with its console (and, with --demo, simulated homes)."""
    from carebed.provisioning import ProvisioningError
    from carebed_app.stack import Stack, StartupError
    from simulators.homes import build_registry

    settings = _settings(http_port=port)
    check_port_free(settings.http_host, settings.http_port)
    registry_file = _read_registry(registry) if registry else None
    simulate = None
    if demo:
        registry_file = registry_file or build_registry(homes, seed=1)
        simulate = ["--homes", str(homes), "--speed", str(speed), "--scenario", "sos", "--incident-after", "20"]
    try:
        Stack(settings, registry_file, simulate, speed=speed).run(_stop_on_signals())
    except ConfigurationError as exc:
        raise ConfigError(str(exc)) from None
    except (StartupError, ProvisioningError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--lane",
    "lanes",
    type=click.Choice(["telemetry", "events"]),
    multiple=True,
    help="Run only this lane (repeatable); default: both. Under load, run each lane as a process of its own.",
)
@data_dir_option
def gateway(lanes: tuple[str, ...]) -> None:
    """Run the gateway (settings from CAREBED_* variables)."""
    from gateway.service import Lane, run

    run(_settings(), [Lane(lane) for lane in lanes] or list(Lane))


@main.command()
@data_dir_option
def detector() -> None:
    """Run the detector (settings from CAREBED_* variables)."""
    from detector.service import run

    run(_settings())


@main.command()
@data_dir_option
def alarms() -> None:
    """Run the detector's alarm lane, which raises SOS and falls (settings from CAREBED_* variables)."""
    from detector.alarm_service import run

    run(_settings())


@main.command()
@data_dir_option
def alerting() -> None:
    """Run the alerting service with its console and REST API (settings from CAREBED_* variables)."""
    from alerting.app import run
    from carebed.db import SchemaBehind, require_upgraded

    settings = _settings()
    try:
        require_upgraded(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    except SchemaBehind as exc:
        raise ConfigError(f"{exc}: run `carebed db upgrade` (with the same settings) first") from None
    check_port_free(settings.http_host, settings.http_port)
    run(settings)


@main.command()
@click.option("--homes", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--speed", type=click.FloatRange(min=0.01), default=60.0, show_default=True, help="Simulated seconds per second."
)
@click.option(
    "--scenario", type=click.Choice(["normal", "sos", "fall", "gas", "leak"]), default="normal", show_default=True
)
@click.option("--incident-after", type=float, default=15.0, show_default=True, help="Wall seconds before the incident.")
@click.option("--duration", type=float, help="Stop after this many wall seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="native", show_default=True)
@click.option("--broker", help="HOST:PORT of the broker (default: CAREBED_MQTT_HOST and CAREBED_MQTT_PORT).")
@click.option("--username", help="Broker user (default: CAREBED_MQTT_USERNAME).")
@click.option("--password", help="Broker password (default: CAREBED_MQTT_PASSWORD; prefer the variable).")
@click.option("--tls", is_flag=True, default=None, help="Connect over TLS.")
@click.option(
    "--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CA of the broker's certificate."
)
@click.option("--cert-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Client certificate.")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Client key.")
@click.option("--ground-truth", type=click.Path(dir_okay=False, path_type=Path), help="Append injected incidents here.")
@click.option(
    "--record", type=click.Path(dir_okay=False, path_type=Path), help="Append every message sent, and the ground truth."
)
@click.option("--json", "as_json", is_flag=True, help="No live display; print a JSON summary at the end.")
def simulate(
    homes: int,
    speed: float,
    scenario: str,
    incident_after: float,
    duration: float | None,
    seed: int,
    fmt: str,
    broker: str | None,
    username: str | None,
    password: str | None,
    tls: bool | None,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    ground_truth: Path | None,
    record: Path | None,
    as_json: bool,
) -> None:
    """Publish realistic device payloads for simulated homes, and inject an incident into the first home.

    Load the matching registry first: `carebed registry generate --homes N --format F > homes.yaml`.
    """
    from carebed import logs
    from simulators.homes import Incident
    from simulators.progress import show_progress
    from simulators.runner import Simulation, SimulationPlan

    host, _, port = broker.rpartition(":") if broker else ("", "", "")
    settings = _settings(
        mqtt_host=host or None,
        mqtt_port=int(port) if port else None,
        mqtt_username=username,
        mqtt_password=SecretStr(password) if password else None,
        mqtt_tls=True if (tls or ca_file) else None,
        mqtt_ca_file=ca_file,
        mqtt_cert_file=cert_file,
        mqtt_key_file=key_file,
    )
    logs.configure("simulator", settings)
    plan = SimulationPlan(
        homes=homes,
        speed=speed,
        seed=seed,
        incident=None if scenario == "normal" else Incident(scenario),
        incident_after_s=incident_after,
        duration_s=duration,
        fmt=Format(fmt),
        ground_truth=ground_truth,
        record=record,
    )
    simulation = Simulation(settings, plan)
    stopping = _stop_on_signals()
    worker = threading.Thread(target=simulation.run, args=(stopping,), name="simulation")
    worker.start()
    if as_json:
        simulation.progress.done.wait()
    else:
        show_progress(simulation.progress, plan)
    worker.join()
    if simulation.error is not None:
        raise click.ClickException(f"{type(simulation.error).__name__}: {simulation.error}")
    if as_json:
        summary = {"published": simulation.progress.total, **simulation.progress.published}
        click.echo(json.dumps({**summary, "incidents": simulation.progress.incidents}))


@main.command("eval")
@click.option(
    "--homes", type=click.IntRange(min=1), help="Homes (per seed and profile)  [default: 20; 15 with --profile]"
)
@click.option("--days", type=click.IntRange(min=2), help="Days per home  [default: 30; 45 with --profile]")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="Score a population of deployments (repeatable, or `all`); see docs/detection.md.",
)
@click.option(
    "--seeds",
    help="With --profile: `tuning`, `report` (the held-out seeds) or a comma-separated list  [default: --seed]",
)
@click.option(
    "--real",
    "real",
    multiple=True,
    help="Real homes instead: kasteren:DIR or placelab:DIR (repeatable), cut at random moments as collapses.",
)
@click.option("--truncations", type=click.IntRange(min=1), default=12, show_default=True, help="Cuts per real home.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--ground-truth", type=click.File("w", encoding="utf-8"), help="Write the incidents (JSON lines) here.")
@click.option(
    "--readings", type=click.File("w", encoding="utf-8"), help="Write the readings and away feedback here, for replay."
)
def eval_(
    homes: int | None,
    days: int | None,
    seed: int,
    profiles: tuple[str, ...],
    seeds: str | None,
    real: tuple[str, ...],
    truncations: int,
    as_json: bool,
    ground_truth: TextIO | None,
    readings: TextIO | None,
) -> None:
    """Simulate homes in memory, run the detector in event time and score it against the ground truth."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    if real:
        _eval_real(real, truncations, seed, as_json)
        return
    if profiles:
        _eval_matrix(profiles, seeds, seed, homes or 15, days or 45, as_json, ground_truth or readings)
        return
    from detector.service import pattern_config
    from evaluation.core import EvalPlan, evaluate, report_tables
    from evaluation.replay import write_simulation

    plan = EvalPlan(homes=homes or 20, days=days or 30, seed=seed, tz=_settings().tz)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating and detecting", total=plan.homes)
        report = evaluate(
            plan,
            lambda done: progress.update(task, completed=done),
            lambda timeline: write_simulation(timeline, ground_truth, readings),
            pattern_config(_settings()),
        )
    if as_json:
        click.echo(json.dumps(report))
    else:
        console = Console()
        for table in report_tables(report):
            console.print(table)


def _eval_real(specs: tuple[str, ...], truncations: int, seed: int, as_json: bool) -> None:
    import json

    from rich.console import Console

    from detector.service import pattern_config, rule_config
    from evaluation.real import load, real_table, run_real

    settings = _settings()
    try:
        homes = [load(spec) for spec in specs]
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--real") from None
    report = run_real(homes, settings.tz, truncations, seed, rule_config(settings), pattern_config(settings))
    if as_json:
        click.echo(json.dumps(report))
    else:
        Console(width=max(160, Console().width)).print(real_table(report))


@main.command("convert-dataset")
@click.argument("spec")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="Readings (JSON lines).")
def convert_dataset(spec: str, output: TextIO) -> None:
    """Turn a public dataset (kasteren:DIR or placelab:DIR) into `carebed replay` input; see docs/detection.md."""
    from evaluation.populations import HomeCase
    from evaluation.real import kit_of, load
    from evaluation.replay import write_case

    try:
        home = load(spec)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="SPEC") from None
    timeline = home.timeline(_settings().tz)
    write_case(HomeCase(timeline, kit_of(timeline)), output)
    skipped = ", ".join(f"{n} {reason}" for reason, n in home.skipped.items())
    click.echo(
        f"{home.home_id}: {timeline.days} days, {len(home.water)} water and {len(home.gas)} gas uses,"
        f" {len(timeline.away)} declared absences" + (f"; skipped {skipped}" if skipped else ""),
        err=True,
    )


def _eval_matrix(
    profiles: tuple[str, ...], seeds: str | None, seed: int, homes: int, days: int, as_json: bool, files: TextIO | None
) -> None:
    import json

    from rich.console import Console
    from rich.progress import Progress

    from detector.service import pattern_config, rule_config
    from evaluation.matrix import SEED_SETS, MatrixPlan, run_matrix
    from evaluation.matrix import matrix_tables as tables
    from evaluation.populations import POPULATIONS

    if files is not None:
        raise click.UsageError("--ground-truth and --readings write today's profile only: leave out --profile")
    names = tuple(POPULATIONS) if "all" in profiles else profiles
    unknown = [p for p in names if p not in POPULATIONS]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}; choose from all, {', '.join(POPULATIONS)}", param_hint="--profile"
        )
    try:
        chosen = SEED_SETS[seeds] if seeds in SEED_SETS else tuple(int(s) for s in (seeds or str(seed)).split(","))
    except ValueError:
        raise click.BadParameter("tuning, report or integers separated by commas", param_hint="--seeds") from None
    settings = _settings()
    plan = MatrixPlan(profiles=names, seeds=chosen, homes=homes, days=days, tz=settings.tz)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating and detecting", total=len(names) * len(chosen) * homes)
        report = run_matrix(plan, rule_config(settings), pattern_config(settings), lambda: progress.advance(task))
    if as_json:
        click.echo(json.dumps(report))
    else:
        console = Console(width=max(160, Console().width))
        for table in tables(report):
            console.print(table)


@main.command()
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="Findings (JSON lines).")
def replay(path: TextIO, output: TextIO) -> None:
    """Run the detector over normalised readings (JSON lines, see docs/detection.md) and write its findings."""
    from detector.service import pattern_config, rule_config
    from evaluation.replay import replay as run_replay

    settings = _settings()
    _report(run_replay(path, output, rule_config(settings), pattern_config(settings)))


@main.command("score-series")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
def score_series(path: TextIO, output: TextIO) -> None:
    """Score a `timestamp,value` CSV with the learned time-of-day inactivity model; writes `timestamp,value,score`."""
    import csv

    from detector.service import pattern_config
    from evaluation.replay import score_series as run_scoring

    _report(run_scoring(csv.reader(path), output, pattern_config(_settings())))


def _report(counts: Counter[str]) -> None:
    """Totals and the first rejected lines, on stderr so that stdout stays machine-readable."""
    totals = {k: v for k, v in counts.items() if not k.startswith("line ")}
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(totals.items())) or "nothing read", err=True)
    for reason in [k for k in counts if k.startswith("line ")][:20]:
        click.echo(f"skipped {reason}", err=True)


@main.group()
def registry() -> None:
    """Homes, residents, devices and responders."""


@registry.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--passwords",
    "passwords_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the broker passwords of devices new to the registry to this file (owner-only; it must not exist)"
    " [default: DATA_DIR/device-passwords-TIME.csv].",
)
@data_dir_option
def registry_load(path: Path, passwords_file: Path | None) -> None:
    """Validate a registry file (YAML, or CSV by its .csv name) whole, then write it in one transaction.

    Each device that logs in itself (not `via` a hub or ChirpStack) and has no broker password yet gets
    one, written once to an owner-only CSV file; the broker accepts it at once.
    """
    from carebed.provisioning import grant_missing_passwords, password_file_path, write_password_file
    from carebed.registry import import_registry

    registry_file = _read_registry(path)
    settings = _settings()
    sessions = _sessions(settings)
    target = passwords_file or password_file_path(settings.data_dir)
    granted: dict[str, tuple[str, str]] = {}

    def load(session: Session) -> None:
        nonlocal granted
        count = import_registry(session, registry_file)
        granted = grant_missing_passwords(session)
        session.flush()
        if granted:
            write_password_file(target, granted)
        click.echo(f"{count} homes imported from {path}")

    _provision(load, "broker accounts updated", sessions=sessions)
    if granted:
        click.echo(
            f"{len(granted)} new device passwords written to {target} (owner-only, shown nowhere else):"
            " store each on its device, then delete the file"
        )


def _read_registry(path: Path) -> RegistryFile:
    """The registry file validated whole, or every error in it by row and field, and exit 1."""
    from carebed.registry_files import RegistryFileError, parse_registry

    try:
        return parse_registry(path.read_bytes(), path.name)
    except RegistryFileError as exc:
        click.echo(f"{path}: nothing imported, the file has errors:", err=True)
        for error in exc.errors:
            click.echo(f"  row {error.row}, {error.field or 'file'}: {error.message}", err=True)
        sys.exit(1)


@registry.command("export")
@click.option(
    "--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="YAML file [default: stdout]."
)
@data_dir_option
def registry_export(output: TextIO) -> None:
    """Write the whole registry as YAML that `carebed registry load` reads back (no passwords in it)."""
    from carebed.registry import export_registry

    with _sessions(_settings())() as session:
        data = export_registry(session).model_dump(mode="json", exclude_defaults=True)
    output.write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@registry.command("generate")
@click.option("--homes", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="native", show_default=True)
def registry_generate(homes: int, seed: int, fmt: str) -> None:
    """Print the registry of the simulated homes (the ones `carebed simulate` drives with the same options)."""
    from simulators.formats import registry_for
    from simulators.homes import build_registry

    registry_file = registry_for(build_registry(homes, seed), Format(fmt))
    data = registry_file.model_dump(mode="json", exclude_defaults=True)
    click.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), nl=False)


@main.group()
def admin() -> None:
    """Console users."""


@admin.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["operator", "supervisor", "admin"]), default="admin", show_default=True)
@click.option("--area", "areas", multiple=True, help="A street or community an operator watches (repeatable).")
@click.password_option(help="Prompted for when not given; at least 10 characters.")
@data_dir_option
def admin_create(username: str, role: str, areas: tuple[str, ...], password: str) -> None:
    """Create a console user, or set the password, role and areas of an existing one."""
    from alerting.auth import Role, create_user

    sessions = _sessions(_settings())
    try:
        with sessions.begin() as session:
            create_user(session, username, password, Role(role), areas)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"user {username!r} ({role}) saved")


@admin.command("list")
@data_dir_option
def admin_list() -> None:
    """Console users: name, role, areas, created."""
    from alerting.models import User

    with _sessions(_settings())() as session:
        users = session.scalars(select(User).order_by(User.username)).all()
    if not users:
        click.echo("no console users: create one with `carebed admin create NAME --role admin`", err=True)
    for user in users:
        areas = ",".join(user.areas) or "-"
        click.echo(f"{user.username}\t{user.role}\t{areas}\t{user.created_at:%Y-%m-%d %H:%M}Z")


@main.group()
def devices() -> None:
    """Devices and their broker credentials (kept in step with the broker's password file and ACL)."""


@main.group()
def broker() -> None:
    """The broker's password file and ACL."""


@broker.command("sync")
@data_dir_option
def broker_sync() -> None:
    """Write the broker's password file and ACL from the registry and CAREBED_BROKER_PASSWORDS, then reload it."""
    passwords = {user: pw.get_secret_value() for user, pw in _settings().broker_passwords.items()}
    _provision(lambda session: None, f"broker accounts written ({len(passwords)} service passwords set)", passwords)


def _provision(
    change: Callable[[Session], str | None],
    message: str,
    service_passwords: dict[str, str] | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> None:
    from carebed.provisioning import ProvisioningError, reload_broker, sync_broker_auth

    settings = _settings()
    folder = settings.data_dir / "mosquitto"
    try:
        with (sessions or _sessions(settings)).begin() as session:
            password = change(session)
            session.flush()
            sync_broker_auth(session, folder, service_passwords)
    except ProvisioningError as exc:
        raise click.ClickException(str(exc)) from None
    reloaded = reload_broker(folder / "mosquitto.pid")
    click.echo(message + ("" if reloaded else " (no running broker found to reload)"))
    if password is not None:
        click.echo(f"MQTT password (shown once; store it on the device): {password}")


@devices.command("add")
@click.argument("device_id")
@click.option("--home", "home_id", required=True, help="Home the device belongs to.")
@click.option("--kind", type=click.Choice([k.value for k in DeviceKind]), required=True)
@click.option("--model", help="Vendor model, for the console.")
@click.option(
    "--via",
    metavar="HUB",
    help="The zigbee2mqtt hub (a registered device of kind hub) the device speaks through, or 'chirpstack'"
    " for a LoRaWAN device; such a device gets no password of its own (docs/integrators.md).",
)
@data_dir_option
def devices_add(device_id: str, home_id: str, kind: str, model: str | None, via: str | None) -> None:
    """Register a device and give it a broker password; it may publish only under its own id."""
    from carebed.provisioning import add_device

    suffix = f" (speaks through {via}; no password of its own)" if via else ""
    _provision(
        lambda s: add_device(s, device_id, home_id, DeviceKind(kind), model, via), f"device {device_id} added{suffix}"
    )


@devices.command("list")
@click.option("--home", "home_id", help="Only this home's devices.")
@data_dir_option
def devices_list(home_id: str | None) -> None:
    """Devices: id, home, kind, the hub or network server it speaks through, and whether it has a password."""
    from carebed.registry import Device

    query = select(Device).order_by(Device.home_id, Device.id)
    if home_id is not None:
        query = query.where(Device.home_id == home_id)
    with _sessions(_settings())() as session:
        rows = session.scalars(query).all()
    if not rows:
        click.echo("no devices" + (f" in home {home_id}" if home_id else ""), err=True)
    for device in rows:
        login = "password" if device.credential_hash else ("-" if device.via else "no password")
        click.echo(f"{device.id}\t{device.home_id}\t{device.kind}\t{device.via or '-'}\t{login}")


@devices.command("rotate")
@click.argument("device_id")
@data_dir_option
def devices_rotate(device_id: str) -> None:
    """Give a device a new broker password; the old one stops working."""
    from carebed.provisioning import rotate_device

    _provision(lambda s: rotate_device(s, device_id), f"device {device_id} has a new password")


@devices.command("remove")
@click.argument("device_id")
@data_dir_option
def devices_remove(device_id: str) -> None:
    """Remove a device from the registry and the broker's password file."""
    from carebed.provisioning import remove_device

    def change(session: Session) -> None:
        remove_device(session, device_id)

    _provision(change, f"device {device_id} removed")


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@data_dir_option
def db_upgrade() -> None:
    """Bring the database (and the chart database) to this release's schema; nothing else migrates but `up`."""
    from carebed.db import upgrade

    settings = _settings()
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    click.echo(f"database schema is current ({make_url(settings.sqlalchemy_url).render_as_string()})")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def backup(file: Path) -> None:
    """Write the databases, the broker's accounts and the detector's checkpoints to FILE (mode 0600).

    Runs beside the live services: the databases are copied as one consistent snapshot.
    docs/operations.md says what is in it and how to restore it.
    """
    from carebed_app.backup import BackupError, summary
    from carebed_app.backup import backup as write_backup

    try:
        manifest = write_backup(_settings(), file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written to {file} (mode 0600): {summary(manifest)}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
def restore(file: Path) -> None:
    """Restore a backup into an empty data folder and empty databases (it never overwrites).

    Then `carebed db upgrade` if the backup comes from an older carebed, and start the services.
    """
    from carebed_app.backup import BackupError, summary
    from carebed_app.backup import restore as read_backup

    try:
        manifest = read_backup(_settings(), file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored from {file} (carebed {manifest['carebed']}, {manifest['created_at']}): {summary(manifest)}")
    click.echo("next: `carebed db upgrade`, then start the services")


@main.command("settings-doc")
@click.option(
    "--write",
    "document",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rewrite the table between the settings markers of this file (docs/operations.md) instead of printing it.",
)
def settings_doc(document: Path | None) -> None:
    """Print every setting as a Markdown table, from the settings model (docs/operations.md holds it)."""
    from carebed.settings_doc import render, table

    if document is None:
        click.echo(table(), nl=False)
        return
    try:
        document.write_text(render(document.read_text(encoding="utf-8")), encoding="utf-8")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{document}: settings table written")


@main.command()
def asyncapi() -> None:
    """Print the MQTT API as an AsyncAPI 2.6 document (docs/asyncapi.yaml is this output)."""
    from carebed.asyncapi import document

    click.echo(yaml.safe_dump(document(), allow_unicode=True, sort_keys=False), nl=False)


@main.command()
@click.option("--homes", type=click.IntRange(min=3), default=1000, show_default=True)
@click.option(
    "--speed", type=click.FloatRange(min=1), default=60.0, show_default=True, help="Simulated seconds per second."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds of load per phase. SOS presses come half a second apart: 125 s holds all 200.",
)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Keep the run's files here.")
@click.option(
    "--profile",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write py-spy flame graphs (SVG) of the gateway and detector under load here.",
)
@click.option(
    "--database-url",
    help="An empty database to use (SQLAlchemy URL); default: SQLite in the bench folder.",
)
@click.option(
    "--postgres",
    is_flag=True,
    help="Run on a private PostgreSQL server with its default settings, started for the run "
    "(needs apt-get install postgresql and pip install -e '.[postgres]').",
)
@click.option(
    "--warm",
    is_flag=True,
    help="Start the detector from a checkpoint in which every device has reported once, as a detector "
    "that has been running restarts; without it the detector starts empty and builds every home's state under load.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures.")
def bench(
    homes: int,
    speed: float,
    duration: float,
    data_dir: Path | None,
    profile: Path | None,
    database_url: str | None,
    postgres: bool,
    warm: bool,
    as_json: bool,
) -> None:
    """Measure throughput, SOS latency and memory of the pipeline on this machine (loopback only)."""
    import tempfile
    from contextlib import ExitStack

    from benchmarks.pipeline import Bench, run_with_progress

    if postgres and database_url:
        raise click.UsageError("--postgres starts its own server; leave out --database-url")
    with ExitStack() as stack:
        if postgres:
            from carebed_app.postgres import create_database, postgres_server

            database_url = create_database(stack.enter_context(postgres_server()), "carebed")
        folder = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carebed-bench-")))
        result = run_with_progress(Bench(homes, speed, duration, folder, profile, database_url, warm))
    click.echo(json.dumps(result, indent=None if as_json else 2))
