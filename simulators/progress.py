"""A live progress display for `carebed simulate`: what was sent, in simulated time, at what rate."""

from __future__ import annotations

import time

from rich.live import Live
from rich.table import Table

from simulators.runner import Progress, SimulationPlan


def _table(progress: Progress, plan: SimulationPlan, started: float) -> Table:
    elapsed = max(time.monotonic() - started, 1e-9)
    table = Table(
        title=f"carebed simulate · {plan.homes} homes · {plan.fmt.value} · x{plan.speed:g}", show_header=False
    )
    table.add_row("simulated time", progress.sim_time.isoformat(timespec="minutes") if progress.sim_time else "—")
    for channel, count in sorted(progress.published.items()):
        table.add_row(f"{channel} messages", f"{count:,}")
    table.add_row("sent", f"{progress.total:,} ({progress.total / elapsed:,.0f}/s)")
    table.add_row("incidents injected", str(progress.incidents))
    duration = f" of {plan.duration_s:.0f}" if plan.duration_s else ""
    table.add_row("wall time", f"{elapsed:.0f}{duration} s")
    return table


def show_progress(progress: Progress, plan: SimulationPlan) -> None:
    """Refresh until the simulation says it is done (its thread sets `progress.done`)."""
    started = time.monotonic()
    with Live(_table(progress, plan, started), refresh_per_second=4, transient=False) as live:
        while not progress.done.wait(0.5):
            live.update(_table(progress, plan, started))
        live.update(_table(progress, plan, started))
