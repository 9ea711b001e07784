"""Test harness: waiting on conditions, running services as real processes, recording Twilio requests."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx

from carebed import topics
from carebed.mqtt import Inbound, MqttClient, Outbound, decode_batch
from carebed.schemas import Finding, FindingCode, Reading, Severity, dump, utc_now
from carebed.settings import Settings
from carebed_app.stack import SERVICES

T = TypeVar("T")
# Readings travel in two lanes: routine telemetry and status, and events (SOS, fall, leak).
ALL_READINGS = (topics.READINGS, topics.EVENTS)


def publish_sos_finding(client: MqttClient, home_id: str) -> datetime:
    """A detector's SOS finding on the internal topic, as the detector publishes it; returns its time."""
    now = utc_now()
    finding = Finding(
        id=f"{home_id}:sos:{now.isoformat()}",
        home_id=home_id,
        code=FindingCode.SOS,
        severity=Severity.CRITICAL,
        ts=now,
        detected_at=now,
        summary="SOS button pressed",
    )
    client.publish(Outbound(topics.findings(home_id), dump(finding)))
    return now


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until the condition returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class ServiceProcess:
    """One carebed service process (as `carebed up` starts it) with its own environment."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "carebed", *SERVICES.get(self.name, (self.name,))],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_logged(self, text: str, timeout: float = 20.0) -> None:
        wait_for(lambda: text in self.log(), timeout, f"{self.name} to log {text!r}\n--- log ---\n{self.log()[-3000:]}")


@dataclass
class Observer:
    """A separate MQTT client that records what is published on one topic filter or several."""

    settings: Settings
    topic_filter: str | tuple[str, ...]
    messages: queue.Queue[Inbound] = field(default_factory=queue.Queue)
    received: int = 0
    _readings: deque[Reading] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.client = MqttClient(self.settings, client_id=f"test-observer-{id(self):x}", persistent=False)
        filters = (self.topic_filter,) if isinstance(self.topic_filter, str) else self.topic_filter
        for topic_filter in filters:
            self.client.subscribe(topic_filter, self._record)

    def _record(self, message: Inbound) -> list[Outbound]:
        self.received += 1
        self.messages.put(message)
        return []

    def next(self, timeout: float = 10.0) -> Inbound:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing published on {self.topic_filter} within {timeout:.0f} s") from None

    def next_reading(self, timeout: float = 10.0) -> Reading:
        """The next reading off the internal lanes, where readings travel in batches."""
        while not self._readings:
            self._readings.extend(decode_batch(Reading, self.next(timeout)))
        return self._readings.popleft()


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    status: int
    response: dict[str, Any]


class TwilioRecorder:
    """A loopback proxy in front of Prism: it forwards each request and keeps what was sent and answered.

    ``fail_next(n, status, code)`` makes the next n requests fail without reaching Prism, as during an
    outage (500, 20500) or for a number Twilio refuses (400, 21211).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._failures: list[tuple[int, int]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._lock:
                    failure = recorder._failures.pop(0) if recorder._failures else None
                if failure is not None:
                    status, code = failure
                    content = json.dumps({"code": code, "message": "injected failure", "status": status}).encode()
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    answer = httpx.request(
                        self.command, recorder.upstream + self.path, content=body, headers=headers, timeout=30
                    )
                    status, content = answer.status_code, answer.content
                form = parse_qs(body.decode()) if body else {}
                try:
                    parsed = httpx.Response(200, content=content).json()
                except ValueError:
                    parsed = {}
                with recorder._lock:
                    recorder.requests.append(RecordedRequest(self.command, self.path, form, status, parsed))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count: int, status: int = 500, code: int = 20500) -> None:
        with self._lock:
            self._failures.extend([(status, code)] * count)

    def messages_to(self, phone: str) -> list[RecordedRequest]:
        return self.posted("Messages.json", phone)

    def calls_to(self, phone: str) -> list[RecordedRequest]:
        return self.posted("Calls.json", phone)

    def posted(self, resource: str, phone: str) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.endswith(f"/{resource}") and r.form.get("To") == [phone]
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_certificates(certs: Path) -> Path:
    """A test CA in `certs` (ca.crt) and a server certificate for 127.0.0.1 it signs (server.crt, server.key)."""
    certs.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "1", "-subj", "/CN=carebed test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return certs


class CarebedUp:
    """`carebed up` as a user runs it, in a process of its own; what it prints is read on a thread."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carebed", "up", *args],
            env={**env, "COLUMNS": "250"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self._queue.put(line)

    def printed(self, pattern: str) -> re.Match[str] | None:
        """The first line printed so far that matches, or None."""
        found = self.printed_at(pattern)
        return found[1] if found else None

    def printed_at(self, pattern: str) -> tuple[int, re.Match[str]] | None:
        """The number of the first line printed so far that matches, and the match."""
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return next(((n, m) for n, line in enumerate(self.lines) if (m := re.search(pattern, line))), None)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)
