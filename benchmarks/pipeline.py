"""`carebed bench`: throughput, latency and memory of the pipeline on this machine, all on loopback.

One process tree: a private Mosquitto, the real services (each process of `carebed up`, carebed_app.stack),
the real simulator as load generator (`carebed simulate --json`), a bare counting subscriber for
the ceiling, and a loopback stand-in for Twilio's Messages API that notes when each SMS request
arrives. Phases:

1. ceiling: the load with only the bare subscriber;
2. idle SOS latency: SOS presses one at a time, publish → Twilio request;
3. pipeline: the same load through gateway and detector, with SOS presses during it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import make_url, select
from twilio.request_validator import RequestValidator

from alerting.models import Alert, FindingRecord, Notification
from carebed import topics
from carebed.db import make_engine, make_sessionmaker, upgrade
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import RegistryFile, import_registry
from carebed.schemas import DeviceKind, Reading, utc_now
from carebed.settings import Settings
from carebed.topics import DeviceChannel
from carebed_app.broker import Mosquitto, free_port, wait_for_port
from carebed_app.stack import OWN_METRICS_PORT, SERVICES
from detector.checkpoint import write_checkpoint
from detector.core import DetectorCore
from detector.service import pattern_config, rule_config
from simulators.homes import build_registry

ACCOUNT_SID = "AC" + "0" * 32
# p99 of n presses is read near the top two values; many presses keep one stray from setting it.
SOS_SAMPLES = 200
# Presses this far apart each meet the pipeline as a lone SOS would: past the activity rollup's
# quiet time (alerting/urgency.py), not in the wake of the press before.
SOS_SPACING_S = 0.5
# Presses under load fall in this part of it, away from its start and its end.
LOAD_WINDOW = (0.1, 0.9)
DRAIN_TIMEOUT_S = 120.0
# At 100k homes a checkpoint's writer runs for 10–15 s of every 30.
CHECKPOINT_WRITER_TIMEOUT_S = 120.0
# An SOS's way to Twilio, each stage named after where it ends: the gateway's receipt; the alert
# opened in the alerting service (the alarm lane, MQTT and the consumer); the outbox's claim of its SMS
# (the alert's commit, the outbox waking, its claim); the SMS request reaching Twilio.
SOS_STAGES = ("gateway", "alert", "claim", "twilio")


@dataclass
class TwilioSink:
    """Answers Messages.create like Twilio and notes the arrival time per recipient."""

    arrivals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                to = parse_qs(body).get("To", [""])[0]
                sink.arrivals.setdefault(to, time.time())
                answer = json.dumps({"sid": f"SM{len(sink.arrivals):032d}", "status": "queued", "to": to}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()


@dataclass
class Bench:
    homes: int
    speed: float
    duration_s: float
    folder: Path
    profile_dir: Path | None = None
    database_url: str | None = None
    warm: bool = False
    on_phase: Callable[[str], None] = lambda _: None
    env: dict[str, str] = field(init=False)
    scheduler: SchedulerStats = field(init=False)
    http: httpx.Client = field(init=False)

    def run(self) -> dict[str, Any]:
        registry = build_registry(self.homes, seed=1)
        self.home_ids = [h.id for h in registry.homes]
        self.phones = [h.responders[0].phone for h in registry.homes]
        self.wearables = [next(d.id for d in h.devices if d.kind is DeviceKind.WEARABLE) for h in registry.homes]
        self.folder.mkdir(parents=True, exist_ok=True)
        broker = Mosquitto(self.folder / "mosquitto", free_port())
        sink = TwilioSink()
        # One client for the whole run: a new one per request builds a TLS context each time,
        # which at ten metric reads a second made the bench a busy process of its own.
        self.http = httpx.Client(timeout=30)
        database = self.database_url or f"sqlite:///{self.folder / 'carebed.db'}"
        upgrade(database, Settings(data_dir=self.folder, database_url=database).charts_sqlalchemy_url)
        engine = make_engine(database)
        with make_sessionmaker(engine).begin() as session:
            import_registry(session, registry)
        engine.dispose()
        broker.start()
        self.settings = Settings(data_dir=self.folder, mqtt_port=broker.port, database_url=database)
        if self.warm:
            self.on_phase("detector state: every device once")
            write_warm_detector_state(self.settings, registry)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))},
            "CAREBED_DATA_DIR": str(self.folder),
            "CAREBED_DATABASE_URL": database,
            "CAREBED_MQTT_PORT": str(broker.port),
            "CAREBED_GATEWAY_MAX_FUTURE_SKEW_S": "null",
            "CAREBED_GATEWAY_DEVICE_RATE_PER_S": "null",
            "CAREBED_DETECTOR_WALL_CLOCK": "false",
            "CAREBED_LOG_LEVEL": "warning",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": "bench",
            "CAREBED_TWILIO_FROM": "+15005550006",
            "CAREBED_TWILIO_API_BASE": sink.url,
        }
        # The last home is the warm-up's; each press is a home of its own.
        samples = max(1, min(SOS_SAMPLES, (self.homes - 1) // 2, int(self._press_window_s / SOS_SPACING_S)))
        try:
            self.on_phase("ceiling: bare subscriber")
            bare = self._ceiling()
            with self._services() as services:
                self.on_phase("waiting for the services' subscriptions")
                self._warm_up(sink)
                assert broker.process is not None
                self.scheduler = SchedulerStats(
                    {
                        **{n: p.pid for n, p in services.items()},
                        "activity rollup": _rollup_pid(services["alerting"].pid),
                        "mosquitto": broker.process.pid,
                        "bench": os.getpid(),
                    }
                )
                self.on_phase("idle SOS latency")
                with self.scheduler.measure("idle"):
                    idle = self._sos_latencies(sink, range(0, samples), spacing_s=SOS_SPACING_S)
                self.on_phase("pipeline under load")
                with self._profiling(services):
                    pipeline, load = self._pipeline(sink, range(samples, 2 * samples))
                self.on_phase("memory")
                rss = {name: memory_mb(proc.pid) for name, proc in services.items() if name != "detector"}
                rss["detector"] = _memory_between_checkpoints_mb(services["detector"].pid)
                rss["mosquitto"] = memory_mb(broker.process.pid)
                checkpoints = self._checkpoints()
            stages = {
                "idle": _stage_summary(self._stages(database, sink, range(0, samples))),
                "load": _stage_summary(self._stages(database, sink, range(samples, 2 * samples))),
            }
        finally:
            broker.stop()
            self.http.close()
            sink.close()
        state = self.folder / "detector" / "state.pickle"
        ratio = pipeline["rate"] / bare["rate"] if bare["rate"] else 0.0
        return {
            "homes": self.homes,
            "database": make_url(database).get_backend_name(),
            "detector_state": "warm" if self.warm else "cold",
            "speed": self.speed,
            "duration_s": self.duration_s,
            "published": pipeline["published"],
            "bare_msgs_per_s": round(bare["rate"], 1),
            "pipeline_msgs_per_s": round(pipeline["rate"], 1),
            "ratio": round(ratio, 3),
            "lost": pipeline["published"] - pipeline["processed"],
            "bare_lost": bare["published"] - bare["received"],
            "sos_latency_ms": {"idle": _percentiles(idle, samples), "load": _percentiles(load, samples)},
            "sos_stages_ms": stages,
            "scheduler": self.scheduler.phases,
            "rss_mb": rss,
            "detector_bytes_per_home": round(state.stat().st_size / self.homes) if state.exists() else None,
            "detector_checkpoints": checkpoints,
        }

    @property
    def _press_window_s(self) -> float:
        """The part of the load in which presses fall."""
        return self.duration_s * (LOAD_WINDOW[1] - LOAD_WINDOW[0])

    @contextmanager
    def _services(self) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
        ports = {name: free_port() for name in OWN_METRICS_PORT}
        http = free_port()
        self.public_url = f"http://127.0.0.1:{http}"
        services: dict[str, subprocess.Popen[bytes]] = {}
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        for name, args in SERVICES.items():
            env = {**self.env, "CAREBED_HTTP_PORT": str(http), "CAREBED_PUBLIC_URL": self.public_url}
            if name in ports:
                env["CAREBED_METRICS_PORT"] = str(ports[name])
            with (logs / f"{name}.log").open("wb") as log:
                services[name] = subprocess.Popen(
                    [sys.executable, "-m", "carebed_app", *args],
                    env=env,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
        self.metrics_ports = ports
        try:
            wait_for_port(http, 60, services["alerting"])
            for name, port in ports.items():
                wait_for_port(port, 60, services[name])
            yield services
        finally:
            for proc in reversed(list(services.values())):
                proc.send_signal(signal.SIGTERM)
            for proc in services.values():
                proc.wait(timeout=60)

    @contextmanager
    def _profiling(self, services: dict[str, subprocess.Popen[bytes]]) -> Iterator[None]:
        """Flame graphs of the gateway and detector for the load's duration, sampled without pausing them."""
        if self.profile_dir is None:
            yield
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        recorders = [
            subprocess.Popen(
                _py_spy_record(services[name].pid, round(self.duration_s), self.profile_dir / f"{name}.svg"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in ("gateway", "detector")
        ]
        try:
            yield
        finally:
            for recorder in recorders:
                recorder.wait(timeout=self.duration_s + 60)

    def _simulate(self) -> subprocess.Popen[str]:
        args = ["--homes", str(self.homes), "--speed", str(self.speed), "--duration", str(self.duration_s), "--json"]
        return subprocess.Popen(
            [sys.executable, "-m", "carebed_app", "simulate", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def _ceiling(self) -> dict[str, float]:
        counter = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.counter"], env=self.env, stdout=subprocess.PIPE, text=True
        )
        lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in counter.stdout or []], daemon=True).start()
        latest = lines.get(timeout=30)
        load = self._simulate()
        published = json.loads(load.communicate()[0])["published"]
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while latest["count"] < published and time.monotonic() < deadline:
            latest = lines.get(timeout=30)
        counter.send_signal(signal.SIGTERM)
        counter.wait(timeout=30)
        span = (latest["last"] or 0) - (latest["first"] or 0)
        return {"published": published, "received": latest["count"], "rate": latest["count"] / span if span else 0}

    def _pipeline(self, sink: TwilioSink, sos_homes: range) -> tuple[dict[str, float], list[float]]:
        watch = CounterWatch(self._processed)
        load = self._simulate()
        # The load begins once the simulator has drawn its homes' weeks (minutes for 100k homes).
        watch.wait_for(1, DRAIN_TIMEOUT_S * 5)
        time.sleep(self.duration_s * LOAD_WINDOW[0])
        with self.scheduler.measure("load", simulator=load.pid):
            during = self._sos_latencies(sink, sos_homes, spacing_s=self._press_window_s / max(len(sos_homes), 1))
        published = json.loads(load.communicate()[0])["published"] + len(sos_homes)
        watch.wait_for(published, DRAIN_TIMEOUT_S)
        watch.stop()
        processed, span = watch.progress()
        return {"published": published, "processed": processed, "rate": processed / span if span else 0.0}, during

    def _warm_up(self, sink: TwilioSink) -> None:
        """An SOS and a reading through the whole pipeline before any measurement.

        A service's first-ever MQTT session only exists once it has subscribed; what is published
        before that is not kept for it. Its open metrics port says nothing about that.
        """
        last = self.homes - 1
        watch = CounterWatch(self._processed)
        client = MqttClient(self.settings, client_id="carebed-bench-warm-up", persistent=False)
        client.start()
        try:
            telemetry = {"ts": utc_now().isoformat(), "heart_rate_bpm": 70, "worn": True}
            client.publish(
                Outbound(topics.device(self.wearables[last], DeviceChannel.TELEMETRY), json.dumps(telemetry).encode())
            )
            watch.wait_for(1, DRAIN_TIMEOUT_S)
        finally:
            watch.stop()
            client.stop()
        if not self._sos_latencies(sink, range(last, last + 1), spacing_s=0):
            raise RuntimeError("the warm-up SOS never reached Twilio: see the services' logs in the bench folder")

    def _processed(self) -> int:
        """Readings the detector has finished with, from its own counter."""
        return int(self._detector_metric("carebed_detector_readings_total"))

    def _checkpoints(self) -> dict[str, float | int | None]:
        """The detector's periodic checkpoints during the run: how long it stopped to fork, how long the child wrote."""
        written = int(self._detector_metric("carebed_detector_checkpoint_seconds_count"))
        forks = self._detector_metric("carebed_detector_checkpoint_fork_seconds_count")
        return {
            "written": written,
            "failed": int(self._detector_metric("carebed_detector_checkpoint_failures_total")),
            "fork_ms_mean": round(
                self._detector_metric("carebed_detector_checkpoint_fork_seconds_sum") / forks * 1000, 1
            )
            if forks
            else None,
            "write_s_mean": round(self._detector_metric("carebed_detector_checkpoint_seconds_sum") / written, 2)
            if written
            else None,
        }

    def _stages(self, database: str, sink: TwilioSink, homes: range) -> list[dict[str, float]]:
        """Where each press's time went, from the times the pipeline stored along the way: the
        gateway's receipt (in the finding), the alert's creation, the outbox's claim of its first SMS."""
        phones = {self.home_ids[n]: self.phones[n] for n in homes}
        engine = make_engine(database)
        try:
            with make_sessionmaker(engine)() as session:
                rows = session.execute(
                    select(Alert.home_id, FindingRecord.ts, FindingRecord.body, Alert.created_at, Notification)
                    .join(FindingRecord, FindingRecord.alert_id == Alert.id)
                    .join(Notification, Notification.alert_id == Alert.id)
                    .where(Alert.code == "sos", Alert.home_id.in_(phones), Notification.channel == "sms")
                ).all()
                claims: dict[str, tuple[datetime, datetime, datetime, datetime]] = {}
                for home_id, ts, body, created_at, notification in rows:
                    claimed = notification.claimed_at
                    if notification.recipient != phones[home_id] or claimed is None:
                        continue
                    if home_id not in claims or claimed < claims[home_id][3]:
                        claims[home_id] = (ts, datetime.fromisoformat(body["received_at"]), created_at, claimed)
        finally:
            engine.dispose()
        presses = []
        for home_id, (ts, received, created, claimed) in claims.items():
            arrival = sink.arrivals.get(phones[home_id])
            if arrival is None:
                continue
            times = [ts.timestamp(), received.timestamp(), created.timestamp(), claimed.timestamp(), arrival]
            presses.append({stage: (b - a) * 1000 for stage, (a, b) in zip(SOS_STAGES, pairwise(times), strict=True)})
        return presses

    def _detector_metric(self, name: str) -> float:
        text = self.http.get(f"http://127.0.0.1:{self.metrics_ports['detector']}/metrics").text
        line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
        return float(line.split()[1])

    def _sos_latencies(self, sink: TwilioSink, homes: range, spacing_s: float) -> list[float]:
        """Milliseconds from an SOS publish to Twilio receiving the SMS request, for each home in turn.

        Halfway to the next press the responder accepts by SMS reply, as one would: unanswered,
        every alert would escalate a minute later, in the middle of the presses that follow.
        """
        client = MqttClient(self.settings, client_id=f"carebed-bench-sos-{homes.start}", persistent=False)
        client.start()
        sent: dict[str, float] = {}
        unanswered: list[str] = []
        try:
            for n in homes:
                phone = self.phones[n]
                payload = json.dumps({"ts": utc_now().isoformat(), "event": "sos"}).encode()
                sent[phone] = time.time()
                client.publish(Outbound(topics.device(self.wearables[n], DeviceChannel.EVENT), payload))
                time.sleep(spacing_s / 2)
                if phone in sink.arrivals:
                    self._accept(phone)
                else:
                    unanswered.append(phone)
                time.sleep(spacing_s / 2)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while not all(p in sink.arrivals for p in sent) and time.monotonic() < deadline:
                time.sleep(0.05)
            for phone in unanswered:
                self._accept(phone)
        finally:
            client.stop()
        return [(sink.arrivals[p] - t) * 1000 for p, t in sent.items() if p in sink.arrivals]

    def _accept(self, phone: str) -> None:
        """The responder's SMS reply "1", through the signed webhook Twilio would call."""
        url = f"{self.public_url}/twilio/sms"
        form = {"From": phone, "Body": "1", "AccountSid": ACCOUNT_SID}
        signature = RequestValidator(self.env["TWILIO_AUTH_TOKEN"]).compute_signature(url, form)
        self.http.post(url, data=form, headers={"X-Twilio-Signature": signature}).raise_for_status()


class SchedulerStats:
    """How much of a core each process used, and how long it waited for one each time it was ready.

    From the kernel's schedstat per thread: time on a core, time runnable but waiting for one,
    and the number of times it was given one. Two cores shared by busy processes show up as
    waits, on every process along an SOS's way at once.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self.phases: dict[str, dict[str, dict[str, float | None]]] = {}

    @contextmanager
    def measure(self, phase: str, **more_pids: int) -> Iterator[None]:
        pids = {**self._pids, **more_pids}
        before = {name: _thread_schedstats(pid) for name, pid in pids.items()}
        started = time.monotonic()
        yield
        wall_ns = (time.monotonic() - started) * 1e9
        self.phases[phase] = {}
        for name, pid in pids.items():
            after = _thread_schedstats(pid)
            common = after.keys() & before[name].keys()
            ran, waited, slices = (sum(after[t][i] - before[name][t][i] for t in common) for i in range(3))
            self.phases[phase][name] = {
                "busy_pct": round(ran / wall_ns * 100, 1),
                "run_queue_wait_us": round(waited / slices / 1000, 1) if slices else None,
            }


def _thread_schedstats(pid: int) -> dict[int, tuple[int, int, int]]:
    """Per thread of the process: nanoseconds on a core, nanoseconds waiting for one, time slices."""
    stats = {}
    for tid, line in _per_thread(pid, "schedstat").items():
        ran, waited, slices = (int(x) for x in line.split())
        stats[tid] = (ran, waited, slices)
    return stats


def _per_thread(pid: int, name: str) -> dict[int, str]:
    """A /proc file of every thread of the process, by thread id; threads and processes that end
    while being read are left out."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return {}
    files = {}
    for task in tasks:
        try:
            files[int(task.name)] = (task / name).read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
    return files


class CounterWatch:
    """Samples a counter ten times a second from a thread of its own.

    The rate spans the first to the last change, as the ceiling's spans its first to last
    message: the load generator's start-up counts against neither.
    """

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._samples = [(time.time(), read())]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stopped.wait(0.1):
            self._samples.append((time.time(), self._read()))

    def wait_for(self, increase: int, timeout: float) -> None:
        """Until the counter has grown by `increase`, or has not grown for `timeout` seconds."""
        base = self._samples[0][1]
        while True:
            last = self._samples[-1][1]
            if last - base >= increase or time.time() - self._changed_at(last) > timeout:
                break
            time.sleep(0.1)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def progress(self) -> tuple[int, float]:
        """(growth, seconds from just before the first change to the last change)."""
        base, last = self._samples[0][1], self._samples[-1][1]
        started = max(at for at, count in self._samples if count == base)
        return last - base, self._changed_at(last) - started

    def _changed_at(self, count: int) -> float:
        return min(at for at, value in self._samples if value == count)


def write_warm_detector_state(settings: Settings, registry: RegistryFile) -> None:
    """A checkpoint in which every device has reported once, for the detector to restore.

    A running detector restores its state at start and freezes it (detector/service.py); one
    that starts empty builds 100k homes' state in its first minutes under load, and the garbage
    collections of that one-off build are not what a deployment that has been up meets.
    """
    at = utc_now() - timedelta(minutes=1)
    first_report: dict[DeviceKind, dict[str, Any]] = {
        DeviceKind.WEARABLE: {"heart_rate_bpm": 70.0, "worn": True},
        DeviceKind.WATER_METER: {"water_flow_l_min": 0.0},
        DeviceKind.GAS_SENSOR: {"gas_flow_m3_h": 0.0},
    }
    engine = DetectorCore(rule_config(settings), pattern_config(settings))
    for home in registry.homes:
        for device in home.devices:
            values = first_report.get(device.kind, {})
            engine.process(
                Reading(
                    home_id=home.id,
                    device_id=device.id,
                    device_kind=device.kind,
                    channel=DeviceChannel.TELEMETRY,
                    ts=at,
                    received_at=at,
                    **values,
                )
            )
    write_checkpoint(settings.data_dir / "detector" / "state.pickle", engine)


def _py_spy_record(pid: int, seconds: int, output: Path) -> list[str]:
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "100",
        "--nonblocking",
        "-o",
        str(output),
    ]


def _percentiles(values: list[float], sent: int) -> dict[str, float | int | None]:
    """p50 and p99 of what arrived; `missing` counts presses that never reached Twilio."""
    counts = {"n": len(values), "missing": sent - len(values)}
    if len(values) < 2:
        only = round(values[0], 1) if values else None
        return {"p50": only, "p99": only, **counts}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1), **counts}


def _stage_summary(presses: list[dict[str, float]]) -> dict[str, Any]:
    """Each stage's p50 and p99, and the stages of the two slowest presses: those set the p99."""
    if not presses:
        return {}
    slowest = sorted(presses, key=lambda press: sum(press.values()), reverse=True)[:2]
    cuts = {stage: _percentiles([press[stage] for press in presses], len(presses)) for stage in SOS_STAGES}
    return {
        **{cut: {stage: cuts[stage][cut] for stage in SOS_STAGES} for cut in ("p50", "p99")},
        "slowest": [
            {"total": round(sum(press.values()), 1)} | {k: round(v, 1) for k, v in press.items()} for press in slowest
        ],
    }


def _children(pid: int) -> list[int]:
    """Children of every thread of the process: the detector forks its checkpoint writer from a
    thread of its own, and Linux lists a child under the thread that started it."""
    return [int(child) for listed in _per_thread(pid, "children").values() for child in listed.split()]


def _rollup_pid(alerting_pid: int) -> int:
    """The alerting service's activity rollup: its one child started by multiprocessing's spawn
    (the other is multiprocessing's resource tracker)."""
    return next(c for c in _children(alerting_pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes())


def memory_mb(pid: int) -> float:
    """Resident memory of a process and its children: the alerting service's activity rollup, a
    detector's checkpoint writer. Proportional (PSS), so pages a forked child shares count once."""
    total_kb = 0
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):  # a checkpoint writer that finished meanwhile
        return 0.0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            total_kb = int(line.split()[1])
    child_mb = sum(memory_mb(child) for child in _children(pid))
    return round(total_kb / 1024 + child_mb, 1)


def _memory_between_checkpoints_mb(detector_pid: int) -> float:
    """The detector's memory with no checkpoint writer alive, so that runs compare: a writer copies
    each page its pickling touches, and a reading during a write would count those copies too, more
    or fewer by the moment it fell on (`python -m benchmarks.checkpoint` measures that peak)."""
    deadline = time.monotonic() + CHECKPOINT_WRITER_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _children(detector_pid):
            reading = memory_mb(detector_pid)
            if not _children(detector_pid):
                return reading
        time.sleep(0.2)
    raise RuntimeError("the detector's checkpoint writer did not finish")


def run_with_progress(bench: Bench) -> dict[str, Any]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        bench.on_phase = lambda phase: progress.update(task, description=phase)
        return bench.run()
