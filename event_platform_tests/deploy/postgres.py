"""A throwaway PostgreSQL server for tests: Debian's packages, a cluster in a temp dir, a free port.

Installed with apt-get when missing (we run as root in CI); where that cannot happen the caller
skips with the reason. Every step is quick when the server is already installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from event_platform_tests.debian import PackageUnavailable, apt_install

POSTGRES_ROOT = Path("/usr/lib/postgresql")


class PostgresUnavailable(PackageUnavailable):
    """PostgreSQL is installed but not usable as the tests need it."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    database: str
    username: str


def server_binaries() -> Path | None:
    """The newest installed version's bin/ holding initdb and pg_ctl."""
    found = sorted(POSTGRES_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def ensure_installed() -> Path:
    binaries = server_binaries()
    if binaries:
        return binaries
    apt_install("postgresql")
    binaries = server_binaries()
    if not binaries:
        raise PostgresUnavailable(f"apt-get installed postgresql but no initdb is under {POSTGRES_ROOT}.")
    return binaries


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(database: str = "dagster") -> Iterator[PostgresServer]:
    """initdb a cluster in a temp dir, start it on 127.0.0.1, create `database`; stop and remove it."""
    binaries = ensure_installed()
    # The server refuses to run as root: as root, run it as the `postgres` user Debian creates.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="event-platform-pg-"))
    if as_user:
        shutil.chown(root, user="postgres", group="postgres")
    data, port = root / "data", free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        server_options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", server_options,
            "-w", "start")  # fmt: skip
        try:
            run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
            yield PostgresServer(host="127.0.0.1", port=port, database=database, username="postgres")
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
