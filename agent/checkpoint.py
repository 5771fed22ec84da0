"""Conversation state in PostgreSQL through LangGraph's ``PostgresSaver``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

# PostgresSaver runs its statements outside explicit transactions, reads rows as dicts,
# and must not use prepared statements (they break behind PgBouncer-style poolers).
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
# Any constant works; it only has to be the same in every process that sets up the tables.
_SETUP_LOCK = 0x636B70745F7365


def _up_to_date(conn: psycopg.Connection[DictRow]) -> bool:
    if conn.execute("SELECT to_regclass('checkpoint_migrations') AS t").fetchone()["t"] is None:  # type: ignore[index]
        return False
    row = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()
    return row is not None and row["v"] == len(PostgresSaver.MIGRATIONS) - 1


def _setup(conn: psycopg.Connection[DictRow], timeout: float) -> None:
    if _up_to_date(conn):
        return
    # Two processes creating the tables at once collide on the catalog, so setup runs under
    # an advisory lock. It is polled, not awaited: the migrations include CREATE INDEX
    # CONCURRENTLY, which waits for every open transaction, and a connection blocked in
    # pg_advisory_lock would be one of them (a deadlock).
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SETUP_LOCK,)).fetchone()["ok"]:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise TimeoutError(f"another process kept the checkpoint tables locked for {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    try:
        PostgresSaver(conn).setup()
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def _check_connection(conn: psycopg.Connection[Any]) -> None:
    if not conn.autocommit or conn.row_factory is not dict_row or conn.prepare_threshold != 0:
        raise ValueError(
            "PostgresSaver needs a connection opened with autocommit=True, "
            "prepare_threshold=0 and row_factory=dict_row"
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
            :data:`CONNECTION_KWARGS`; those stay open on exit, their owner closes them.
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
        _setup(conninfo, timeout)
        yield PostgresSaver(conninfo)
    elif isinstance(conninfo, ConnectionPool):
        with conninfo.connection() as conn:
            _check_connection(conn)
            _setup(conn, timeout)
        yield PostgresSaver(conninfo)
    elif max_size <= 1:
        with psycopg.connect(conninfo, connect_timeout=max(1, int(timeout)), **CONNECTION_KWARGS) as conn:
            _setup(conn, timeout)
            yield PostgresSaver(conn)
    else:
        pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs=CONNECTION_KWARGS,
            open=False,
            check=ConnectionPool.check_connection,
            timeout=timeout,
        )
        pool.open(wait=True, timeout=timeout)
        try:
            with pool.connection() as conn:
                _setup(conn, timeout)
            yield PostgresSaver(pool)
        finally:
            pool.close()
