"""The synchronous trace store: ``AutomationTraceDB``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from . import queries as q
from .base import StoreBase, translate_errors
from .errors import DatabaseUnavailable
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES
from .migrations import migrate
from .models import AppendResult, Trace, TraceFilter, TracePage, TraceSummary
from .server import resolve_url

log = logging.getLogger("tracedb")
RECONNECT_TIMEOUT = 4.0


class AutomationTraceDB(StoreBase):
    """Store and query automation traces in PostgreSQL.

    Args:
        url: libpq URL; default ``TRACEDB_URL``, else an embedded server.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens.
        apply_migrations: apply pending migrations on open.
        max_entry_bytes: largest entry accepted, as encoded JSON (default 1 MiB).
        max_depth: deepest nesting accepted in an entry (default 64).
        timeout: seconds to wait for the server or a free connection.

    Raises:
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
    ) -> None:
        self.server = resolve_url(url)
        self._init_common(max_entry_bytes, max_depth, timeout)
        self.pool = ConnectionPool(
            self.server.url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            timeout=timeout,
            open=False,
            name="tracedb",
            # psycopg_pool doubles its reconnection delay without bound; giving up after a few
            # seconds starts a fresh attempt at the next request, so a server that comes back
            # is found within seconds, not minutes.
            reconnect_timeout=RECONNECT_TIMEOUT,
        )
        try:
            self.pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self.pool.close()
            raise DatabaseUnavailable(f"cannot connect to {self.server.label} within {timeout:g} s") from exc
        if apply_migrations:
            with self._conn() as conn:
                migrate(conn)

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with translate_errors(), self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    def __enter__(self) -> AutomationTraceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the server answers."""
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    def _append(self, conn: psycopg.Connection[Any], params: dict[str, Any]) -> dict[str, Any]:
        row = conn.execute(q.APPEND, params).fetchone()
        assert row is not None
        return row

    # -- the seed's seven methods -----------------------------------------------------

    def save_trace(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> str:
        """Store ``trace_data`` as a new trace of the thread and return its id.

        Raises:
            InvalidTraceData: an argument or an entry cannot be stored (nothing is written).
        """
        insert, append = self._save_plan(user_id, provider_id, thread_id, trace_data, name)
        with self._conn() as conn, conn.transaction():
            conn.execute(q.INSERT_TRACE, insert)
            row = self._append(conn, append)
        self._offsets.put(thread_id, row["entry_count"])
        return insert["id"]

    def load_trace_by_id(self, trace_id: str) -> Trace | None:
        """The trace with this id, entries included; None for an unknown or malformed id."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        with self._conn() as conn:
            row = conn.execute(q.LOAD_BY_ID, (tid,)).fetchone()
        return q.trace_from_row(row) if row else None

    def load_trace_by_thread(self, thread_id: str) -> Trace | None:
        """The thread's most recently created trace, entries included, or None."""
        if not self._valid_thread(thread_id):
            return None
        with self._conn() as conn:
            row = conn.execute(q.LOAD_BY_THREAD, (thread_id,)).fetchone()
        return q.trace_from_row(row) if row else None

    def get_user_traces(self, user_id: str, limit: int = 50, offset: int = 0) -> list[TraceSummary]:
        """A user's traces, most recently updated first, without entries."""
        q.require_text("user_id", user_id)
        limit, offset = q.require_limit(limit, offset)
        with self._conn() as conn:
            rows = conn.execute(q.USER_TRACES, (user_id, limit, offset)).fetchall()
        return [q.summary_from_row(r) for r in rows]

    def update_trace(
        self, trace_id: str, name: str | None = None, trace_data: list[dict[str, Any]] | None = None
    ) -> bool:
        """Rename a trace and/or replace all its entries. False when it does not exist.

        Raises:
            InvalidTraceData: the new name or data cannot be stored (nothing is changed).
        """
        tid, entries = self._update_plan(trace_id, name, trace_data)
        if tid is None:
            return False
        with self._conn() as conn, conn.transaction():
            if conn.execute(q.LOCK_TRACE, (tid,)).fetchone() is None:
                return False
            if name is not None:
                conn.execute(q.RENAME, (name, tid))
            if entries is not None:
                conn.execute(q.DELETE_ENTRIES, (tid,))
                conn.execute(q.RESET_ENTRIES, (tid,))
                self._append(conn, self._append_params(trace_id=tid, entries=entries))
        if entries is not None:
            self._offsets.forget()
        return True

    def delete_trace(self, trace_id: str) -> bool:
        """Delete one trace and its entries. False when it did not exist."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        with self._conn() as conn:
            deleted = conn.execute(q.DELETE_ONE, (tid,)).rowcount
        self._offsets.forget()
        return deleted > 0

    def upsert_trace_by_thread(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> str:
        """Create the thread's trace or bring it up to date with ``trace_data``.

        ``trace_data`` is the complete trace so far; only the entries beyond those already
        stored are converted, sent and written, so a call costs O(new entries).
        ``name=None`` keeps the stored name. Returns the trace id, the same for the whole
        thread.

        Raises:
            InvalidTraceData: an argument or a new entry cannot be stored (nothing is changed).
        """
        base = self._upsert_check(user_id, provider_id, thread_id, trace_data, name)
        offset = self._first_offset(thread_id, trace_data)
        with self._conn() as conn:
            row = self._append(conn, self._upsert_params(base, trace_data, offset))
            if not row["in_sync"]:
                row = self._append(conn, self._upsert_params(base, trace_data, row["entry_count"]))
        self._offsets.put(thread_id, row["entry_count"])
        return row["trace_id"]

    # -- what the rest of the product needs -------------------------------------------

    def append_entries(
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
        """Append entries to a trace in one round trip; costs O(len(entries)).

        Give ``trace_id``, or ``thread_id`` and ``user_id`` to append to the thread's most
        recent trace (created, with ``new_trace_id`` if given, when the thread has none).
        ``status`` and ``name``, when given, are set in the same statement.

        Raises:
            InvalidTraceData: bad arguments or entries (nothing is written).
            TraceNotFound: ``trace_id`` does not exist.
        """
        params = self._append_plan(
            entries, trace_id, thread_id, user_id, provider_id, name, status, new_trace_id
        )
        with self._conn() as conn:
            return self._append_result(self._append(conn, params))

    def get_summary(self, trace_id: str) -> TraceSummary | None:
        """A trace's header without entries, or None."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        with self._conn() as conn:
            row = conn.execute(q.SUMMARY_BY_ID, (tid,)).fetchone()
        return q.summary_from_row(row) if row else None

    def get_entries(
        self, trace_id: str, *, after_seq: int = -1, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        """Entries with their columns (seq, node, kind, name, status, started_at, ended_at,
        duration_ms, data), in seq order, after ``after_seq``."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return []
        with self._conn() as conn:
            return conn.execute(
                q.ENTRIES, {"trace_id": tid, "after_seq": after_seq, "limit": limit}
            ).fetchall()

    def list_traces(
        self, filter: TraceFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> TracePage:
        """One page of matching traces, most recently updated first.

        Pass the returned ``next_cursor`` back for the next page; keyset pagination makes a
        deep page as fast as the first.
        """
        limit, _ = q.require_limit(limit)
        query, params = q.list_query(filter, limit, cursor)
        # Never prepared: a prepared statement soon gets a generic plan that cannot see the
        # filter's values, and the best plan here depends on them (how rare a word is).
        with self._conn() as conn:
            rows = conn.execute(query, params, prepare=False).fetchall()
        return q.page_from_rows(rows, limit)

    def count_traces(self, filter: TraceFilter | None = None) -> int:
        """How many traces match."""
        query, params = q.count_query(filter)
        with self._conn() as conn:
            row = conn.execute(query, params, prepare=False).fetchone()
        return int(row["n"]) if row else 0

    def count_traces_bounded(
        self, filter: TraceFilter | None = None, *, budget_ms: int = 100
    ) -> tuple[int, bool]:
        """``(n, True)`` when the exact count takes at most ``budget_ms``, else the planner's
        estimate as ``(n, False)``: for a page that must answer at once on any table size."""
        query, params = q.count_query(filter)
        try:
            with self._conn() as conn, conn.transaction():
                conn.execute(q.COUNT_TIME_LIMIT, (f"{int(budget_ms)}ms",))
                row = conn.execute(query, params, prepare=False).fetchone()
            return (int(row["n"]) if row else 0), True
        except psycopg.errors.QueryCanceled:
            pass  # the pool resets a connection whose transaction was cancelled
        equery, eparams = q.count_estimate_query(filter)
        with self._conn() as conn:
            plan = conn.execute(equery, eparams, prepare=False).fetchone()
        return q.estimate_from_plan(plan), False

    def delete_traces(
        self,
        filter: TraceFilter | None = None,
        *,
        allow_all: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete every matching trace (not one page), in batches; return how many.

        An empty filter deletes everything only with ``allow_all=True``. ``progress`` is
        called with the running total after each batch.
        """
        query, params = self._delete_plan(filter, allow_all, batch_size)
        total = 0
        with self._conn() as conn:
            while True:
                n = conn.execute(query, params, prepare=False).rowcount
                total += n
                if progress:
                    progress(total)
                if n < batch_size:
                    break
        self._offsets.forget()
        return total

    def set_status(self, trace_id: str, status: str) -> bool:
        """Set a trace's status: running, completed, failed or interrupted."""
        q.require_status(status)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        with self._conn() as conn:
            return conn.execute(q.SET_STATUS, (status, tid)).rowcount > 0

    def rename_trace(self, trace_id: str, name: str) -> bool:
        """Give a trace a new name. False when it does not exist."""
        q.require_text("name", name)
        return self.update_trace(trace_id, name=name)

    def update_metadata(self, trace_id: str, metadata: dict[str, Any]) -> bool:
        """Merge keys into a trace's metadata."""
        tid = q.parse_uuid(trace_id)
        param = q.metadata_param(metadata)
        if tid is None:
            return False
        with self._conn() as conn:
            return conn.execute(q.MERGE_METADATA, (param, tid)).rowcount > 0
