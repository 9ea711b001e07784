"""The `carebed` command: run the stack or one service, simulate homes, manage the registry and users."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click
import yaml
from pydantic import SecretStr
from sqlalchemy.orm import Session

from carebed.schemas import DeviceKind
from carebed.settings import Settings, get_settings
from simulators.formats import Format


def _settings(**overrides: object) -> Settings:
    base = get_settings()
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


@click.group()
@click.version_option(package_name="carebed")
def main() -> None:
    """carebed: emergency monitoring and alerting for elders who live alone."""


@main.command()
@click.option("--demo", is_flag=True, help="Also simulate homes and inject an SOS within the first minute.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port of the console and REST API.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("var"), show_default=True)
@click.option("--registry", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Registry file to load.")
@click.option("--homes", type=int, default=5, show_default=True, help="Simulated homes (with --demo).")
@click.option(
    "--speed", type=float, default=60.0, show_default=True, help="Simulated seconds per second (with --demo)."
)
def up(demo: bool, port: int, data_dir: Path, registry: Path | None, homes: int, speed: float) -> None:
    """Run the broker, gateway, detector and alerting with its console (and, with --demo, simulated homes)."""
    from carebed.registry import parse_file
    from carebed.stack import Stack
    from simulators.homes import build_registry

    settings = _settings(http_port=port, data_dir=data_dir)
    registry_file = parse_file(registry) if registry else None
    simulate = None
    if demo:
        registry_file = registry_file or build_registry(homes, seed=1)
        simulate = ["--homes", str(homes), "--speed", str(speed), "--scenario", "sos", "--incident-after", "20"]
    Stack(settings, registry_file, simulate).run(_stop_on_signals())


@main.command()
@click.option(
    "--lane",
    "lanes",
    type=click.Choice(["telemetry", "events"]),
    multiple=True,
    help="Run only this lane (repeatable); default: both. Under load, run each lane as a process of its own.",
)
def gateway(lanes: tuple[str, ...]) -> None:
    """Run the gateway (settings from CAREBED_* variables)."""
    from gateway.service import Lane, run

    run(get_settings(), [Lane(lane) for lane in lanes] or list(Lane))


@main.command()
def detector() -> None:
    """Run the detector (settings from CAREBED_* variables)."""
    from detector.service import run

    run(get_settings())


@main.command()
def alarms() -> None:
    """Run the detector's alarm lane, which raises SOS and falls (settings from CAREBED_* variables)."""
    from detector.alarm_service import run

    run(get_settings())


@main.command()
def alerting() -> None:
    """Run the alerting service with its console and REST API (settings from CAREBED_* variables)."""
    from alerting.app import run

    run(get_settings())


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
    logs.configure("simulator", settings.log_level)
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

    plan = EvalPlan(homes=homes or 20, days=days or 30, seed=seed, tz=get_settings().tz)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating and detecting", total=plan.homes)
        report = evaluate(
            plan,
            lambda done: progress.update(task, completed=done),
            lambda timeline: write_simulation(timeline, ground_truth, readings),
            pattern_config(get_settings()),
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

    settings = get_settings()
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
    timeline = home.timeline(get_settings().tz)
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
    settings = get_settings()
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

    settings = get_settings()
    _report(run_replay(path, output, rule_config(settings), pattern_config(settings)))


@main.command("score-series")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
def score_series(path: TextIO, output: TextIO) -> None:
    """Score a `timestamp,value` CSV with the learned time-of-day inactivity model; writes `timestamp,value,score`."""
    import csv

    from detector.service import pattern_config
    from evaluation.replay import score_series as run_scoring

    _report(run_scoring(csv.reader(path), output, pattern_config(get_settings())))


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
def registry_load(path: Path) -> None:
    """Validate a registry file (YAML, or CSV by its .csv name) whole, then write it in one transaction."""
    from carebed.db import make_engine, make_sessionmaker, migrate
    from carebed.registry import import_registry
    from carebed.registry_files import RegistryFileError, parse_registry

    try:
        registry_file = parse_registry(path.read_bytes(), path.name)
    except RegistryFileError as exc:
        click.echo(f"{path}: nothing imported, the file has errors:", err=True)
        for error in exc.errors:
            click.echo(f"  row {error.row}, {error.field or 'file'}: {error.message}", err=True)
        sys.exit(1)
    settings = get_settings()
    migrate(settings.sqlalchemy_url)
    with make_sessionmaker(make_engine(settings.sqlalchemy_url)).begin() as session:
        count = import_registry(session, registry_file)
    click.echo(f"{count} homes imported from {path}")


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
def admin_create(username: str, role: str, areas: tuple[str, ...], password: str) -> None:
    """Create a console user, or set the password, role and areas of an existing one."""
    from alerting.auth import Role, create_user
    from carebed.db import make_engine, make_sessionmaker, migrate

    settings = get_settings()
    migrate(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(make_engine(settings.sqlalchemy_url)).begin() as session:
            create_user(session, username, password, Role(role), areas)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"user {username!r} ({role}) saved")


@main.group()
def devices() -> None:
    """Devices and their broker credentials (kept in step with the broker's password file and ACL)."""


@main.group()
def broker() -> None:
    """The broker's password file and ACL."""


@broker.command("sync")
def broker_sync() -> None:
    """Write the broker's password file and ACL from the registry and CAREBED_BROKER_PASSWORDS, then reload it."""
    passwords = {user: pw.get_secret_value() for user, pw in get_settings().broker_passwords.items()}
    _provision(lambda session: None, f"broker accounts written ({len(passwords)} service passwords set)", passwords)


def _provision(
    change: Callable[[Session], str | None], message: str, service_passwords: dict[str, str] | None = None
) -> None:
    from carebed.db import make_engine, make_sessionmaker, migrate
    from carebed.provisioning import ProvisioningError, reload_broker, sync_broker_auth

    settings = get_settings()
    migrate(settings.sqlalchemy_url)
    folder = settings.data_dir / "mosquitto"
    try:
        with make_sessionmaker(make_engine(settings.sqlalchemy_url)).begin() as session:
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
def devices_add(device_id: str, home_id: str, kind: str, model: str | None) -> None:
    """Register a device and give it a broker password; it may publish only under its own id."""
    from carebed.provisioning import add_device

    _provision(lambda s: add_device(s, device_id, home_id, DeviceKind(kind), model), f"device {device_id} added")


@devices.command("rotate")
@click.argument("device_id")
def devices_rotate(device_id: str) -> None:
    """Give a device a new broker password; the old one stops working."""
    from carebed.provisioning import rotate_device

    _provision(lambda s: rotate_device(s, device_id), f"device {device_id} has a new password")


@devices.command("remove")
@click.argument("device_id")
def devices_remove(device_id: str) -> None:
    """Remove a device from the registry and the broker's password file."""
    from carebed.provisioning import remove_device

    def change(session: Session) -> None:
        remove_device(session, device_id)

    _provision(change, f"device {device_id} removed")


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
            from carebed.postgres import create_database, postgres_server

            database_url = create_database(stack.enter_context(postgres_server()), "carebed")
        folder = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carebed-bench-")))
        result = run_with_progress(Bench(homes, speed, duration, folder, profile, database_url, warm))
    click.echo(json.dumps(result, indent=None if as_json else 2))
