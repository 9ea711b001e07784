"""Pure core: a home's readings as its kit delivers them, in the order they reach the centre.

Meters report every ``interval_min`` (cumulative totals, with a flow rate only if the kit has
one); a meter that batches uploads its buffer at the end of each upload period, so a reading
arrives hours after its device time; a lossy link drops reports. The detector sees readings in
arrival order, as the service would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from carebed.schemas import DeviceKind, Reading
from evaluation.populations import HomeCase
from simulators.residents import SLOT, telemetry


def arrivals(case: HomeCase) -> list[tuple[datetime, Reading]]:
    """Every reading the home's devices deliver, with its arrival time, sorted by arrival (then device time)."""
    out = list(_deliver(case))
    out.sort(key=lambda item: (item[0], item[1].ts))
    return out


def _deliver(case: HomeCase) -> Iterator[tuple[datetime, Reading]]:
    t, kit = case.timeline, case.kit
    rng = random.Random(f"{t.home_id}:links")
    totals = random.Random(t.home_id)  # as simulators.residents.readings, so `full` is today's stream
    every = kit.interval_min // 5
    batch = (kit.batch_every_min or 0) // 5
    batch_phase = rng.randrange(batch) if batch else 0

    blank = {kind: telemetry(t.home_id, kind, t.start, t.start) for kind in DeviceKind}

    def make(kind: DeviceKind, ts: datetime, arrival: datetime, **values: Any) -> tuple[datetime, Reading]:
        return arrival, blank[kind].model_copy(update={"ts": ts, "received_at": arrival, **values})

    def arrival_of(slot_end: int) -> datetime:
        if not batch:
            return t.start + slot_end * SLOT
        upload = slot_end + (batch - (slot_end - batch_phase) % batch) % batch
        return t.start + upload * SLOT

    water, gas, steps = totals.uniform(10_000, 90_000), totals.uniform(100, 900), 0
    wearable_on, water_on, gas_on = t.online["wearable"], t.online["water_meter"], t.online["gas_sensor"]
    for i in range(t.slots):
        end = i + 1
        ts = t.start + end * SLOT
        worn = bool(t.worn[i])
        if worn:
            steps += t.steps[i]
        water += t.water_l[i]
        gas += t.gas_m3[i]
        if kit.wearable and wearable_on[i] and rng.random() >= kit.drop_rate:
            yield make(
                DeviceKind.WEARABLE,
                ts,
                ts,
                steps=steps,
                worn=worn if kit.wear_sensor else None,
                heart_rate_bpm=70.0 if worn and kit.wear_sensor else None,
            )
        if (end - kit.phase_slots) % every:
            continue
        if water_on[i] and rng.random() >= kit.drop_rate:
            flow = {"water_flow_l_min": round(t.water_l[i] / 5, 2), "leak": False} if kit.flow_field else {}
            yield make(DeviceKind.WATER_METER, ts, arrival_of(end), water_volume_l=round(water, 2), **flow)
        if kit.gas and gas_on[i] and rng.random() >= kit.drop_rate:
            values: dict[str, Any] = {"gas_volume_m3": round(gas, 3)}
            if kit.flow_field:
                values.update(gas_flow_m3_h=round(t.gas_m3[i] * 12, 3), ch4_lel_pct=0.5, co_ppm=2.0)
            yield make(DeviceKind.GAS_SENSOR, ts, arrival_of(end), **values)
