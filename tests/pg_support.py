"""Real servers next to the system PostgreSQL, for tests: a PgBouncer in transaction pooling
mode and a streaming replica.

Both run as the ``postgres`` system user, so they need root and Debian's PostgreSQL 15
(``pg_ctlcluster``): what ``.ci/run`` has. Each lives in a temporary folder of its own, on a
free port, and is stopped (by the process id it wrote) and removed on exit.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_SOCKET_DIR = "/var/run/postgresql"
PG_PORT = 5432


class Unavailable(RuntimeError):
    """The machine cannot run this server (not root, no pgbouncer, no PostgreSQL 15)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_machine(*programs: Path | str) -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (the servers run as the postgres user)")
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise Unavailable("no postgres system user") from exc
    for program in programs:
        if shutil.which(str(program)) is None:
            raise Unavailable(f"{program} is not installed")


def _as_postgres(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command as the postgres user (``runuser`` keeps no shell in between)."""
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _private_dir(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    return folder


def _wait_for(url: str, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                text = log.read_text() if log.exists() else "(no log)"
                raise RuntimeError(
                    f"{what} did not answer within {timeout:g} s: {exc}\n{text[-3000:]}"
                ) from exc
            time.sleep(0.1)


def _stop_pid(pidfile: Path, timeout: float = 15) -> None:
    """Stop the process whose id ``pidfile`` holds (one this module started)."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


PGBOUNCER_INI = """\
[databases]
; every database of the system server, logged in there as postgres over its socket (peer)
* = host={socket_dir} port={pg_port} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
pidfile = {folder}/pgbouncer.pid
logfile = {folder}/pgbouncer.log
admin_users = root
"""


@contextmanager
def pgbouncer(pg_port: int = PG_PORT, socket_dir: str = PG_SOCKET_DIR) -> Iterator[str]:
    """A PgBouncer 1.18 in transaction pooling mode in front of the system PostgreSQL.

    Yields:
        A libpq URL of the bouncer for the user ``root``, without a database name (every
        database of the server is reachable: ``make_conninfo(url, dbname=...)``).

    Raises:
        Unavailable: the machine cannot run it.
    """
    _check_machine("pgbouncer", "runuser")
    folder = _private_dir("tracedb-pgbouncer-")
    port = free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(PGBOUNCER_INI.format(socket_dir=socket_dir, pg_port=pg_port, port=port, folder=folder))
    (folder / "users.txt").write_text('"root" ""\n')
    for path in folder.iterdir():
        shutil.chown(path, "postgres", "postgres")
    try:
        started = _as_postgres("pgbouncer", "-d", str(ini))
        if started.returncode != 0:
            raise RuntimeError(f"pgbouncer did not start: {started.stderr}{started.stdout}")
        url = f"postgresql://root@127.0.0.1:{port}/"
        _wait_for(url + "postgres", "pgbouncer", folder / "pgbouncer.log")
        yield url
    finally:
        _stop_pid(folder / "pgbouncer.pid")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def streaming_replica(pg_port: int = PG_PORT, socket_dir: str = PG_SOCKET_DIR) -> Iterator[str]:
    """A hot standby of the system PostgreSQL: ``pg_basebackup -R`` into a new data folder,
    started by ``pg_ctl`` on a port and a socket folder of its own.

    The base backup connects as postgres over the system server's socket, which Debian's
    ``pg_hba.conf`` allows for replication (``local replication all peer``); the standby's
    WAL receiver does the same. The standby lets any local user in (``trust`` on its private
    socket folder).

    Yields:
        A libpq URL of the standby, without a database name.

    Raises:
        Unavailable: the machine cannot run it.
    """
    _check_machine(PG_BIN / "pg_ctl", "runuser")
    folder = _private_dir("tracedb-replica-")
    data, sockets, log = folder / "data", folder / "sockets", folder / "replica.log"
    port = free_port()
    started = False
    try:
        backup = _as_postgres(
            str(PG_BIN / "pg_basebackup"),
            "-h", socket_dir, "-p", str(pg_port), "-U", "postgres",
            "-D", str(data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
            timeout=600,
        )  # fmt: skip
        if backup.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {backup.stderr}")
        # Debian keeps the configuration outside the data folder: the copy has none.
        (data / "postgresql.conf").write_text(
            f"port = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "listen_addresses = ''\n"
            "hot_standby = on\n"
            "shared_buffers = 32MB\n"
            "max_connections = 100\n"
        )
        (data / "pg_hba.conf").write_text("local all all trust\n")
        (data / "pg_ident.conf").write_text("")
        sockets.mkdir()
        for path in (data / "postgresql.conf", data / "pg_hba.conf", data / "pg_ident.conf", sockets):
            shutil.chown(path, "postgres", "postgres")
        sockets.chmod(0o700)
        result = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"
        )
        started = True
        if result.returncode != 0:
            raise RuntimeError(f"the replica did not start: {result.stdout}{result.stderr}\n{_tail(log)}")
        url = f"postgresql://root@/?host={sockets}&port={port}"
        _wait_for(_with_db(url, "postgres"), "the replica", log)
        yield url
    finally:
        if started:
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def _with_db(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def main(argv: list[str]) -> int:
    """``python tests/pg_support.py {pgbouncer|replica} COMMAND...``: start the server, run
    the command with ``{}`` replaced by the server's URL, stop the server."""
    servers = {"pgbouncer": pgbouncer, "replica": streaming_replica}
    if len(argv) < 2 or argv[0] not in servers:
        print(main.__doc__)
        return 2
    with servers[argv[0]]() as url:
        return subprocess.run([arg.replace("{}", url) for arg in argv[1:]], check=False).returncode


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
