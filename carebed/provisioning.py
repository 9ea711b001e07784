"""Broker credentials and ACL, kept in step with the registry.

Devices and services log in to Mosquitto with a user name and password. A device's user name
is its id, and the ACL lets it write only below ``carebed/v1/devices/{its id}/``; each service
reads and writes only the topics it needs. The password file is regenerated from the
registry (device hashes) and the service hashes whenever either changes, and the broker is
told to reload it (SIGHUP), so a device added or rotated works at once and a removed one is
shut out at its next connection.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import signal
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.orm import Session

from carebed.registry import Device, Home, device_credentials
from carebed.schemas import DeviceKind
from carebed.topics import EVENTS, HEALTH_SUBSCRIPTION, PREFIX, READINGS, health

# Mosquitto 2's own format: PBKDF2-HMAC-SHA512, "$7$iterations$salt$hash". Passwords are random
# 32-byte tokens, so Mosquitto's default of 101 iterations costs nothing in strength and keeps a
# reconnect storm of a whole city's devices cheap for the broker.
_ITERATIONS = 101
SERVICES_FILE = "services.passwd"
ACCOUNTS_FILE = "accounts.env"

SERVICE_ACL: dict[str, tuple[tuple[str, str], ...]] = {
    "carebed-gateway": (
        ("read", f"{PREFIX}/devices/#"),
        ("write", READINGS),
        ("write", EVENTS),
        ("write", f"{PREFIX}/deadletter/#"),
        ("write", health("gateway")),
        ("write", health("gateway-events")),
    ),
    "carebed-detector": (
        ("read", READINGS),
        ("read", EVENTS),
        ("read", f"{PREFIX}/internal/feedback/#"),
        ("write", f"{PREFIX}/internal/findings/#"),
        ("write", health("detector")),
        ("write", health("alarms")),
    ),
    "carebed-alerting": (
        ("read", f"{PREFIX}/internal/findings/#"),
        ("read", READINGS),
        ("write", f"{PREFIX}/internal/feedback/#"),
        ("read", HEALTH_SUBSCRIPTION),
    ),
    # Publishes for many simulated devices over one connection: for demos, tests and benchmarks only.
    "carebed-simulator": (("write", f"{PREFIX}/devices/#"),),
    # A LoRaWAN network server's MQTT integration (ChirpStack v4 uplinks).
    "carebed-chirpstack": (("write", "application/+/device/+/event/+"),),
    # Read-only view of everything, for integrators watching their data arrive and being judged.
    "carebed-observer": (("read", f"{PREFIX}/#"),),
}

# A lane that runs in a process of its own is still part of its service: same account.
_SHARED_ACCOUNTS = {"alarms": "carebed-detector", "gateway-events": "carebed-gateway"}


def service_account(process: str) -> str:
    """The broker account a carebed process connects as."""
    return _SHARED_ACCOUNTS.get(process, f"carebed-{process}")


class ProvisioningError(ValueError):
    pass


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    return f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text() -> str:
    lines = ["# Written by carebed from the registry; edits are overwritten.", ""]
    for user, rules in SERVICE_ACL.items():
        lines.append(f"user {user}")
        lines.extend(f"topic {access} {topic}" for access, topic in rules)
        lines.append("")
    lines += [
        "# Every other user is a device or a hub: it may write only below its own id.",
        "pattern write carebed/v1/devices/%u/+",
        "pattern write carebed/v1/z2m/%u/#",
        "",
    ]
    return "\n".join(lines)


def write_auth_files(folder: Path, services: Mapping[str, str], devices: Mapping[str, str]) -> tuple[Path, Path]:
    """Write the password file (service and device hashes) and the ACL; both replace the old ones atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    passwd, acl = folder / "passwd", folder / "acl"
    entries = {**devices, **services}
    _write_private(passwd, "".join(f"{user}:{digest}\n" for user, digest in sorted(entries.items())))
    _write_private(acl, acl_text())
    return passwd, acl


def reload_broker(pid_file: Path) -> bool:
    """Ask a running Mosquitto to re-read its password file and ACL; False if none is running."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, path)


def new_service_passwords(folder: Path) -> dict[str, str]:
    """Fresh passwords for every service account.

    Their hashes go into the broker folder; the passwords themselves into `accounts.env`
    (readable by its owner only) for integrators who need one (the observer, ChirpStack).
    """
    passwords = {user: new_password() for user in SERVICE_ACL}
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(
        folder / SERVICES_FILE, "".join(f"{user}:{hash_password(pw)}\n" for user, pw in sorted(passwords.items()))
    )
    _write_private(folder / ACCOUNTS_FILE, "".join(f"{user}={pw}\n" for user, pw in sorted(passwords.items())))
    return passwords


def sync_broker_auth(session: Session, folder: Path, service_passwords: Mapping[str, str] | None = None) -> int:
    """Regenerate the broker's password file and ACL from the registry; returns the number of devices.

    Service accounts keep the hashes of their last passwords unless new ones are given.
    """
    unknown = set(service_passwords or {}) - set(SERVICE_ACL)
    if unknown:
        raise ProvisioningError(f"no such service account: {', '.join(sorted(unknown))}")
    services_file = folder / SERVICES_FILE
    services = (
        dict(line.split(":", 1) for line in services_file.read_text(encoding="utf-8").splitlines() if ":" in line)
        if services_file.exists()
        else {}
    )
    if service_passwords:
        services.update({user: hash_password(pw) for user, pw in service_passwords.items()})
        folder.mkdir(parents=True, exist_ok=True)
        _write_private(services_file, "".join(f"{user}:{digest}\n" for user, digest in sorted(services.items())))
    devices = device_credentials(session)
    write_auth_files(folder, services, devices)
    return len(devices)


def add_device(session: Session, device_id: str, home_id: str, kind: DeviceKind, model: str | None) -> str:
    """Register a device with a new broker password; returns the password, shown once and never stored."""
    if session.get(Home, home_id) is None:
        raise ProvisioningError(f"no home {home_id!r} in the registry")
    if session.get(Device, device_id) is not None:
        raise ProvisioningError(f"device {device_id!r} exists; rotate its password instead")
    password = new_password()
    session.add(
        Device(id=device_id, home_id=home_id, kind=kind.value, model=model, credential_hash=hash_password(password))
    )
    return password


def rotate_device(session: Session, device_id: str) -> str:
    device = _existing(session, device_id)
    password = new_password()
    device.credential_hash = hash_password(password)
    return password


def remove_device(session: Session, device_id: str) -> None:
    session.delete(_existing(session, device_id))


def _existing(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise ProvisioningError(f"no device {device_id!r} in the registry")
    return device
