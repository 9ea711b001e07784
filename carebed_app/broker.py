"""A private Mosquitto for `carebed up`, the tests and the benchmarks: own config, port and data folder."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
# Written by carebed; changes are overwritten at the next start.
user {user}
listener {port} 127.0.0.1
pid_file {data}/mosquitto.pid
{listener_options}
persistence true
persistence_location {data}/
{autosave}
persistent_client_expiration 14d
max_queued_messages 1000000
max_inflight_messages 1000
log_dest file {data}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


# How often Mosquitto writes its in-memory state to disk; benchmarks/broker_persistence.py
# measures what each choice loses on kill -9 and costs (docs/architecture.md, "Delivery").
AUTOSAVE = "autosave_interval 5"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f} s")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class Mosquitto:
    """With ``authenticated``, logins are checked against ``passwd`` and ``acl`` in the data folder;
    with ``tls``, the listener speaks only TLS."""

    data_dir: Path
    port: int
    authenticated: bool = False
    tls: TlsFiles | None = None
    autosave: str = AUTOSAVE

    def __post_init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "mosquitto.pid"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        data = self.data_dir.resolve()
        listener_options = (
            f"allow_anonymous false\npassword_file {data}/passwd\nacl_file {data}/acl\n"
            # A session belongs to its account: nobody can connect with another's client id, kick
            # it off and wipe its queue (docs/architecture.md, "Broker security").
            "use_username_as_clientid true"
            if self.authenticated
            else "allow_anonymous true"
        )
        if self.tls is not None:
            listener_options += (
                f"\ncafile {self.tls.ca_file}\ncertfile {self.tls.cert_file}\nkeyfile {self.tls.key_file}"
            )
        self.config_path.write_text(
            CONFIG.format(
                user=getpass.getuser(),
                port=self.port,
                data=data,
                listener_options=listener_options,
                autosave=self.autosave,
            ),
            encoding="utf-8",
        )
        self.process = subprocess.Popen([binary, "-c", str(self.config_path)], stdin=subprocess.DEVNULL)
        wait_for_port(self.port, timeout_s, self.process)

    def exit_code(self) -> int | None:
        """The code it exited with (a signal as its negative), or None while it runs or before it started."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM lets Mosquitto write its persistence file, so queued messages survive."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
