"""The synchronous trace store: ``AutomationTraceDB``."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from . import queries as q
from .core import Op, Statement, StoreOperations, translate
from .errors import DatabaseUnavailable
from .indexer import Indexer
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES, loads
from .migrations import migrate
from .server import connection_kwargs, resolve_url, use_prepared_statements

log = logging.getLogger("tracedb")
# psycopg_pool doubles its reconnection delay without bound; giving up after a few seconds
# starts a fresh attempt at the next request, so a server that comes back is found within
# seconds, not minutes.
RECONNECT_TIMEOUT = 4.0


def configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection reads JSON with :func:`tracedb.jsonsafe.loads`."""
    set_json_loads(loads, conn)


def execute(conn: psycopg.Connection[Any], st: Statement) -> Any:
    """Run one statement on a sync connection and fetch what it asks for."""
    cur = conn.cursor(row_factory=tuple_row) if st.rows == "tuple" else conn.cursor()
    # A connection set up without prepared statements (behind a transaction pooler) never
    # prepares one, not even for a statement that asks to be.
    prepare = st.prepare if conn.prepare_threshold is not None else False
    if st.timeout_ms is not None:
        with conn.transaction():
            cur.execute(q.STATEMENT_TIMEOUT, {"timeout": f"{int(st.timeout_ms)}ms"})
            cur.execute(st.query, st.params, prepare=prepare)
            return fetch(cur, st)
    cur.execute(st.query, st.params, prepare=prepare)
    return fetch(cur, st)


def fetch(cur: psycopg.Cursor[Any], st: Statement) -> Any:
    if st.fetch == "one":
        return cur.fetchone()
    if st.fetch == "all":
        return cur.fetchall()
    if st.fetch == "rowcount":
        return cur.rowcount
    return None


class AutomationTraceDB(StoreOperations):
    """Store and query automation traces in PostgreSQL.

    Args:
        url: libpq URL; default ``TRACEDB_URL``, else an embedded server.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens.
        apply_migrations: apply pending migrations on open.
        max_entry_bytes: largest entry accepted, as encoded JSON (default 1 MiB).
        max_depth: deepest nesting accepted in an entry (default 64).
        timeout: seconds to wait for the server or a free connection.
        prepare: use server-side prepared statements; default ``TRACEDB_PREPARE`` (on).
            Off behind a pooler in transaction mode that does not support them (PgBouncer
            before 1.21).

    Raises:
        ValueError: ``TRACEDB_PREPARE`` is neither on nor off.
        DatabaseUnavailable: the server cannot be reached within ``timeout``.

    Example:
        >>> with AutomationTraceDB() as db:
        ...     trace_id = db.upsert_trace_by_thread("ana", None, "t-1", [{"node": "plan"}])
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 8,
        apply_migrations: bool = True,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        timeout: float = 10.0,
        prepare: bool | None = None,
    ) -> None:
        self.prepare = use_prepared_statements(prepare)
        self.server = resolve_url(url)
        self._init_common(max_entry_bytes, max_depth, timeout)
        self.pool = ConnectionPool(
            self.server.url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True, **connection_kwargs(self.prepare)},
            timeout=timeout,
            open=False,
            name="tracedb",
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=configure,
        )
        try:
            self.pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self.pool.close()
            raise DatabaseUnavailable(f"cannot connect to {self.server.label} within {timeout:g} s") from exc
        self._indexer = Indexer(self._index_connection)
        if apply_migrations:
            try:
                with self.pool.connection() as conn:
                    migrate(conn)
            except BaseException as exc:
                self.pool.close()
                if isinstance(exc, (psycopg.Error, PoolTimeout)):
                    raise translate(exc) from exc
                raise

    def _run(self, op: Op[Any], transaction: bool) -> Any:
        """Drive an operation: take a connection at its first statement, run each statement
        it yields, send back the result or throw in the named error."""
        try:
            with ExitStack() as stack:
                conn: psycopg.Connection[Any] | None = None
                result: Any = None
                error: BaseException | None = None
                while True:
                    try:
                        st = op.send(result) if error is None else op.throw(error)
                    except StopIteration as stop:
                        return stop.value
                    result = error = None
                    try:
                        if conn is None:
                            conn = stack.enter_context(self.pool.connection())
                            if transaction:
                                stack.enter_context(conn.transaction())
                        result = execute(conn, st)
                    except (psycopg.Error, PoolTimeout) as exc:
                        error = translate(exc)
                        error.__cause__ = exc
        except (psycopg.Error, PoolTimeout) as exc:  # ending the transaction or returning the connection
            raise translate(exc) from exc

    def _index_connection(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.server.url, autocommit=True, connect_timeout=max(1, int(self.timeout)))

    def close(self) -> None:
        """Index what is pending for search, then close every connection."""
        if self._indexer is not None:
            self._indexer.close()
        self.pool.close()

    def __enter__(self) -> AutomationTraceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
