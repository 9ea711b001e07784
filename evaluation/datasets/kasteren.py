"""Pure converter of van Kasteren's house A (Ubicomp 2008) into a :class:`RealHome`.

A 26-year-old man living alone, 28 days, 14 binary sensors. Files (see docs/detection.md for
where to get them): ``kasterenSenseData.txt`` (tab-separated ``start  end  id  value`` with
times like ``25-Feb-2008 09:37:51``; the sensor names are in its header, ``[14] 'ToiletFlush'``)
and, optionally, ``kasterenActData.txt`` (``start  end  activity-id``, 1 = leave house).

Mapping: each toilet flush is 6 L of water. Nothing else in this house measures water or gas
(the dishwasher and washing machine sensors are reed switches on their doors; the microwave is
electric); doors, cupboards and the fridge have no carebed device and are left out, but they
still mark the span the data covers. Annotated "leave house" periods are kept as absences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from evaluation.datasets.homes import ONE_FLUSH_L, RealHome

FORMAT = "%d-%b-%Y %H:%M:%S"
_NAME = re.compile(r"\[\s*(\d+)\]\s*'([^']+)'")
LEAVE_HOUSE = 1


def _row(line: str) -> tuple[datetime, datetime, int] | None:
    parts = [p.strip() for p in line.split("\t")]
    if len(parts) < 3:
        return None
    try:
        return datetime.strptime(parts[0], FORMAT), datetime.strptime(parts[1], FORMAT), int(parts[2])
    except ValueError:
        return None


def read(sensors: Iterable[str], activities: Iterable[str] = (), home_id: str = "kasteren-a") -> RealHome:
    """Sensor and (optionally) activity lines; header and unreadable lines are counted in ``skipped``."""
    home = RealHome(home_id)
    names: dict[int, str] = {}
    for line in sensors:
        named = _NAME.search(line)
        if named:
            names[int(named.group(1))] = named.group(2).strip()
            continue
        row = _row(line)
        if row is None:
            if line.strip() and not line.lstrip().startswith(("-", "Start", "End", "ID", "val", "Sensor", "Length")):
                home.skipped["unreadable sensor line"] += 1
            continue
        start, _end, sensor = row
        home.seen(start)
        if names.get(sensor, "").replace(" ", "").lower() == "toiletflush":
            home.water.append((start, ONE_FLUSH_L, 2.0))
        elif sensor not in names:
            home.skipped[f"unknown sensor {sensor}"] += 1
    if not any(name.replace(" ", "").lower() == "toiletflush" for name in names.values()):
        raise ValueError("no ToiletFlush sensor named in the header: is this kasterenSenseData.txt?")
    for line in activities:
        row = _row(line)
        if row is not None and row[2] == LEAVE_HOUSE:
            home.away.append((row[0], row[1]))
    return home
