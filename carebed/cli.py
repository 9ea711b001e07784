"""The `carebed` command: run the stack or one service, simulate homes, manage the registry and users."""

from __future__ import annotations

import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import TextIO

import click
import yaml
from pydantic import ValidationError

from carebed.settings import Settings, get_settings


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
def gateway() -> None:
    """Run the gateway (settings from CAREBED_* variables)."""
    from gateway.service import run

    run(get_settings())


@main.command()
def detector() -> None:
    """Run the detector (settings from CAREBED_* variables)."""
    from detector.service import run

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
@click.option("--ground-truth", type=click.Path(dir_okay=False, path_type=Path), help="Append injected incidents here.")
def simulate(
    homes: int,
    speed: float,
    scenario: str,
    incident_after: float,
    duration: float | None,
    seed: int,
    ground_truth: Path | None,
) -> None:
    """Publish realistic device payloads for simulated homes, and inject an incident into the first home."""
    from carebed import logs
    from simulators.homes import Incident
    from simulators.runner import Simulation, SimulationPlan

    settings = get_settings()
    logs.configure("simulator", settings.log_level)
    plan = SimulationPlan(
        homes=homes,
        speed=speed,
        seed=seed,
        incident=None if scenario == "normal" else Incident(scenario),
        incident_after_s=incident_after,
        duration_s=duration,
        ground_truth=ground_truth,
    )
    Simulation(settings, plan).run(_stop_on_signals())


@main.command("eval")
@click.option("--homes", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--days", type=click.IntRange(min=2), default=30, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--ground-truth", type=click.File("w", encoding="utf-8"), help="Write the incidents (JSON lines) here.")
@click.option(
    "--readings", type=click.File("w", encoding="utf-8"), help="Write the readings and away feedback here, for replay."
)
def eval_(
    homes: int, days: int, seed: int, as_json: bool, ground_truth: TextIO | None, readings: TextIO | None
) -> None:
    """Simulate homes in memory, run the detector in event time and score it against the ground truth."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    from detector.evaluation import EvalPlan, evaluate, report_tables
    from detector.replay import write_simulation

    plan = EvalPlan(homes=homes, days=days, seed=seed, tz=get_settings().tz)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating and detecting", total=homes)
        report = evaluate(
            plan,
            lambda done: progress.update(task, completed=done),
            lambda timeline: write_simulation(timeline, ground_truth, readings),
        )
    if as_json:
        click.echo(json.dumps(report))
    else:
        console = Console()
        for table in report_tables(report):
            console.print(table)


@main.command()
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="Findings (JSON lines).")
def replay(path: TextIO, output: TextIO) -> None:
    """Run the detector over normalised readings (JSON lines, see docs/detection.md) and write its findings."""
    from detector.replay import replay as run_replay
    from detector.service import pattern_config, rule_config

    settings = get_settings()
    _report(run_replay(path, output, rule_config(settings), pattern_config(settings)))


@main.command("score-series")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
def score_series(path: TextIO, output: TextIO) -> None:
    """Score a `timestamp,value` CSV with the learned time-of-day inactivity model; writes `timestamp,value,score`."""
    import csv

    from detector.replay import score_series as run_scoring
    from detector.service import pattern_config

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
    """Validate a registry file whole, then write it in one transaction."""
    from carebed.db import make_engine, make_sessionmaker, migrate
    from carebed.registry import import_registry, parse_file

    try:
        registry_file = parse_file(path)
    except ValidationError as exc:
        click.echo(f"{path}: nothing imported, the file has errors:\n{exc}", err=True)
        sys.exit(1)
    settings = get_settings()
    migrate(settings.sqlalchemy_url)
    with make_sessionmaker(make_engine(settings.sqlalchemy_url)).begin() as session:
        count = import_registry(session, registry_file)
    click.echo(f"{count} homes imported from {path}")


@registry.command("generate")
@click.option("--homes", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def registry_generate(homes: int, seed: int) -> None:
    """Print the registry of the simulated homes (the same ones `carebed simulate` drives)."""
    from simulators.homes import build_registry

    data = build_registry(homes, seed).model_dump(mode="json", exclude_defaults=True)
    click.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), nl=False)


@main.group()
def admin() -> None:
    """Console users."""


@admin.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["operator", "supervisor", "admin"]), default="admin", show_default=True)
@click.password_option(help="Prompted for when not given; at least 10 characters.")
def admin_create(username: str, role: str, password: str) -> None:
    """Create a console user, or set the password and role of an existing one."""
    from alerting.auth import Role, create_user
    from carebed.db import make_engine, make_sessionmaker, migrate

    settings = get_settings()
    migrate(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(make_engine(settings.sqlalchemy_url)).begin() as session:
            create_user(session, username, password, Role(role))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--password") from None
    click.echo(f"user {username!r} ({role}) saved")
