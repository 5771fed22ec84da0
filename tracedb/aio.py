"""The asynchronous trace store: ``AsyncAutomationTraceDB``, the same operations as the
synchronous store (:mod:`tracedb.core`), run on an async pool.

Code written for the seed's asynchronous ``AutomationTraceDB`` imports it from here under
that name: ``from tracedb.aio import AutomationTraceDB``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import queries as q
from .combine import AsyncCombiner, combinable
from .core import Op, Statement, statement_error, translate
from .errors import DatabaseUnavailable, TraceDBError
from .indexer import Indexer
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES, loads
from .migrations import migrate
from .operations import StoreOperations
from .routing import REPLICA_WAIT_S, ReadRouting, read_plan
from .server import connection_kwargs, resolve_read_url, resolve_url, use_prepared_statements
from .store import RECONNECT_TIMEOUT


async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every pooled connection reads JSON with :func:`tracedb.jsonsafe.loads`, and runs
    without JIT compilation (see :data:`tracedb.queries.NO_JIT`)."""
    set_json_loads(loads, conn)
    if conn.prepare_threshold is not None:  # a session of its own, not a transaction pooler's
        await conn.execute(q.NO_JIT)


async def execute(conn: psycopg.AsyncConnection[Any], st: Statement) -> Any:
    """Run one statement on an async connection and fetch what it asks for."""
    if st.quick is not None:
        try:
            row = await execute(conn, st.quick)
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
            async with conn.transaction():
                await cur.execute(q.STATEMENT_TIMEOUT, {"timeout": f"{int(st.timeout_ms)}ms"})
                await cur.execute(st.query, st.params, prepare=prepare)
                return await fetch(cur, st)
        except psycopg.Error:
            # as in tracedb.store.execute: the ROLLBACK may have been cancelled too
            if conn.info.transaction_status == pq.TransactionStatus.INERROR:
                await conn.execute("ROLLBACK")
            raise
    await cur.execute(st.query, st.params, prepare=prepare)
    return await fetch(cur, st)


async def fetch(cur: psycopg.AsyncCursor[Any], st: Statement) -> Any:
    if st.fetch == "one":
        row = await cur.fetchone()
        return st.finish(row) if st.finish is not None and row is not None else row
    if st.fetch == "all":
        return await cur.fetchall()
    if st.fetch == "rowcount":
        return cur.rowcount
    return None


class AsyncAutomationTraceDB(StoreOperations):
    """Async twin of :class:`tracedb.AutomationTraceDB`: every method is a coroutine.

    Create it with ``await AsyncAutomationTraceDB.open(url)`` or
    ``async with AsyncAutomationTraceDB(url) as db``. Arguments as for the sync store,
    ``read_url`` included.
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
        self._url = url
        self._read_url = resolve_read_url(url, read_url)
        self.prepare = use_prepared_statements(prepare)
        self.routing = ReadRouting()
        self.read_pool: AsyncConnectionPool | None = None
        self._sizes = (min_size, max_size)
        self._apply_migrations = apply_migrations
        self._init_common(max_entry_bytes, max_depth, timeout)
        self.pool: AsyncConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._combiner = AsyncCombiner(self._statement)

    @classmethod
    async def open(cls, url: str | None = None, **kwargs: Any) -> AsyncAutomationTraceDB:
        """Create, connect and migrate a store."""
        db = cls(url, **kwargs)
        await db.connect()
        return db

    async def connect(self) -> None:
        """Open the pool (starting the embedded server if needed) and apply migrations."""
        self.server = await asyncio.to_thread(resolve_url, self._url)
        kwargs = {"row_factory": dict_row, "autocommit": True, **connection_kwargs(self.prepare)}
        pool = AsyncConnectionPool(
            self.server.url,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            kwargs=kwargs,
            timeout=self.timeout,
            open=False,
            name="tracedb-async",
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=configure,
        )
        read_pool: AsyncConnectionPool | None = None
        if self._read_url:
            self.server = replace(self.server, read_url=self._read_url)
            # Opened without waiting: while the replica is away, reads run on the primary.
            read_pool = AsyncConnectionPool(
                self._read_url,
                min_size=self._sizes[0],
                max_size=self._sizes[1],
                kwargs=kwargs,
                timeout=min(self.timeout, REPLICA_WAIT_S),
                open=False,
                name="tracedb-async-read",
                reconnect_timeout=RECONNECT_TIMEOUT,
                configure=configure,  # the same JSON reading as the primary's connections
            )
            await read_pool.open(wait=False)
        try:
            await pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout as exc:
            await pool.close()
            if read_pool is not None:
                await read_pool.close()
            raise DatabaseUnavailable(
                f"cannot connect to {self.server.label} within {self.timeout:g} s"
            ) from exc
        self._indexer = Indexer(self._index_connection)
        if self._apply_migrations:
            # Migrations are rare and short: run them on a plain sync connection.
            def _migrate() -> None:
                with psycopg.connect(
                    self.server.url,
                    autocommit=True,
                    connect_timeout=int(self.timeout),
                    **connection_kwargs(self.prepare),
                ) as conn:
                    migrate(conn)

            try:
                await asyncio.to_thread(_migrate)
            except BaseException as exc:
                await pool.close()
                if read_pool is not None:
                    await read_pool.close()
                if isinstance(exc, psycopg.Error):
                    raise translate(exc) from exc
                raise
        # Only a pool that opened and migrated is used: a failed open leaves the store closed.
        self.read_pool = read_pool
        self.pool = pool

    async def _run(
        self, op: Op[Any], transaction: bool, track: bool = True, pool: AsyncConnectionPool | None = None
    ) -> Any:
        """Drive an operation as :meth:`AutomationTraceDB._run` does, awaiting each statement."""
        if self.pool is None:
            # The seed's class was used without opening it (``db = AutomationTraceDB()`` and
            # then ``await db.save_trace(...)``): open on first use, once.
            try:
                async with self._open_lock:
                    if self.pool is None:
                        await self.connect()
            except BaseException:
                op.close()
                raise
        pool = pool or self.pool
        tracked = track and pool is self.pool and self.read_pool is not None
        try:
            async with AsyncExitStack() as stack:
                conn: psycopg.AsyncConnection[Any] | None = None
                result: Any = None
                error: BaseException | None = None
                while True:
                    try:
                        st = op.send(result) if error is None else op.throw(error)
                    except StopIteration as stop:
                        return stop.value
                    result = error = None
                    if conn is None and st.combine and pool is self.pool and combinable(st):
                        try:  # with other tasks' appends, on a connection of its own
                            result = await self._combiner.submit(st)
                        except TraceDBError as exc:
                            error = exc
                        continue
                    try:
                        if conn is None:
                            conn = await stack.enter_async_context(pool.connection())
                            if transaction:
                                await stack.enter_async_context(conn.transaction())
                        result = await execute(conn, st)
                    except (psycopg.Error, PoolTimeout) as exc:
                        error = statement_error(exc, conn)
        except (psycopg.Error, PoolTimeout) as exc:  # ending the transaction or returning the connection
            raise translate(exc) from exc
        finally:
            if tracked:  # once it is over, also if it failed (it may have committed)
                self.routing.primary_used()

    async def _statement(self, st: Statement) -> Any:
        """Run one statement on a connection of the primary's pool, in a transaction of its
        own; its result, or its named error."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            async with self.pool.connection() as conn:  # type: ignore[union-attr]
                return await execute(conn, st)
        except (psycopg.Error, PoolTimeout) as exc:
            raise statement_error(exc, conn) from exc

    async def _run_read(self, make_op: Callable[[], Op[Any]]) -> Any:
        """Run a read as :meth:`AutomationTraceDB._run_read` does."""
        if self.read_pool is None:  # nothing to track without a replica
            return await self._run(make_op(), False)
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
                result = await self._run(req.op, False, track=req.track, pool=pool)
            except TraceDBError as exc:
                error = exc

    def _index_connection(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.server.url,
            autocommit=True,
            connect_timeout=max(1, int(self.timeout)),
            **connection_kwargs(self.prepare),
        )

    async def close(self) -> None:
        """Index what is pending for search, then close every connection."""
        if self._indexer is not None:
            await asyncio.to_thread(self._indexer.close)
        if self.pool is not None:
            await self.pool.close()
        if self.read_pool is not None:
            await self.read_pool.close()

    async def __aenter__(self) -> AsyncAutomationTraceDB:
        if self.pool is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# The seed's asynchronous class under its own name: code written for it changes only its
# import line (``from tracedb.aio import AutomationTraceDB``).
AutomationTraceDB = AsyncAutomationTraceDB
