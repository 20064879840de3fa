"""A real PostgreSQL server for the tests and benchmarks: ``initdb`` into a folder, started on a free
loopback port (and a socket in that folder), stopped at the end. As root it runs as the
``postgres`` user (the server refuses root), as Debian's ``postgresql`` package sets up.

    with postgres(tmp_dir) as url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        ...

``Unavailable`` says in one line why no server could start (no binaries, no ``postgres`` user,
no driver); ``.ci/run`` installs Debian's ``postgresql`` so that CI runs these tests.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Iterator


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (the reason in one line)."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise Unavailable(f"no {name} (install PostgreSQL: apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres(folder: Path) -> Iterator[str]:
    """A fresh server with its data in ``folder``; yields its SQLAlchemy URL (psycopg 3)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable('no PostgreSQL driver (pip install "multinet[postgres]")') from None
    initdb, _ = _binary("initdb"), _binary("pg_ctl")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if as_user:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", _free_port()

    def call(*args: str) -> None:
        r = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise Unavailable(f"{Path(args[0]).name} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    call(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    with open(data / "postgresql.conf", "a") as conf:  # the server's own file: a start again keeps them
        conf.write(f"port = {port}\nunix_socket_directories = '{folder}'\nlisten_addresses = '127.0.0.1'\n"
                   "fsync = off\nmax_connections = 200\n")
    server(folder, "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server(folder, "stop")


def server(folder: Path, action: str) -> None:
    """Stop (as a crash would: immediate) or start again the server that ``postgres(folder)`` started."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    args = ["-m", "immediate", "-w", "stop"] if action == "stop" else ["-l", str(Path(folder) / "server.log"), "-w",
                                                                        "start"]
    r = subprocess.run([*as_user, _binary("pg_ctl"), "-D", str(Path(folder) / "data"), *args], capture_output=True,
                       text=True, timeout=120)
    if r.returncode and action == "start":
        raise Unavailable(f"pg_ctl start failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
