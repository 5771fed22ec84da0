"""Conversation state in PostgreSQL through LangGraph's ``PostgresSaver``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from tracedb.server import use_prepared_statements

# PostgresSaver runs its statements outside explicit transactions and reads rows as dicts.
# prepare_threshold=0 prepares every statement at once, as LangGraph advises; behind a
# transaction pooler (TRACEDB_PREPARE=0) nothing may be prepared: None.
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
# Any constant works; it only has to be the same in every process that sets up the tables.
_SETUP_LOCK = 0x636B70745F7365
# Sent without parameters, so over the simple query protocol: a statement with parameters
# leaves its portal, and the portal's snapshot, open until the transaction ends, and CREATE
# INDEX CONCURRENTLY would wait for that snapshot.
_TRY_SETUP_LOCK = sql.SQL("SELECT pg_try_advisory_xact_lock({})").format(sql.Literal(_SETUP_LOCK))


def connection_kwargs(prepare: bool | None = None) -> dict[str, Any]:
    """Arguments for connections that ``PostgresSaver`` can use: :data:`CONNECTION_KWARGS`,
    without prepared statements when ``prepare`` (default ``TRACEDB_PREPARE``) is off."""
    if use_prepared_statements(prepare):
        return dict(CONNECTION_KWARGS)
    return {**CONNECTION_KWARGS, "prepare_threshold": None}


def _up_to_date(conn: psycopg.Connection[DictRow]) -> bool:
    if conn.execute("SELECT to_regclass('checkpoint_migrations') AS t").fetchone()["t"] is None:  # type: ignore[index]
        return False
    row = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()
    return row is not None and row["v"] == len(PostgresSaver.MIGRATIONS) - 1


@contextmanager
def _setup_lock(conninfo: str, kwargs: dict[str, Any], timeout: float) -> Iterator[None]:
    """Hold the lock that serialises setups across processes while the block runs.

    Two processes creating the tables at once collide on the catalog. The lock is a
    transaction-level advisory lock held by an open transaction on a connection of its own,
    so that it also holds behind a pooler in transaction mode (a session-level lock would
    stay on whichever server connection took it). It is polled, never awaited: the setup
    runs CREATE INDEX CONCURRENTLY, which waits for every transaction that holds a snapshot,
    and a statement blocked in pg_advisory_xact_lock would hold one (a deadlock). The
    holder's transaction is idle while the setup runs and holds no snapshot (see
    :data:`_TRY_SETUP_LOCK`).
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    options = {k: v for k, v in kwargs.items() if k not in ("autocommit", "row_factory", "prepare_threshold")}
    with psycopg.connect(
        conninfo, connect_timeout=max(1, int(timeout)), prepare_threshold=None, **options
    ) as lock_conn:
        while True:
            row = lock_conn.execute(_TRY_SETUP_LOCK).fetchone()
            if row is not None and row[0]:
                break
            lock_conn.rollback()  # wait outside any transaction
            if time.monotonic() > deadline:
                raise TimeoutError(f"another process kept the checkpoint tables locked for {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            yield
        finally:
            lock_conn.rollback()  # ends the transaction and with it the lock


def _setup(conn: psycopg.Connection[DictRow], timeout: float, conninfo: str, kwargs: dict[str, Any]) -> None:
    if _up_to_date(conn):
        return
    with _setup_lock(conninfo, kwargs, timeout):
        if not _up_to_date(conn):
            PostgresSaver(conn).setup()


def _own_conninfo(conn: psycopg.Connection[Any]) -> tuple[str, dict[str, Any]]:
    """How to open another connection like ``conn`` (its DSN leaves the password out)."""
    password = conn.info.password
    return conn.info.dsn, ({"password": password} if password else {})


def _check_connection(conn: psycopg.Connection[Any]) -> None:
    if not conn.autocommit or conn.row_factory is not dict_row or conn.prepare_threshold not in (0, None):
        raise ValueError(
            "PostgresSaver needs a connection opened with autocommit=True, "
            "prepare_threshold=0 (or None behind a transaction pooler) and row_factory=dict_row"
        )


@contextmanager
def make_checkpointer(
    conninfo: str | psycopg.Connection[DictRow] | ConnectionPool[psycopg.Connection[DictRow]],
    *,
    max_size: int = 1,
    timeout: float = 10.0,
) -> Iterator[PostgresSaver]:
    """A ``PostgresSaver`` with its tables set up, closed again on exit.

    Args:
        conninfo: a libpq URL (use the trace database's URL so conversations and traces
            live together), or an open connection or pool made with
            :func:`connection_kwargs`; those stay open on exit, their owner closes them.
        max_size: with a URL, ``1`` opens one connection (enough for one process running
            one conversation at a time); more opens a pool of that size, for servers that
            run conversations concurrently.
        timeout: seconds to wait for the server, and for another process setting up the tables.

    Yields:
        The checkpointer, ready for ``build_graph(checkpointer=...)``.

    Raises:
        ValueError: when a given connection lacks the settings ``PostgresSaver`` needs.
        psycopg.OperationalError: when the server cannot be reached.
        TimeoutError: when another process holds the setup lock for longer than ``timeout``.
    """
    if isinstance(conninfo, psycopg.Connection):
        _check_connection(conninfo)
        _setup(conninfo, timeout, *_own_conninfo(conninfo))
        yield PostgresSaver(conninfo)
    elif isinstance(conninfo, ConnectionPool):
        with conninfo.connection() as conn:
            _check_connection(conn)
            _setup(conn, timeout, conninfo.conninfo, conninfo.kwargs)
        yield PostgresSaver(conninfo)
    elif max_size <= 1:
        with psycopg.connect(conninfo, connect_timeout=max(1, int(timeout)), **connection_kwargs()) as conn:
            _setup(conn, timeout, conninfo, {})
            yield PostgresSaver(conn)
    else:
        pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs=connection_kwargs(),
            open=False,
            check=ConnectionPool.check_connection,
            timeout=timeout,
        )
        pool.open(wait=True, timeout=timeout)
        try:
            with pool.connection() as conn:
                _setup(conn, timeout, conninfo, {})
            yield PostgresSaver(pool)
        finally:
            pool.close()
