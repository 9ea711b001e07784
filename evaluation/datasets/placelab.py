"""Pure converter of the MIT PlaceLab subjects (Munguia Tapia, 2003) into a :class:`RealHome`.

Two people, each living alone in their apartment, about two weeks each, 77-84 reed switches on
objects. Files (see docs/detection.md): ``sensors.csv`` (``id,room,object``) and
``activities_data.csv``, blocks of five lines per labelled activity::

    Toileting,4/1/2003,17:30:36,17:46:41      label, date (m/d/yyyy), start, end
    100,68                                    sensor ids
    Toilet Flush,Sink faucet - hot            their objects
    17:39:37,17:39:46                         activation times (h:m:s, digits not padded)
    18:10:57,17:39:52                         deactivation times

Mapping: a toilet flush is 6 L (however long its switch stays closed); a sink faucet runs
6 L/min and a shower 9 L/min for as long as its switch was open, capped at 5 and 20 minutes (a
switch left closed is not a tap left on); a burner or the oven burns 0.4 m³/h of gas, capped at
60 minutes (the apartments' stoves may have been electric: this exercises the gas channel with
real cooking times). Everything else (doors, cupboards, lights, the appliances' doors) has no
carebed device and only marks the span the data covers. The sensors were recorded only inside
labelled activities, so unlabelled hours are silent in the data, not in the home.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime, timedelta

from evaluation.datasets.homes import ONE_FLUSH_L, RealHome

# object -> (channel, rate per minute, cap in minutes); a rate of None is a fixed amount per use
WATER, GAS = "water", "gas"
MAPPING: dict[str, tuple[str, float | None, float]] = {
    "toilet flush": (WATER, None, 2.0),
    "sink faucet - hot": (WATER, 6.0, 5.0),
    "sink faucet - cold": (WATER, 6.0, 5.0),
    "shower faucet": (WATER, 9.0, 20.0),
    "burner": (GAS, 0.4 / 60, 60.0),
    "oven": (GAS, 0.4 / 60, 60.0),
}


def read_sensors(lines: Iterable[str]) -> dict[str, str]:
    """``id -> object`` (lower case) from sensors.csv."""
    objects: dict[str, str] = {}
    for row in csv.reader(lines):
        if len(row) >= 3 and row[0].strip():
            objects[row[0].strip()] = row[2].strip().lower()
    return objects


def _time(day: datetime, text: str) -> datetime:
    h, m, s = (int(x) for x in text.strip().split(":"))
    return day + timedelta(hours=h, minutes=m, seconds=s)


def read(sensors: Iterable[str], data: Iterable[str], home_id: str) -> RealHome:
    """One subject's sensors.csv and activities_data.csv; blocks that do not parse are counted and skipped."""
    objects = read_sensors(sensors)
    home = RealHome(home_id)
    used: set[tuple[str, datetime]] = set()
    lines = [line.rstrip("\r\n") for line in data]
    i = 0
    while i < len(lines):
        head = lines[i].split(",")
        if len(head) != 4 or head[1].count("/") != 2:
            home.skipped["line outside a block"] += int(bool(lines[i].strip()))
            i += 1
            continue
        block = lines[i + 1 : i + 5]
        i += 5
        try:
            month, day, year = (int(x) for x in head[1].split("/"))
            date = datetime(year, month, 1) + timedelta(days=day - 1)  # the data has a 4/31/2003
            begin = _time(date, head[2])
            ids, _objs, on, off = (row.split(",") for row in block)
            if not len(ids) == len(on) == len(off):
                raise ValueError("ragged block")
        except ValueError:
            home.skipped["unreadable block"] += 1
            continue
        for sensor, on_text, off_text in zip(ids, on, off, strict=True):
            try:
                start, end = _time(date, on_text), _time(date, off_text)
            except ValueError:
                home.skipped["unreadable time"] += 1
                continue
            if start < begin - timedelta(hours=1):
                start += timedelta(days=1)
            while end < start:
                end += timedelta(days=1)
            home.seen(start)
            key = (sensor.strip(), start)
            mapped = MAPPING.get(objects.get(key[0], ""))
            if mapped is None or key in used:
                continue
            used.add(key)
            channel, rate, cap = mapped
            minutes = min((end - start).total_seconds() / 60, cap)
            amount = ONE_FLUSH_L if rate is None else rate * max(minutes, 1 / 6)
            (home.water if channel == WATER else home.gas).append((start, amount, minutes if rate else cap))
    if not objects:
        raise ValueError("sensors.csv names no sensors")
    return home
