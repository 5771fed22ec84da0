"""The synchronous trace store: ``AutomationTraceDB``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from time import monotonic
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from . import queries as q
from .combine import Combiner, combinable
from .core import Op, Statement, statement_error, translate
from .errors import DatabaseUnavailable, TraceDBError
from .indexer import Indexer
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES, loads
from .migrations import migrate
from .operations import StoreOperations
from .routing import REPLICA_WAIT_S, ReadRouting, read_plan
from .server import connection_kwargs, resolve_read_url, resolve_url, use_prepared_statements

log = logging.getLogger("tracedb")
# psycopg_pool doubles its reconnection delay without bound; giving up after a few seconds
# starts a fresh attempt at the next request, so a server that comes back is found within
# seconds, not minutes.
RECONNECT_TIMEOUT = 4.0


def configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection reads JSON with :func:`tracedb.jsonsafe.loads`, and runs
    without JIT compilation (see :data:`tracedb.queries.NO_JIT`)."""
    set_json_loads(loads, conn)
    if conn.prepare_threshold is not None:  # a session of its own, not a transaction pooler's
        conn.execute(q.NO_JIT)


class KeepingPool(ConnectionPool):  # type: ignore[type-arg]
    """psycopg's connection pool, with the connection last given back kept at hand.

    Taking a connection from the pool and giving it back costs a lock, the pool's
    statistics, four log calls and a commit that has nothing to commit: about 15 µs, a
    twentieth of a per-event append. The store gives its connections back with
    :meth:`give`, which keeps one that is idle (outside a transaction) at hand instead of
    returning it, unless someone is waiting for a connection; the next :meth:`getconn` (the
    store's, or anyone's: ``pool.connection()`` too) hands it out first, and one that waits
    for the pool looks at it again every POLL_S, so nobody waits long for a connection kept
    idle. Any other connection goes back to the pool, which resets, replaces or keeps it as
    it does every connection. A kept connection goes back to the pool when it was kept
    unused for IDLE_S, or was taken from the pool over HOLD_S ago, so that the pool's
    limits on a connection's idle time and lifetime apply to it too, a little later."""

    IDLE_S = 5.0
    HOLD_S = 60.0
    POLL_S = 0.05

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept_lock = threading.Lock()
        self._kept: psycopg.Connection[Any] | None = None
        self._kept_given = 0.0  # when it was given back
        self._closing = False

    def _take_kept(self) -> psycopg.Connection[Any] | None:
        """The kept connection, if there is one fit to use (one that is not goes back)."""
        with self._kept_lock:
            conn, self._kept = self._kept, None
            given = self._kept_given
        if conn is None:
            return None
        now = monotonic()
        first = getattr(conn, "_tracedb_first", 0.0)  # when it was taken from the pool
        if now - given < self.IDLE_S and now - first < self.HOLD_S and not conn.closed and not self._closing:
            return conn
        self.putconn(conn)
        return None

    def getconn(self, timeout: float | None = None) -> Any:
        """A connection: the one kept at hand, else one of the pool's (PoolTimeout after
        ``timeout`` seconds, default the pool's)."""
        conn = self._take_kept()
        if conn is not None:
            return conn
        timeout = self.timeout if timeout is None else timeout
        deadline = monotonic() + timeout
        while True:
            left = deadline - monotonic()
            try:
                conn = super().getconn(min(left, self.POLL_S) if left > 0 else 0.0)
            except PoolTimeout:
                kept = self._take_kept()  # given back meanwhile, beside the waiting line
                if kept is not None:
                    return kept
                if monotonic() < deadline:
                    continue
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None
            conn._tracedb_first = monotonic()
            return conn

    def give(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection :meth:`getconn` returned: kept at hand when it is idle,
        none is kept yet and nobody waits for one; else returned to the pool."""
        if (
            conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
            and conn.autocommit
            and not getattr(self, "_waiting", None)  # the pool's line of callers waiting
        ):
            with self._kept_lock:
                if self._kept is None and not self._closing:
                    self._kept, self._kept_given = conn, monotonic()
                    return
        self.putconn(conn)

    def close(self, timeout: float = 5.0) -> None:
        with self._kept_lock:
            self._closing = True
            conn, self._kept = self._kept, None
        if conn is not None:
            self.putconn(conn)
        super().close(timeout)


def execute(conn: psycopg.Connection[Any], st: Statement) -> Any:
    """Run one statement on a sync connection and fetch what it asks for (its quick
    statement first, when it has one: see :class:`tracedb.core.Statement`)."""
    if st.quick is not None:
        try:
            row = execute(conn, st.quick)
        except psycopg.errors.UniqueViolation:
            # another writer stored that entry first; the general statement sorts it out
            # (a quick statement runs on its own: nothing else of the operation is undone)
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                raise
            row = None
        if row is not None:
            return row
    cur = conn.cursor(row_factory=tuple_row) if st.rows == "tuple" else conn.cursor()
    # A connection set up without prepared statements (behind a transaction pooler) never
    # prepares one, not even for a statement that asks to be.
    prepare = st.prepare if conn.prepare_threshold is not None else False
    if st.timeout_ms is not None:
        try:
            with conn.transaction():
                cur.execute(q.STATEMENT_TIMEOUT, {"timeout": f"{int(st.timeout_ms)}ms"})
                cur.execute(st.query, st.params, prepare=prepare)
                return fetch(cur, st)
        except psycopg.Error:
            # A time limit reached as a parallel statement ends can cancel the ROLLBACK that
            # ends its transaction too: the next statement of the operation would fail.
            if conn.info.transaction_status == pq.TransactionStatus.INERROR:
                conn.execute("ROLLBACK")
            raise
    cur.execute(st.query, st.params, prepare=prepare)
    return fetch(cur, st)


def fetch(cur: psycopg.Cursor[Any], st: Statement) -> Any:
    if st.fetch == "one":
        row = cur.fetchone()
        return st.finish(row) if st.finish is not None and row is not None else row
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
        read_url: libpq URL of a streaming replica of ``url`` for the reads; default
            ``TRACEDB_READ_URL`` when ``url`` is ``TRACEDB_URL``. See :mod:`tracedb.routing`.

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
        read_url: str | None = None,
    ) -> None:
        self.prepare = use_prepared_statements(prepare)
        self.server = resolve_url(url)
        self._init_common(max_entry_bytes, max_depth, timeout)
        kwargs = {"row_factory": dict_row, "autocommit": True, **connection_kwargs(self.prepare)}
        self.pool = KeepingPool(
            self.server.url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            timeout=timeout,
            open=False,
            name="tracedb",
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=configure,
        )
        self.routing = ReadRouting()
        self.read_pool: KeepingPool | None = None
        read_url = resolve_read_url(url, read_url)
        if read_url:
            self.server = replace(self.server, read_url=read_url)
            # Opened without waiting: while the replica is away, reads run on the primary.
            self.read_pool = KeepingPool(
                read_url,
                min_size=min_size,
                max_size=max_size,
                kwargs=kwargs,
                timeout=min(timeout, REPLICA_WAIT_S),
                open=False,
                name="tracedb-read",
                reconnect_timeout=RECONNECT_TIMEOUT,
                configure=configure,  # the same JSON reading as the primary's connections
            )
            self.read_pool.open(wait=False)
        try:
            self.pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self.close()
            raise DatabaseUnavailable(f"cannot connect to {self.server.label} within {timeout:g} s") from exc
        self._indexer = Indexer(self._index_connection)
        self._combiner = Combiner(self._statement)
        if apply_migrations:
            try:
                with self.pool.connection() as conn:
                    migrate(conn)
            except BaseException as exc:
                self.close()
                if isinstance(exc, (psycopg.Error, PoolTimeout)):
                    raise translate(exc) from exc
                raise

    def _run(
        self, op: Op[Any], transaction: bool, track: bool = True, pool: KeepingPool | None = None
    ) -> Any:
        """Drive an operation: take a connection (of ``pool``, else the primary's) at its
        first statement, run each statement it yields, send back the result or throw in the
        named error. ``track``: see :meth:`tracedb.routing.ReadRouting.primary_used`."""
        pool = pool or self.pool
        tracked = track and pool is self.pool and self.read_pool is not None
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
                    if conn is None and st.combine and pool is self.pool and combinable(st):
                        try:  # with other threads' appends, on a connection of its own
                            result = self._combiner.submit(st)
                        except TraceDBError as exc:
                            error = exc
                        continue
                    try:
                        if conn is None:
                            conn = pool.getconn()
                            stack.callback(pool.give, conn)
                            if transaction:
                                stack.enter_context(conn.transaction())
                        result = execute(conn, st)
                    except (psycopg.Error, PoolTimeout) as exc:
                        error = statement_error(exc, conn)
        except (psycopg.Error, PoolTimeout) as exc:  # ending the transaction or returning the connection
            raise translate(exc) from exc
        finally:
            if tracked:  # once it is over, also if it failed (it may have committed)
                self.routing.primary_used()

    def _statement(self, st: Statement) -> Any:
        """Run one statement on a connection of the primary's pool, in a transaction of its
        own; its result, or its named error."""
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = self.pool.getconn()
            try:
                return execute(conn, st)
            finally:
                self.pool.give(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise statement_error(exc, conn) from exc

    def _run_read(self, make_op: Callable[[], Op[Any]]) -> Any:
        """Run a read on the replica when it has what this store has seen, else on the
        primary (see :func:`tracedb.routing.read_plan`)."""
        if self.read_pool is None:  # nothing to track without a replica
            return self._run(make_op(), False)
        plan = read_plan(self.routing, make_op)
        result: Any = None
        error: TraceDBError | None = None
        while True:
            try:
                req = plan.send(result) if error is None else plan.throw(error)
            except StopIteration as stop:
                return stop.value
            result = error = None
            try:
                pool = self.read_pool if req.on_replica else self.pool
                result = self._run(req.op, False, track=req.track, pool=pool)
            except TraceDBError as exc:
                error = exc

    def _index_connection(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.server.url,
            autocommit=True,
            connect_timeout=max(1, int(self.timeout)),
            **connection_kwargs(self.prepare),
        )

    def close(self) -> None:
        """Index what is pending for search, then close every connection."""
        if self._indexer is not None:
            self._indexer.close()
        self.pool.close()
        if self.read_pool is not None:
            self.read_pool.close()

    def __enter__(self) -> AutomationTraceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
