"""The telemetry archive against a real InfluxDB v2 write endpoint (VictoriaMetrics' implementation).

No InfluxDB 2 server can be installed here; VictoriaMetrics accepts the same `/api/v2/write`
requests from the real `influxdb-client`, so the writer, its batching and its spool are tested
for real. Production points the same code at InfluxDB 2 (docker-compose.yml).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from carebed.schemas import DeviceKind, Reading
from carebed.topics import DeviceChannel
from carebed_app.broker import free_port, wait_for_port
from gateway.archive import Archive, ArchiveConfig
from tests.support import wait_for

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


class Victoria:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("victoria-metrics")
        assert binary, "victoria-metrics is not installed (apt-get install victoria-metrics)"
        self.process = subprocess.Popen(
            [
                binary,
                f"-storageDataPath={self.folder}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 30, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def samples(self, metric: str) -> list[float]:
        httpx.get(f"{self.url}/internal/force_flush", timeout=10)
        answer = httpx.get(f"{self.url}/api/v1/export", params={"match[]": f'{{__name__="{metric}"}}'}, timeout=10)
        answer.raise_for_status()
        return [v for line in answer.text.splitlines() if line for v in json.loads(line)["values"]]


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    server = Victoria(tmp_path / "vm")
    server.start()
    yield server
    server.stop()


def heart_rate(minute: int) -> Reading:
    ts = T0 + timedelta(minutes=minute)
    return Reading(
        home_id="home-1", device_id="w1", device_kind=DeviceKind.WEARABLE, channel=DeviceChannel.TELEMETRY,
        ts=ts, received_at=ts, heart_rate_bpm=60 + minute % 30, worn=True,
    )  # fmt: skip


def test_readings_of_two_writers_sharing_a_spool_survive_an_outage_without_loss_or_duplicates(
    victoria: Victoria, tmp_path: Path
) -> None:
    """The gateway's lanes run as two processes with one spool: each batch is replayed once, by either."""
    spool = tmp_path / "spool"
    config = ArchiveConfig(
        url=victoria.url,
        token="x",
        org="carebed",
        bucket="telemetry",
        spool_dir=spool,
        batch_size=10,
        flush_s=0.1,
        retry_s=0.2,
    )
    writers = [Archive(config), Archive(config)]
    for writer in writers:
        writer.start()
    try:
        for minute in range(50):
            writers[minute % 2].add(heart_rate(minute))
        wait_for(lambda: len(victoria.samples("reading_heart_rate_bpm")) == 50, 30, "the first 50 points")

        victoria.stop()
        for minute in range(50, 80):
            writers[minute % 2].add(heart_rate(minute))
        wait_for(lambda: len(list(spool.glob("*.lp"))) >= 2, 30, "both writers' batches to be spooled")

        victoria.start()
        wait_for(lambda: not list(spool.glob("*.lp")), 30, "the spool to be replayed")

        def all_points() -> list[float] | None:
            values = victoria.samples("reading_heart_rate_bpm")
            return values if len(values) >= 80 else None

        values = wait_for(all_points, 30, "all 80 points")
        assert len(values) == 80
        assert sorted(values) == sorted(float(60 + m % 30) for m in range(80))
        assert len(victoria.samples("reading_worn")) == 80
    finally:
        for writer in writers:
            writer.stop()
