"""The CLI fails clearly: one line on what is wrong and how to fix it, a non-zero exit, no traceback, no loop.

Each test runs the real `carebed` command as a subprocess, in a private folder, with no CAREBED_*
variable of the caller's environment.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from alembic import command

from carebed.db import History, _alembic_config, make_engine, make_sessionmaker, upgrade
from carebed.registry import RegistryFile
from carebed.settings import CONFIG_ERROR_EXIT, ConfigurationError, Settings
from carebed_app.broker import Mosquitto, free_port
from carebed_app.stack import Child, Stack
from simulators.homes import build_registry

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("CAREBED_", "TWILIO_"))}


def carebed(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebed", *args],
        env={**CLEAN_ENV, **(env or {})},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error as the user sees it: exit code of a configuration error, one line on stderr, no traceback."""
    assert result.returncode == CONFIG_ERROR_EXIT, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_misspelled_setting_is_refused_with_the_closest_valid_name(tmp_path: Path) -> None:
    line = one_clear_line(carebed("admin", "list", cwd=tmp_path, env={"CAREBED_HTTP_PROT": "9000"}))
    assert "CAREBED_HTTP_PROT" in line and "did you mean CAREBED_HTTP_PORT?" in line


def test_a_sourced_accounts_env_is_not_taken_for_a_typo(tmp_path: Path) -> None:
    """`set -a; . var/mosquitto/accounts.env` puts CAREBED_{ACCOUNT}_PASSWORD names in the environment."""
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var"), "CAREBED_OBSERVER_PASSWORD": "x", "CAREBED_GATEWAY_PASSWORD": "y"}
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    env["CAREBED_OBSERVER_PASWORD"] = "z"
    line = one_clear_line(carebed("admin", "list", cwd=tmp_path, env=env))
    assert (
        "unknown setting CAREBED_OBSERVER_PASWORD in the environment: did you mean CAREBED_OBSERVER_PASSWORD?" in line
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CAREBED_HTTP_PORT", "eighty", "valid integer"),
        ("CAREBED_MQTT_PORT", "70000", "less than or equal to 65535"),
        ("CAREBED_TIMEZONE", "Asia/Beijing", "unknown time zone 'Asia/Beijing'; use an IANA name"),
        ("CAREBED_DATABASE_URL", "postgres-ql://carebed:s3cret@db/carebed", "not a database URL carebed can use"),
        ("CAREBED_DATABASE_URL", "not a url", "not a database URL carebed can use"),
    ],
)
def test_a_bad_value_gives_one_readable_line(tmp_path: Path, name: str, value: str, says: str) -> None:
    line = one_clear_line(carebed("db", "upgrade", cwd=tmp_path, env={name: value}))
    assert line.startswith(f"Error: {name}") and says in line and "fix or unset it" in line
    shown = name != "CAREBED_DATABASE_URL"  # a database URL may hold a password
    assert (f"={value!r}" in line) is shown


def test_a_secret_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    line = one_clear_line(carebed("admin", "list", cwd=tmp_path, env={"CAREBED_BROKER_PASSWORDS": "hunter2-secret"}))
    assert "CAREBED_BROKER_PASSWORDS: not valid JSON" in line and "hunter2" not in line


def test_the_data_dir_is_honoured_and_nothing_is_created_silently(tmp_path: Path) -> None:
    data = tmp_path / "centre"
    refused = one_clear_line(
        carebed("devices", "add", "w1", "--home", "h1", "--kind", "wearable", "--data-dir", str(data), cwd=tmp_path)
    )
    assert f"no database at {data / 'carebed.db'}" in refused and "run `carebed db upgrade`" in refused
    assert not (tmp_path / "var").exists() and not data.exists()

    assert carebed("db", "upgrade", "--data-dir", str(data), cwd=tmp_path).returncode == 0
    assert (data / "carebed.db").exists() and not (tmp_path / "var").exists()
    by_variable = carebed("admin", "list", cwd=tmp_path, env={"CAREBED_DATA_DIR": str(data)})
    assert by_variable.returncode == 0 and "no console users" in by_variable.stderr
    assert not (tmp_path / "var").exists()


def test_a_schema_behind_is_not_migrated_silently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'carebed.db'}"
    command.upgrade(_alembic_config(url, History.MAIN), "0005_escalation")
    env = {"CAREBED_DATABASE_URL": url}
    line = one_clear_line(carebed("admin", "list", cwd=tmp_path, env=env))
    assert "schema is at revision 0005_escalation" in line and "run `carebed db upgrade`" in line
    line = one_clear_line(carebed("registry", "export", cwd=tmp_path, env=env))
    assert "run `carebed db upgrade`" in line
    port = {"CAREBED_HTTP_PORT": str(free_port())}
    line = one_clear_line(carebed("alerting", "--data-dir", str(tmp_path), cwd=tmp_path, env={**env, **port}))
    assert "schema is at revision 0005_escalation" in line and "run `carebed db upgrade`" in line
    assert not (tmp_path / "carebed-charts.db").exists(), "the service created the chart database itself"
    upgraded = carebed("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0 and "database schema is current" in upgraded.stdout
    assert carebed("admin", "list", cwd=tmp_path, env=env).returncode == 0


def test_up_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        result = carebed("up", "--port", str(port), "--data-dir", str(tmp_path / "var"), cwd=tmp_path)
    line = one_clear_line(result)
    assert f"port {port} on 127.0.0.1 is in use by another program" in line and "--port" in line
    assert "running" not in result.stdout
    assert not (tmp_path / "var" / "mosquitto" / "mosquitto.pid").exists()


def test_the_supervisor_gives_up_on_a_child_that_stops_on_a_configuration_error(tmp_path: Path) -> None:
    """No "exited with 78; restarting" loop: `carebed up` stops and says why, from the child's last words."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'carebed.db'}")
    upgrade(settings.sqlalchemy_url, settings.charts_sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    child = Child(
        "alerting", ["db", "upgrade"], tmp_path / "alerting.log", {**CLEAN_ENV, "CAREBED_TIMEZONE": "Mars/Base"}
    )
    broker = Mosquitto(tmp_path / "mosquitto", free_port())
    broker.start()
    child.start()
    stopping = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigurationError, match=r"alerting stopped: Error: CAREBED_TIMEZONE='Mars/Base'"):
            Stack(settings, None, None)._supervise(broker, [child], make_sessionmaker(engine), stopping)
    finally:
        stopping.set()
        child.stop()
        broker.stop()
        engine.dispose()
    assert time.monotonic() - started < 30
    assert child.process is not None and child.process.returncode == CONFIG_ERROR_EXIT


def test_admin_list_shows_users_without_their_passwords(tmp_path: Path) -> None:
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var")}
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    for name, role, area in (("wang", "operator", "人民路"), ("li", "supervisor", None)):
        extra = ["--area", area] if area else []
        created = carebed(
            "admin", "create", name, "--role", role, *extra, "--password", "a long passphrase", cwd=tmp_path, env=env
        )
        assert created.returncode == 0, created.stderr
    listed = carebed("admin", "list", cwd=tmp_path, env=env)
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[:3] for row in rows] == [["li", "supervisor", "-"], ["wang", "operator", "人民路"]]
    assert "passphrase" not in listed.stdout


def test_registry_export_round_trips_with_registry_load(tmp_path: Path) -> None:
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var")}
    original = build_registry(homes=4, seed=3)
    source = tmp_path / "homes.yaml"
    source.write_text(yaml.safe_dump(original.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    loaded = carebed("registry", "load", str(source), "--passwords", str(tmp_path / "pw.csv"), cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr
    exported = carebed("registry", "export", "-o", str(tmp_path / "export.yaml"), cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    again = RegistryFile.model_validate(yaml.safe_load((tmp_path / "export.yaml").read_text(encoding="utf-8")))
    for home in original.homes:
        home.devices.sort(key=lambda d: d.id)
    assert again == original
    assert "mqtt_password" not in (tmp_path / "export.yaml").read_text(encoding="utf-8")
    # Loading the export again changes nothing and grants no new password.
    reloaded = carebed("registry", "load", str(tmp_path / "export.yaml"), cwd=tmp_path, env=env)
    assert reloaded.returncode == 0 and "new device passwords" not in reloaded.stdout


def test_registry_load_writes_new_device_passwords_to_an_owner_only_file_once(tmp_path: Path) -> None:
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var")}
    source = tmp_path / "homes.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "homes": [
                    {
                        "id": "h1",
                        "residents": [{"name": "Wang"}],
                        "devices": [
                            {"id": "watch-1", "kind": "wearable"},
                            {"id": "hub-1", "kind": "hub"},
                            {"id": "leak-1", "kind": "leak_sensor", "via": "hub-1"},
                            {"id": "a1b2c3d4e5f60708", "kind": "water_meter", "via": "chirpstack"},
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    target = tmp_path / "passwords.csv"
    loaded = carebed("registry", "load", str(source), "--passwords", str(target), cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert f"2 new device passwords written to {target}" in loaded.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = [line.split(",") for line in target.read_text(encoding="utf-8").splitlines()]
    assert [row[:2] for row in rows] == [["device_id", "home_id"], ["hub-1", "h1"], ["watch-1", "h1"]]
    assert all(len(row[2]) >= 40 for row in rows[1:])
    for row in rows[1:]:
        assert row[2] not in loaded.stdout + loaded.stderr  # written once, to the file only
    listed = carebed("devices", "list", cwd=tmp_path, env=env).stdout.splitlines()
    assert sorted(listed) == [
        "a1b2c3d4e5f60708\th1\twater_meter\tchirpstack\t-",
        "hub-1\th1\thub\t-\tpassword",
        "leak-1\th1\tleak_sensor\thub-1\t-",
        "watch-1\th1\twearable\t-\tpassword",
    ]
    again = carebed("registry", "load", str(source), "--passwords", str(target), cwd=tmp_path, env=env)
    assert again.returncode == 0 and "new device passwords" not in again.stdout  # nobody new: no file needed


def test_a_password_file_is_never_overwritten(tmp_path: Path) -> None:
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var")}
    source = tmp_path / "homes.yaml"
    source.write_text(
        yaml.safe_dump(
            {"homes": [{"id": "h1", "residents": [{"name": "W"}], "devices": [{"id": "w1", "kind": "wearable"}]}]}
        ),
        encoding="utf-8",
    )
    target = tmp_path / "passwords.csv"
    target.write_text("earlier passwords\n", encoding="utf-8")
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    refused = carebed("registry", "load", str(source), "--passwords", str(target), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and refused.stderr == f"Error: {target} exists: give another file with --passwords\n"
    assert target.read_text(encoding="utf-8") == "earlier passwords\n"
    assert carebed("devices", "list", cwd=tmp_path, env=env).stdout == ""  # nothing imported either


def test_devices_add_via_a_hub_needs_the_hub_and_gives_no_password(tmp_path: Path) -> None:
    env = {"CAREBED_DATA_DIR": str(tmp_path / "var")}
    source = tmp_path / "homes.yaml"
    source.write_text(yaml.safe_dump({"homes": [{"id": "h1", "residents": [{"name": "W"}]}]}), encoding="utf-8")
    assert carebed("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert carebed("registry", "load", str(source), cwd=tmp_path, env=env).returncode == 0
    add = ("devices", "add", "leak-1", "--home", "h1", "--kind", "leak_sensor", "--via", "hub-1")
    missing = carebed(*add, cwd=tmp_path, env=env)
    assert missing.returncode != 0 and "no hub 'hub-1' in the registry: add it first" in missing.stderr
    hub = carebed("devices", "add", "hub-1", "--home", "h1", "--kind", "hub", cwd=tmp_path, env=env)
    assert "MQTT password (shown once" in hub.stdout
    added = carebed(*add, cwd=tmp_path, env=env)
    assert added.returncode == 0 and "speaks through hub-1; no password of its own" in added.stdout
    assert "MQTT password" not in added.stdout
    assert "leak-1\th1\tleak_sensor\thub-1\t-" in carebed("devices", "list", cwd=tmp_path, env=env).stdout


def test_up_lists_the_errors_of_its_registry_file_and_starts_nothing(tmp_path: Path) -> None:
    source = tmp_path / "homes.yaml"
    home = {"id": "h1", "residents": [{"name": "W"}], "responders": [{"name": "Li", "phone": "13912345678"}]}
    source.write_text(yaml.safe_dump({"homes": [home]}), encoding="utf-8")
    result = carebed("up", "--registry", str(source), "--data-dir", str(tmp_path / "var"), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{source}: nothing imported, the file has errors:" in result.stderr
    assert "write + and the country code first (E.164)" in result.stderr
    assert not (tmp_path / "var").exists()
