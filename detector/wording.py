"""What people read in findings: durations in the units a person would use."""

from __future__ import annotations


def duration(minutes: float) -> str:
    """'45 min', '2 h 10 min', '3 days' or '2 days 5 h': never '483210 min'."""
    total = int(minutes)
    days, rest = divmod(total, 1440)
    hours, mins = divmod(rest, 60)
    if days >= 2:
        return f"{days} days {hours} h" if hours and days < 7 else f"{days} days"
    hours += 24 * days
    if not hours:
        return f"{mins} min"
    return f"{hours} h {mins} min" if mins else f"{hours} h"
