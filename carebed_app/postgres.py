"""A private PostgreSQL server for the tests and the benchmarks: own folder, free loopback port, not the system one."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from carebed_app.broker import free_port


def _run_as_postgres(command: list[str]) -> None:
    """initdb refuses to run as root, so as root the server runs as the 'postgres' user."""
    if os.geteuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(command)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextmanager
def postgres_server(durable: bool = True) -> Iterator[str]:
    """Yield a SQLAlchemy URL prefix, ``postgresql+psycopg://app@127.0.0.1:PORT/``.

    ``durable`` keeps PostgreSQL's own defaults, as a deployment would; the tests turn fsync off
    because they never outlive a crash of the machine.
    """
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(candidates[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="carebed-pg-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"
    _run_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "app", "--auth=trust", "-E", "UTF8"])
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1" + ("" if durable else " -c fsync=off")
    _run_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"])
    try:
        yield f"postgresql+psycopg://app@127.0.0.1:{port}/"
    finally:
        _run_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the server; returns its SQLAlchemy URL."""
    engine = create_engine(server_url + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server_url + name
