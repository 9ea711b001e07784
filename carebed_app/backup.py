"""`carebed backup` and `carebed restore`: one private archive of what a centre cannot rebuild.

The archive (a gzipped tar, mode 0600) holds the databases and the data folder's files:

- the main database (registry, users, alerts, outbox, audit) and the chart database: SQLite
  through its online backup API, a consistent copy while the services write; PostgreSQL through
  `pg_dump` in the same snapshot in which the rows are counted;
- the data folder: the broker's password file, ACL and service accounts, detector checkpoints,
  the telemetry spool. Left out: what is rebuilt or meaningless elsewhere (logs, the broker's
  pid, configuration and in-flight queue, temporary files, the SQLite files copied above).

`restore` writes into an empty place only (no database tables, no file it would replace), so it
can never overwrite a live centre, and checks that it finds as many homes, devices, users and
alerts as the backup counted. It does not migrate: `carebed db upgrade` brings an older backup's
schema up to date.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from glob import glob
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, make_url, text

from carebed import __version__
from carebed.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
DATA = "data"
DATABASES = "databases"
# What the restore counts and compares with the backup's figures.
COUNTED = ("homes", "devices", "users", "alerts")
_SKIPPED_DIRS = {"logs"}
_SKIPPED_FILES = {"mosquitto/mosquitto.pid", "mosquitto/mosquitto.conf", "mosquitto/mosquitto.db"}
_SKIPPED_SUFFIXES = (".tmp", "-wal", "-shm", "-journal")


class BackupError(Exception):
    """What went wrong, in one line a person can act on."""


@dataclass(frozen=True)
class Database:
    name: str  # "main" or "charts"
    url: str

    @property
    def kind(self) -> str:
        return "sqlite" if make_url(self.url).get_backend_name() == "sqlite" else "postgresql"

    @property
    def sqlite_path(self) -> Path:
        return Path(make_url(self.url).database or "").resolve()

    @property
    def member(self) -> str:
        return f"{DATABASES}/{self.name}." + ("sqlite3" if self.kind == "sqlite" else "pgdump")


def databases(settings: Settings) -> list[Database]:
    """The main database, and the chart database when it is a database of its own."""
    main = Database("main", settings.sqlalchemy_url)
    if settings.charts_sqlalchemy_url == settings.sqlalchemy_url:
        return [main]
    return [main, Database("charts", settings.charts_sqlalchemy_url)]


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Write the archive to `target` (never replacing a file); return its manifest."""
    if target.exists():
        raise BackupError(f"{target} exists; give a new file name")
    data_dir = settings.data_dir.resolve()
    if target.resolve().is_relative_to(data_dir):
        raise BackupError(f"write the backup outside the data folder {data_dir}, or each backup holds the last")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".carebed-backup-") as staging:
        stage = Path(staging)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "carebed": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "databases": {},
        }
        for database in databases(settings):
            dump = stage / PurePosixPath(database.member).name
            if database.kind == "sqlite":
                _sqlite_copy(database.sqlite_path, dump)
                counts = _counts_at(f"sqlite:///{dump}") if database.name == "main" else {}
            else:
                counts = _pg_dump(database.url, dump, count=database.name == "main")
            manifest["databases"][database.name] = {"kind": database.kind, "member": database.member, **counts}
        skipped = {db.sqlite_path for db in databases(settings) if db.kind == "sqlite"}
        manifest["files"] = []
        partial = stage / "archive"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:
                for database in databases(settings):
                    archive.add(stage / PurePosixPath(database.member).name, arcname=database.member)
                for path in sorted(_data_files(data_dir, skipped)):
                    relative = str(path.relative_to(data_dir))
                    try:
                        archive.add(path, arcname=f"{DATA}/{relative}", recursive=False)
                    except FileNotFoundError:
                        continue  # gone since it was listed: a replayed spool batch, a replaced checkpoint part
                    manifest["files"].append(relative)
                _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=1).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)
    return manifest


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore the archive into an empty data folder and empty databases; return its manifest."""
    with _open(source) as archive:
        members = {member.name: member for member in archive.getmembers()}
        for name, member in members.items():
            _check_member(name, member)
        manifest = _manifest(archive, members)
        targets = {database.name: database for database in databases(settings)}
        for name, saved in manifest["databases"].items():
            target = targets.get(name)
            if target is None or target.kind != saved["kind"]:
                raise BackupError(
                    f"the backup's {name} database is {saved['kind']}; point "
                    f"{'CAREBED_DATABASE_URL' if name == 'main' else 'CAREBED_CHARTS_DATABASE_URL'} "
                    "at an empty one of that kind"
                )
            _check_empty(target)
        data_dir = settings.data_dir.resolve()
        files = {
            data_dir / PurePosixPath(name).relative_to(DATA): member
            for name, member in members.items()
            if name.startswith(f"{DATA}/")
        }
        present = sorted(str(path) for path in files if path.exists())
        if present:
            raise BackupError(f"{present[0]} exists; restore into an empty data folder (CAREBED_DATA_DIR)")
        for name, saved in manifest["databases"].items():
            _restore_database(archive, members[saved["member"]], targets[name])
        for path, member in files.items():
            _extract_private(archive, member, path)
    found = _counts_at(targets["main"].url)
    expected = {table: manifest["databases"]["main"][table] for table in COUNTED}
    if found != expected:
        raise BackupError(f"restored {found}, but the backup counted {expected}")
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    counts = manifest["databases"]["main"]
    tables = ", ".join(f"{counts[table]} {table}" for table in COUNTED)
    return f"{tables}, {len(manifest['files'])} files of the data folder"


def _open(source: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(source, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{source} is not a carebed backup: {exc}") from None


def _sqlite_copy(path: Path, dump: Path) -> None:
    if not path.is_file():
        raise BackupError(f"no database at {path}; is CAREBED_DATA_DIR (or CAREBED_DATABASE_URL) right?")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(dump)
    try:
        with copy:
            source.backup(copy)  # one step: a consistent snapshot, writers carry on beside it (WAL)
    finally:
        copy.close()
        source.close()


def _counts_at(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return _counts(connection)
    finally:
        engine.dispose()


def _counts(connection: Connection) -> dict[str, int]:
    tables = set(inspect(connection).get_table_names())
    return {
        table: connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0 if table in tables else 0
        for table in COUNTED
    }


def _pg_binary(name: str) -> str:
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    found = shutil.which(name) or (candidates[-1] if candidates else None)
    if found is None:
        raise BackupError(f"{name} is not installed (apt-get install postgresql-client)")
    return found


def _pg_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and an environment that carries it (not the command line)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _pg_dump(url: str, dump: Path, count: bool) -> dict[str, int]:
    """Dump in the snapshot in which the rows are counted, so the restore can check what it finds."""
    uri, env = _pg_target(url)
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as connection, connection.begin():
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            counts = _counts(connection) if count else {}
            _run([_pg_binary("pg_dump"), "--format=custom", f"--snapshot={snapshot}", f"--file={dump}", uri], env)
    finally:
        engine.dispose()
    return counts


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{Path(command[0]).name} failed: {detail}")


def _data_files(data_dir: Path, skipped: set[Path]) -> Iterator[Path]:
    if not data_dir.is_dir():
        return
    for folder, dirs, names in os.walk(data_dir):
        here = Path(folder)
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in names:
            path = here / name
            relative = str(path.relative_to(data_dir))
            if (
                path.is_file()
                and not path.is_symlink()
                and relative not in _SKIPPED_FILES
                and not name.endswith(_SKIPPED_SUFFIXES)
                and path.resolve() not in skipped
            ):
                yield path


def _add_bytes(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(content), 0o600, int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(content))


def _check_member(name: str, member: tarfile.TarInfo) -> None:
    """Only plain files below the archive's own folders: no links, devices, absolute paths or `..`."""
    path = PurePosixPath(name)
    if (
        not member.isfile()
        or path.is_absolute()
        or ".." in path.parts
        or not (name == MANIFEST or path.parts[0] in (DATA, DATABASES))
    ):
        raise BackupError(f"refusing the backup: it holds {name!r}, which carebed never writes")


def _manifest(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, Any]:
    if MANIFEST not in members:
        raise BackupError("not a carebed backup: no manifest.json")
    handle = archive.extractfile(members[MANIFEST])
    manifest: dict[str, Any] = json.load(handle) if handle else {}
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r}; this carebed reads format {FORMAT}")
    for saved in manifest["databases"].values():
        if saved["member"] not in members:
            raise BackupError(f"the backup is incomplete: {saved['member']} is missing")
    return manifest


def _check_empty(database: Database) -> None:
    if database.kind == "sqlite":
        path = database.sqlite_path
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(f"{path} exists; restore into an empty data folder (CAREBED_DATA_DIR)")
        return
    engine = create_engine(database.url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    except Exception as exc:
        raise BackupError(f"cannot reach the {database.name} database: {exc}") from None
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the {database.name} database already has tables ({', '.join(sorted(tables)[:3])}, ...); "
            "restore into an empty database (dropdb and createdb)"
        )


def _restore_database(archive: tarfile.TarFile, member: tarfile.TarInfo, database: Database) -> None:
    if database.kind == "sqlite":
        _extract_private(archive, member, database.sqlite_path)
        return
    with tempfile.TemporaryDirectory(prefix="carebed-restore-") as staging:
        dump = Path(staging) / "dump"
        _extract_private(archive, member, dump)
        uri, env = _pg_target(database.url)
        _run(
            [_pg_binary("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             f"--dbname={uri}", str(dump)],
            env,
        )  # fmt: skip


def _extract_private(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    """Write one file readable by its owner only, in folders only its owner may enter."""
    _private_dirs(path.parent)
    source = archive.extractfile(member)
    if source is None:
        raise BackupError(f"cannot read {member.name} from the backup")
    partial = path.with_name(f".{path.name}.restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _private_dirs(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700)
