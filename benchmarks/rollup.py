"""What the activity rollup's state costs the garbage collector at N homes.

`python -m benchmarks.rollup --homes 100000` gives the rollup one reading from each of N homes'
three devices, as the alerting service's rollup process holds them between flushes (its running
totals stay for good), and prints one JSON object: the objects the collector tracks and the
milliseconds of a full collection, the first (which finds what it can stop tracking) and the next.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import UTC, datetime

from alerting.rollup import ActivityRollup
from carebed.schemas import DeviceKind, Reading
from carebed.topics import DeviceChannel

TS = datetime(2026, 11, 1, tzinfo=UTC)


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return round((time.perf_counter() - started) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=100_000)
    homes = parser.parse_args().homes
    gc.collect()
    gc.freeze()  # as service.ready() does: only what the rollup builds is scanned
    rollup = ActivityRollup()
    for n in range(homes):
        common = {"home_id": f"home-{n}", "channel": DeviceChannel.TELEMETRY, "ts": TS, "received_at": TS}
        rollup.add(Reading(device_id=f"w-{n}", device_kind=DeviceKind.WEARABLE, steps=n, **common))
        rollup.add(Reading(device_id=f"m-{n}", device_kind=DeviceKind.WATER_METER, water_volume_l=n, **common))
        rollup.add(Reading(device_id=f"g-{n}", device_kind=DeviceKind.GAS_SENSOR, gas_volume_m3=n, **common))
    rollup.drain()
    first = full_collection_ms()
    print(
        json.dumps(
            {
                "homes": homes,
                "first_full_collection_ms": first,
                "full_collection_ms": full_collection_ms(),
                "tracked_objects": len(gc.get_objects()),
            }
        )
    )


if __name__ == "__main__":
    main()
