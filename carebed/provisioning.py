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
import csv
import hashlib
import io
import os
import secrets
import signal
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebed.registry import Device, Home, device_credentials
from carebed.schemas import DeviceKind, utc_now
from carebed.topics import CHIRPSTACK_UPLINKS, EVENTS, HEALTH_SUBSCRIPTION, PREFIX, READINGS, Z2M_PREFIX, health

# Mosquitto 2's own format: PBKDF2-HMAC-SHA512, "$7$iterations$salt$hash". Passwords are random
# 32-byte tokens, so Mosquitto's default of 101 iterations costs nothing in strength and keeps a
# reconnect storm of a whole city's devices cheap for the broker.
_ITERATIONS = 101
# `via` of a device whose uplinks a LoRaWAN network server relays (gateway.adapters.chirpstack.VIA).
CHIRPSTACK = "chirpstack"
SERVICES_FILE = "services.passwd"
ACCOUNTS_FILE = "accounts.env"

SERVICE_ACL: dict[str, tuple[tuple[str, str], ...]] = {
    "carebed-gateway": (
        ("read", f"{PREFIX}/devices/#"),
        ("read", f"{Z2M_PREFIX}/#"),  # zigbee2mqtt hubs
        ("read", CHIRPSTACK_UPLINKS),  # a LoRaWAN network server's uplinks
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
        ("write", f"{PREFIX}/confirmations/#"),
        ("read", HEALTH_SUBSCRIPTION),
    ),
    # Publishes for many simulated devices over one connection: for demos, tests and benchmarks only.
    # In every format `carebed simulate --format` speaks (as the devices, their hubs, a network server).
    "carebed-simulator": (
        ("write", f"{PREFIX}/devices/#"),
        ("write", f"{Z2M_PREFIX}/#"),
        ("write", CHIRPSTACK_UPLINKS),
        ("read", f"{PREFIX}/confirmations/#"),
    ),
    # A LoRaWAN network server's MQTT integration (ChirpStack v4 uplinks).
    "carebed-chirpstack": (
        ("write", "application/+/device/+/event/+"),
        ("read", "application/+/device/+/command/+"),  # it subscribes for downlinks; nobody may write there
    ),
    # Read-only view of everything, for integrators watching their data arrive and being judged.
    "carebed-observer": (("read", f"{PREFIX}/#"),),
}

# The broker takes each login's user name as its client id (`use_username_as_clientid`), so a
# session can be taken over only by its own account. A service with several connections has one
# account per connection, named as the connection's client id `{service}-{lane}`; they share the
# service's password and ACL (the login rule is in carebed.mqtt.login_name).
CONNECTIONS: dict[str, tuple[str, ...]] = {
    "carebed-gateway": ("carebed-gateway-events",),
    "carebed-detector": ("carebed-detector-events", "carebed-detector-feedback", "carebed-detector-alarms"),
    "carebed-alerting": ("carebed-alerting-activity", "carebed-alerting-health"),
}

# A lane that runs in a process of its own is still part of its service: same password.
_SHARED_ACCOUNTS = {"alarms": "carebed-detector", "gateway-events": "carebed-gateway"}


def service_account(process: str) -> str:
    """The service (and so the password) a carebed process logs in with."""
    return _SHARED_ACCOUNTS.get(process, f"carebed-{process}")


def accounts_of(service: str) -> tuple[str, ...]:
    """Every broker account of a service: its own and one per further connection."""
    return (service, *CONNECTIONS.get(service, ()))


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
    for service, rules in SERVICE_ACL.items():
        for user in accounts_of(service):
            lines.append(f"user {user}")
            lines.extend(f"topic {access} {topic}" for access, topic in rules)
            lines.append("")
    lines += [
        "# Every other user is a device or a hub: it may write only below its own id.",
        "pattern write carebed/v1/devices/%u/+",
        # zigbee2mqtt subscribes to its whole base topic (for /set requests), so a hub also reads its branch.
        f"pattern readwrite {Z2M_PREFIX}/%u/#",
        "pattern read carebed/v1/confirmations/%u",
        "",
    ]
    return "\n".join(lines)


def write_auth_files(folder: Path, services: Mapping[str, str], devices: Mapping[str, str]) -> tuple[Path, Path]:
    """Write the password file (service and device hashes) and the ACL; both replace the old ones atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    passwd, acl = folder / "passwd", folder / "acl"
    entries = {**devices, **{user: digest for service, digest in services.items() for user in accounts_of(service)}}
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
    _write_private(
        folder / ACCOUNTS_FILE, "".join(f"{account_variable(u)}={pw}\n" for u, pw in sorted(passwords.items()))
    )
    return passwords


def account_variable(account: str) -> str:
    """`carebed-chirpstack` -> `CAREBED_CHIRPSTACK_PASSWORD`: a name a shell can `source`."""
    return f"{account.upper().replace('-', '_')}_PASSWORD"


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


def add_device(
    session: Session, device_id: str, home_id: str, kind: DeviceKind, model: str | None, via: str | None = None
) -> str | None:
    """Register a device; returns its new broker password (shown once, never stored), or None for a device
    that speaks through a zigbee2mqtt hub or ChirpStack (`via`) and never logs in itself."""
    if session.get(Home, home_id) is None:
        raise ProvisioningError(f"no home {home_id!r} in the registry")
    if session.get(Device, device_id) is not None:
        raise ProvisioningError(f"device {device_id!r} exists; rotate its password instead")
    if via is not None and via != CHIRPSTACK:
        hub = session.get(Device, via)
        if hub is None or hub.kind != DeviceKind.HUB:
            raise ProvisioningError(
                f"no hub {via!r} in the registry: add it first (--kind hub), or use --via {CHIRPSTACK}"
            )
    password = None if via is not None else new_password()
    session.add(
        Device(
            id=device_id,
            home_id=home_id,
            kind=kind.value,
            model=model,
            via=via,
            credential_hash=hash_password(password) if password else None,
        )
    )
    return password


def grant_missing_passwords(session: Session) -> dict[str, tuple[str, str]]:
    """A broker password for every device that logs in itself (not via a hub or ChirpStack) and has none yet.

    Returns {device id: (home id, password)}; the passwords are not stored, only their hashes.
    """
    granted = {}
    for device in session.scalars(
        select(Device).where(Device.credential_hash.is_(None), Device.via.is_(None)).order_by(Device.id)
    ):
        password = new_password()
        device.credential_hash = hash_password(password)
        granted[device.id] = (device.home_id, password)
    return granted


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


def password_file_path(data_dir: Path) -> Path:
    return data_dir / f"device-passwords-{utc_now():%Y%m%dT%H%M%SZ}.csv"


def write_password_file(path: Path, granted: Mapping[str, tuple[str, str]]) -> None:
    """New device passwords as an owner-only CSV (device_id, home_id, mqtt_password), written once.

    An existing file is refused, never overwritten or widened: it may hold passwords not yet handed out.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["device_id", "home_id", "mqtt_password"])
    writer.writerows([device_id, home_id, password] for device_id, (home_id, password) in granted.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ProvisioningError(f"{path} exists: give another file with --passwords") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text.getvalue())
