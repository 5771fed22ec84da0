"""The asynchronous trace store: ``AsyncAutomationTraceDB``, the same methods as
coroutines on an async pool, running the same SQL as the synchronous store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import queries as q
from .base import StoreBase, translate_errors
from .errors import DatabaseUnavailable
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES
from .migrations import migrate
from .models import AppendResult, Trace, TraceFilter, TracePage, TraceSummary
from .server import resolve_url


class AsyncAutomationTraceDB(StoreBase):
    """Async twin of :class:`tracedb.AutomationTraceDB`.

    Create it with ``await AsyncAutomationTraceDB.open(url)`` or
    ``async with AsyncAutomationTraceDB(url) as db``. Arguments as for the sync store.
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
    ) -> None:
        self._url = url
        self._sizes = (min_size, max_size)
        self._apply_migrations = apply_migrations
        self._init_common(max_entry_bytes, max_depth, timeout)
        self.pool: AsyncConnectionPool | None = None

    @classmethod
    async def open(cls, url: str | None = None, **kwargs: Any) -> AsyncAutomationTraceDB:
        """Create, connect and migrate a store."""
        db = cls(url, **kwargs)
        await db.connect()
        return db

    async def connect(self) -> None:
        """Open the pool (starting the embedded server if needed) and apply migrations."""
        self.server = await asyncio.to_thread(resolve_url, self._url)
        self.pool = AsyncConnectionPool(
            self.server.url,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            kwargs={"row_factory": dict_row, "autocommit": True},
            timeout=self.timeout,
            open=False,
            name="tracedb-async",
        )
        try:
            await self.pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout as exc:
            await self.pool.close()
            raise DatabaseUnavailable(
                f"cannot connect to {self.server.label} within {self.timeout:g} s"
            ) from exc
        if self._apply_migrations:
            # Migrations are rare and short: run them on a plain sync connection.
            def _migrate() -> None:
                with psycopg.connect(self.server.url, autocommit=True) as conn:
                    migrate(conn)

            with translate_errors():
                await asyncio.to_thread(_migrate)

    async def close(self) -> None:
        """Close every pooled connection."""
        if self.pool is not None:
            await self.pool.close()

    async def __aenter__(self) -> AsyncAutomationTraceDB:
        if self.pool is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        if self.pool is None:
            raise DatabaseUnavailable("the store is not open: await db.connect() first")
        with translate_errors():
            async with self.pool.connection() as conn:
                yield conn

    async def _one(
        self, query: Any, params: Any = None, prepare: bool | None = None
    ) -> dict[str, Any] | None:
        async with self._conn() as conn:
            cur = await conn.execute(query, params, prepare=prepare)
            return await cur.fetchone()

    async def _rowcount(self, query: Any, params: Any, prepare: bool | None = None) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(query, params, prepare=prepare)
            return cur.rowcount

    @staticmethod
    async def _append(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> dict[str, Any]:
        cur = await conn.execute(q.APPEND, params)
        row = await cur.fetchone()
        assert row is not None
        return row

    async def ping(self) -> bool:
        """True when the server answers."""
        try:
            await self._one("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    async def save_trace(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> str:
        """See :meth:`AutomationTraceDB.save_trace`."""
        insert, append = self._save_plan(user_id, provider_id, thread_id, trace_data, name)
        async with self._conn() as conn, conn.transaction():
            await conn.execute(q.INSERT_TRACE, insert)
            row = await self._append(conn, append)
        self._offsets.put(thread_id, row["entry_count"])
        return insert["id"]

    async def load_trace_by_id(self, trace_id: str) -> Trace | None:
        """See :meth:`AutomationTraceDB.load_trace_by_id`."""
        tid = q.parse_uuid(trace_id)
        row = await self._one(q.LOAD_BY_ID, (tid,)) if tid else None
        return q.trace_from_row(row) if row else None

    async def load_trace_by_thread(self, thread_id: str) -> Trace | None:
        """See :meth:`AutomationTraceDB.load_trace_by_thread`."""
        row = await self._one(q.LOAD_BY_THREAD, (thread_id,)) if self._valid_thread(thread_id) else None
        return q.trace_from_row(row) if row else None

    async def get_user_traces(self, user_id: str, limit: int = 50, offset: int = 0) -> list[TraceSummary]:
        """See :meth:`AutomationTraceDB.get_user_traces`."""
        q.require_text("user_id", user_id)
        limit, offset = q.require_limit(limit, offset)
        async with self._conn() as conn:
            cur = await conn.execute(q.USER_TRACES, (user_id, limit, offset))
            return [q.summary_from_row(r) for r in await cur.fetchall()]

    async def update_trace(
        self, trace_id: str, name: str | None = None, trace_data: list[dict[str, Any]] | None = None
    ) -> bool:
        """See :meth:`AutomationTraceDB.update_trace`."""
        tid, entries = self._update_plan(trace_id, name, trace_data)
        if tid is None:
            return False
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(q.LOCK_TRACE, (tid,))
            if await cur.fetchone() is None:
                return False
            if name is not None:
                await conn.execute(q.RENAME, (name, tid))
            if entries is not None:
                await conn.execute(q.DELETE_ENTRIES, (tid,))
                await conn.execute(q.RESET_ENTRIES, (tid,))
                await self._append(conn, self._append_params(trace_id=tid, entries=entries))
        if entries is not None:
            self._offsets.forget()
        return True

    async def delete_trace(self, trace_id: str) -> bool:
        """See :meth:`AutomationTraceDB.delete_trace`."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        deleted = await self._rowcount(q.DELETE_ONE, (tid,))
        self._offsets.forget()
        return deleted > 0

    async def upsert_trace_by_thread(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> str:
        """See :meth:`AutomationTraceDB.upsert_trace_by_thread`."""
        base = self._upsert_check(user_id, provider_id, thread_id, trace_data, name)
        offset = self._first_offset(thread_id, trace_data)
        async with self._conn() as conn:
            row = await self._append(conn, self._upsert_params(base, trace_data, offset))
            if not row["in_sync"]:
                row = await self._append(conn, self._upsert_params(base, trace_data, row["entry_count"]))
        self._offsets.put(thread_id, row["entry_count"])
        return row["trace_id"]

    async def append_entries(
        self,
        entries: list[dict[str, Any]],
        *,
        trace_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        provider_id: str | None = None,
        name: str | None = None,
        status: str | None = None,
        new_trace_id: str | None = None,
    ) -> AppendResult:
        """See :meth:`AutomationTraceDB.append_entries`."""
        params = self._append_plan(
            entries, trace_id, thread_id, user_id, provider_id, name, status, new_trace_id
        )
        async with self._conn() as conn:
            return self._append_result(await self._append(conn, params))

    async def get_summary(self, trace_id: str) -> TraceSummary | None:
        """See :meth:`AutomationTraceDB.get_summary`."""
        tid = q.parse_uuid(trace_id)
        row = await self._one(q.SUMMARY_BY_ID, (tid,)) if tid else None
        return q.summary_from_row(row) if row else None

    async def get_entries(
        self, trace_id: str, *, after_seq: int = -1, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        """See :meth:`AutomationTraceDB.get_entries`."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return []
        async with self._conn() as conn:
            cur = await conn.execute(q.ENTRIES, {"trace_id": tid, "after_seq": after_seq, "limit": limit})
            return await cur.fetchall()

    async def list_traces(
        self, filter: TraceFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> TracePage:
        """See :meth:`AutomationTraceDB.list_traces`."""
        limit, _ = q.require_limit(limit)
        query, params = q.list_query(filter, limit, cursor)
        async with self._conn() as conn:
            cur = await conn.execute(query, params, prepare=False)
            return q.page_from_rows(await cur.fetchall(), limit)

    async def count_traces(self, filter: TraceFilter | None = None) -> int:
        """See :meth:`AutomationTraceDB.count_traces`."""
        query, params = q.count_query(filter)
        row = await self._one(query, params, prepare=False)
        return int(row["n"]) if row else 0

    async def count_traces_bounded(
        self, filter: TraceFilter | None = None, *, budget_ms: int = 100
    ) -> tuple[int, bool]:
        """See :meth:`AutomationTraceDB.count_traces_bounded`."""
        query, params = q.count_query(filter)
        try:
            async with self._conn() as conn, conn.transaction():
                await conn.execute(q.COUNT_TIME_LIMIT, (f"{int(budget_ms)}ms",))
                cur = await conn.execute(query, params, prepare=False)
                row = await cur.fetchone()
            return (int(row["n"]) if row else 0), True
        except psycopg.errors.QueryCanceled:
            pass
        equery, eparams = q.count_estimate_query(filter)
        return q.estimate_from_plan(await self._one(equery, eparams, prepare=False)), False

    async def delete_traces(
        self,
        filter: TraceFilter | None = None,
        *,
        allow_all: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """See :meth:`AutomationTraceDB.delete_traces`."""
        query, params = self._delete_plan(filter, allow_all, batch_size)
        total = 0
        while True:
            n = await self._rowcount(query, params, prepare=False)
            total += n
            if progress:
                progress(total)
            if n < batch_size:
                break
        self._offsets.forget()
        return total

    async def set_status(self, trace_id: str, status: str) -> bool:
        """See :meth:`AutomationTraceDB.set_status`."""
        q.require_status(status)
        tid = q.parse_uuid(trace_id)
        return bool(tid) and await self._rowcount(q.SET_STATUS, (status, tid)) > 0

    async def rename_trace(self, trace_id: str, name: str) -> bool:
        """See :meth:`AutomationTraceDB.rename_trace`."""
        q.require_text("name", name)
        return await self.update_trace(trace_id, name=name)

    async def update_metadata(self, trace_id: str, metadata: dict[str, Any]) -> bool:
        """See :meth:`AutomationTraceDB.update_metadata`."""
        tid = q.parse_uuid(trace_id)
        param = q.metadata_param(metadata)
        return bool(tid) and await self._rowcount(q.MERGE_METADATA, (param, tid)) > 0
