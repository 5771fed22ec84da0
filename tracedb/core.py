"""The store's operations, written once and without I/O.

Each operation is a generator: it checks its arguments, yields the statements to run and
receives their results, and returns the operation's result. It never touches a connection.
:class:`tracedb.AutomationTraceDB` runs the generators on a connection pool,
:class:`tracedb.AsyncAutomationTraceDB` on an async pool (see :class:`operation`), so the
two classes cannot drift apart: the same code decides what both send and return. This is
the design of LangGraph's Postgres checkpointers (an I/O-free base, thin sync and async
shells), taken one step further so that not even the order of statements is written twice.

A failed statement is thrown back into its generator as a named error (see
:func:`translate`), so an operation can react to it (``count_traces_bounded`` falls back to
an estimate on a timeout, ``ping`` answers False when the server is gone).
"""

from __future__ import annotations

import copy
import functools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from . import queries as q
from .errors import (
    AccessDenied,
    DatabaseUnavailable,
    InvalidTraceData,
    QueryTimeout,
    TraceDBError,
    TraceNotFound,
)
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES, check_trace_data, prepare_entries
from .limits import DASHBOARD_TIMEOUT_MS, MAX_CHOICES, MAX_ENTRY_ROWS
from .models import AppendResult, Overview, ServerStatus, Trace, TraceFilter, TracePage, TraceSummary
from .server import ServerInfo

T = TypeVar("T")

# Traces of fewer entries than this are sent whole on a process's first upsert of a thread;
# longer ones are probed first so that the payload stays O(new entries).
PROBE_AFTER = 50
KNOWN_THREADS = 10_000


@dataclass(frozen=True)
class Statement:
    """One statement for a store to run, and what to return of it.

    Attributes:
        query: the SQL, with named placeholders.
        params: the values of the placeholders.
        fetch: ``"one"`` (a row or None), ``"all"`` (a list of rows), ``"rowcount"`` or
            ``"none"``.
        rows: rows as dicts (``"dict"``) or tuples (``"tuple"``, for column-wise reads).
        prepare: passed to psycopg's ``execute``; False for statements whose best plan
            depends on their values (filtered listings), which must never get a generic plan.
        timeout_ms: run under this statement time limit (in a transaction of its own).
    """

    query: str | sql.Composable
    params: Mapping[str, Any] | None = None
    fetch: Literal["one", "all", "rowcount", "none"] = "all"
    rows: Literal["dict", "tuple"] = "dict"
    prepare: bool | None = None
    timeout_ms: int | None = None


Op = Generator[Statement, Any, T]


def translate(exc: BaseException) -> TraceDBError:
    """The named error a failed statement (or pool) raises to callers.

    Input the database refuses is InvalidTraceData, a statement cancelled by a time limit or
    a cancel request is QueryTimeout, a missing trace TraceNotFound, and a lost server
    DatabaseUnavailable. Anything else psycopg raises is a TraceDBError with its message.
    """
    if isinstance(exc, TraceDBError):
        return exc
    if isinstance(exc, (psycopg.errors.DataError, psycopg.errors.IntegrityError)):
        primary = exc.diag.message_primary or str(exc)
        return InvalidTraceData(f"the database refused the data: {primary}")
    if isinstance(exc, psycopg.errors.NoDataFound):  # tracedb_append on a missing trace
        return TraceNotFound(exc.diag.message_primary or str(exc))
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return QueryTimeout("the database cancelled the statement (time limit or cancel request)")
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
        return DatabaseUnavailable(f"the database is unreachable: {exc}")
    return TraceDBError(f"the database failed the request: {exc}")


class operation:  # noqa: N801 - used as a decorator, like property
    """Marks a store method written as a generator of :class:`Statement`.

    On an instance, the method becomes what that instance's ``_run`` makes of the generator:
    the result itself for the sync store, a coroutine for the async store. With
    ``transaction=True`` every statement of the operation runs in one transaction.
    """

    def __init__(self, fn: Callable[..., Op[Any]] | None = None, *, transaction: bool = False) -> None:
        self.fn = fn
        self.transaction = transaction
        if fn is not None:
            functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, fn: Callable[..., Op[Any]]) -> operation:
        return operation(fn, transaction=self.transaction)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        fn, transaction = self.fn, self.transaction
        assert fn is not None

        @functools.wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return obj._run(fn(obj, *args, **kwargs), transaction)

        return bound


class ThreadOffsets:
    """How many entries this process last saw stored per thread. Only a hint: the
    database checks it on every write and answers with the truth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[str, int] = OrderedDict()

    def get(self, thread_id: str) -> int | None:
        with self._lock:
            return self._known.get(thread_id)

    def put(self, thread_id: str, count: int) -> None:
        with self._lock:
            self._known[thread_id] = count
            self._known.move_to_end(thread_id)
            while len(self._known) > KNOWN_THREADS:
                self._known.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


def _one(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="one", **kw)


def _all(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="all", **kw)


def _count(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="rowcount", **kw)


def _append_params(**params: Any) -> dict[str, Any]:
    base = dict.fromkeys(
        ("trace_id", "user_id", "provider_id", "thread_id", "name", "offset", "status", "new_id")
    )
    base["new_turn"] = False
    base["scope"] = None
    return {**base, **params}


def _valid_thread(thread_id: Any) -> bool:
    return isinstance(thread_id, str) and bool(thread_id) and "\x00" not in thread_id


class StoreOperations:
    """Every store operation. Subclasses provide ``_run`` (how a generator is driven),
    ``server``, and the connection handling."""

    server: ServerInfo
    _scope: str | None = None
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    timeout: float = 10.0

    def _init_common(self, max_entry_bytes: int, max_depth: int, timeout: float) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.max_depth = max_depth
        self.timeout = timeout
        self._offsets = ThreadOffsets()
        self._scope: str | None = None

    @property
    def user_scope(self) -> str | None:
        """The only user whose traces this store sees, or None for every user's."""
        return self._scope

    def as_user(self, user_id: str | None) -> Self:
        """This store seen by one user: every read, change and delete touches only that
        user's traces (another user's trace is as absent as one that does not exist), and
        every write is made as that user. ``None`` sees every user's traces (an admin).

        The view shares this store's connections; closing either closes both.

        Raises:
            InvalidTraceData: ``user_id`` is not a valid user id.
        """
        view = copy.copy(self)
        view._scope = q.require_text("user_id", user_id, optional=True)
        return view

    def _writer_id(self, user_id: Any) -> str:
        """The user a write is made as: the scope's user; a different user_id is refused."""
        if self._scope is not None:
            if user_id is not None and user_id != self._scope:
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            return self._scope
        return q.require_text("user_id", user_id) or ""

    def _run(self, op: Op[Any], transaction: bool) -> Any:  # pragma: no cover - per shell
        raise NotImplementedError

    def _prepare(self, entries: list[Any], start_index: int = 0) -> str:
        return prepare_entries(
            entries, max_entry_bytes=self.max_entry_bytes, max_depth=self.max_depth, start_index=start_index
        )

    # -- the seed's seven methods ---------------------------------------------------------

    @operation(transaction=True)
    def save_trace(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> Op[str]:
        """Store ``trace_data`` as a new trace of the thread and return its id.

        Raises:
            InvalidTraceData: an argument or an entry cannot be stored (nothing is written).
        """
        user_id = self._writer_id(user_id)
        q.require_text("provider_id", provider_id, optional=True)
        q.require_text("thread_id", thread_id)
        q.require_text("name", name, optional=True)
        entries = self._prepare(check_trace_data(trace_data))
        trace_id = str(uuid.uuid4())
        insert = {
            "id": trace_id,
            "user_id": user_id,
            "provider_id": provider_id,
            "thread_id": thread_id,
            "name": name,
            "status": "completed",
            "metadata": q.metadata_param(None),
        }
        yield Statement(q.INSERT_TRACE, insert, fetch="none")
        row = yield _one(q.APPEND, _append_params(trace_id=trace_id, entries=entries))
        self._offsets.put((user_id, thread_id), row["entry_count"])
        return trace_id

    @operation
    def load_trace_by_id(self, trace_id: str) -> Op[Trace | None]:
        """The trace with this id, entries included; None for an unknown or malformed id."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.LOAD_BY_ID, {"id": tid, "scope": self._scope})
        return q.trace_from_row(row) if row else None

    @operation
    def load_trace_by_thread(self, thread_id: str) -> Op[Trace | None]:
        """The thread's most recently created trace, entries included, or None."""
        if not _valid_thread(thread_id):
            return None
        row = yield _one(q.LOAD_BY_THREAD, {"thread_id": thread_id, "scope": self._scope})
        return q.trace_from_row(row) if row else None

    @operation
    def get_user_traces(self, user_id: str, limit: int = 50, offset: int = 0) -> Op[list[TraceSummary]]:
        """A user's traces, most recently updated first, without entries."""
        q.require_text("user_id", user_id)
        limit, offset = q.require_limit(limit, offset)
        params = {"user_id": user_id, "limit": limit, "offset": offset, "scope": self._scope}
        rows = yield _all(q.USER_TRACES, params)
        return [q.summary_from_row(r) for r in rows]

    @operation(transaction=True)
    def update_trace(
        self, trace_id: str, name: str | None = None, trace_data: list[dict[str, Any]] | None = None
    ) -> Op[bool]:
        """Rename a trace and/or replace all its entries. False when it does not exist.

        Raises:
            InvalidTraceData: the new name or data cannot be stored (nothing is changed).
        """
        q.require_text("name", name, optional=True)
        entries = self._prepare(check_trace_data(trace_data)) if trace_data is not None else None
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        if (yield _one(q.LOCK_TRACE, {"id": tid, "scope": self._scope})) is None:
            return False
        if name is not None:
            yield _count(q.RENAME, {"name": name, "id": tid, "scope": self._scope})
        if entries is not None:
            yield _count(q.DELETE_ENTRIES, {"id": tid})
            yield _count(q.RESET_ENTRIES, {"id": tid})
            yield _one(q.APPEND, _append_params(trace_id=tid, entries=entries))
            self._offsets.forget()
        return True

    @operation
    def delete_trace(self, trace_id: str) -> Op[bool]:
        """Delete one trace and its entries. False when it did not exist."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        deleted = yield _count(q.DELETE_ONE, {"id": tid, "scope": self._scope})
        self._offsets.forget()
        return deleted > 0

    @operation
    def upsert_trace_by_thread(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> Op[str]:
        """Create the thread's trace or bring it up to date with ``trace_data``.

        ``trace_data`` is the complete trace so far; only the entries beyond those already
        stored are converted, sent and written, so a call costs O(new entries).
        ``name=None`` keeps the stored name. Returns the trace id, the same for the whole
        thread.

        Raises:
            InvalidTraceData: an argument or a new entry cannot be stored (nothing is changed).
        """
        user_id = self._writer_id(user_id)
        q.require_text("provider_id", provider_id, optional=True)
        q.require_text("thread_id", thread_id)
        q.require_text("name", name, optional=True)
        if not isinstance(trace_data, list):
            check_trace_data(trace_data)  # raises the usual message
        # Entries already stored are not looked at again (that would make each call O(n));
        # the new ones are checked one by one when they are prepared.
        base = {"user_id": user_id, "provider_id": provider_id, "thread_id": thread_id, "name": name}
        known = self._offsets.get((user_id, thread_id))
        if known is None:
            offset = 0 if len(trace_data) <= PROBE_AFTER else len(trace_data)
        else:
            offset = min(known, len(trace_data))
        entries = self._prepare(trace_data[offset:], offset)
        row = yield _one(q.APPEND, _append_params(entries=entries, offset=offset, **base))
        if not row["in_sync"]:
            offset = row["entry_count"]
            entries = self._prepare(trace_data[offset:], offset)
            row = yield _one(q.APPEND, _append_params(entries=entries, offset=offset, **base))
        self._offsets.put((user_id, thread_id), row["entry_count"])
        return row["trace_id"]

    # -- what the rest of the product needs -----------------------------------------------

    @operation
    def ping(self) -> Op[bool]:
        """True when the server answers."""
        try:
            yield _one(q.PING)
        except DatabaseUnavailable:
            return False
        return True

    @operation
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
        new_turn: bool = False,
    ) -> Op[AppendResult]:
        """Append entries to a trace in one round trip; costs O(len(entries)).

        Give ``trace_id``, or ``thread_id`` and ``user_id`` to append to the thread's most
        recent trace (created, with ``new_trace_id`` if given, when the thread has none).
        ``status`` and ``name``, when given, are set in the same statement. ``new_turn``
        starts the next turn of the conversation: these entries and every later one carry
        its number (``turn``) until the next turn starts.

        Raises:
            InvalidTraceData: bad arguments or entries (nothing is written).
            TraceNotFound: ``trace_id`` does not exist.
        """
        check_trace_data(entries)
        if status is not None:
            q.require_status(status)
        q.require_text("name", name, optional=True)
        params = _append_params(
            entries=self._prepare(entries),
            status=status,
            name=name,
            new_turn=bool(new_turn),
            scope=self._scope,
        )
        if trace_id is not None:
            tid = q.parse_uuid(trace_id)
            if tid is None:
                raise TraceNotFound(f"no trace has the id {trace_id!r}")
            params["trace_id"] = tid
        else:
            params["thread_id"] = q.require_text("thread_id", thread_id)
            params["user_id"] = self._writer_id(user_id)
            params["provider_id"] = q.require_text("provider_id", provider_id, optional=True)
            if new_trace_id is not None:
                params["new_id"] = q.parse_uuid(new_trace_id)
        row = yield _one(q.APPEND, params)
        return AppendResult(
            row["trace_id"], row["first_seq"], row["entry_count"], row["written"], row["created"], row["turn"]
        )

    @operation
    def get_summary(self, trace_id: str) -> Op[TraceSummary | None]:
        """A trace's header without entries, or None."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.SUMMARY_BY_ID, {"id": tid, "scope": self._scope})
        return q.summary_from_row(row) if row else None

    @operation
    def get_entries(
        self, trace_id: str, *, after_seq: int = -1, limit: int = 100_000
    ) -> Op[list[dict[str, Any]]]:
        """Entries with their columns (seq, node, kind, name, status, started_at, ended_at,
        duration_ms, turn, data), in seq order, after ``after_seq``."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return []
        rows = yield _all(
            q.ENTRIES,
            {"trace_id": tid, "after_seq": int(after_seq), "limit": int(limit), "scope": self._scope},
        )
        return rows

    @operation
    def entry_columns(
        self, trace_id: str, *, after_seq: int = -1, limit: int = MAX_ENTRY_ROWS
    ) -> Op[dict[str, list[Any]]]:
        """A trace's entries as columns (seq, node, kind, name, status, started_at, ended_at,
        duration_ms, turn), in seq order, after ``after_seq``, without their JSON data: what a
        timeline or a table of steps needs, read in one go. Empty lists for an unknown id."""
        empty: dict[str, list[Any]] = {name: [] for name in q.ENTRY_FIELDS}
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return empty
        params = {"trace_id": tid, "after_seq": int(after_seq), "limit": int(limit), "scope": self._scope}
        rows = yield _all(q.ENTRY_COLUMNS, params, rows="tuple", timeout_ms=DASHBOARD_TIMEOUT_MS)
        if not rows:
            return empty
        return {
            name: list(values) for name, values in zip(q.ENTRY_FIELDS, zip(*rows, strict=True), strict=True)
        }

    @operation
    def entries_by_seq(self, trace_id: str, seqs: list[int]) -> Op[list[dict[str, Any]]]:
        """The chosen entries of a trace, with their data, in seq order."""
        tid = q.parse_uuid(trace_id)
        if tid is None or not seqs:
            return []
        try:
            clean = [int(s) for s in seqs]
        except (TypeError, ValueError) as exc:
            raise InvalidTraceData(f"seqs must be integers: {exc}") from exc
        rows = yield _all(q.ENTRIES_BY_SEQ, {"trace_id": tid, "seqs": clean, "scope": self._scope})
        return rows

    @operation
    def get_entry(self, trace_id: str, seq: int) -> Op[dict[str, Any] | None]:
        """One entry of a trace with its columns and data, or None."""
        tid = q.parse_uuid(trace_id)
        if tid is None or isinstance(seq, bool) or not isinstance(seq, int):
            return None
        rows = yield _all(q.ENTRIES_BY_SEQ, {"trace_id": tid, "seqs": [seq], "scope": self._scope})
        return rows[0] if rows else None

    @operation
    def filter_choices(self, limit: int = MAX_CHOICES) -> Op[dict[str, list[str]]]:
        """Users and node names to offer in filter widgets (bounded, fast on large tables)."""
        params = {"limit": limit, "scope": self._scope}
        nodes = yield _all(q.RECENT_NODES, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
        if self._scope is not None:
            users = [self._scope]
        else:
            rows = yield _all(q.DISTINCT_USERS, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
            users = [r["user_id"] for r in rows]
        return {"users": users, "nodes": [r["node"] for r in nodes]}

    @operation
    def overview(
        self, since: datetime, until: datetime, user_id: str | None = None, top_users: int = 15
    ) -> Op[Overview]:
        """Traces per day and status, entries and step durations per node, busiest users and
        totals, over the traces created in ``[since, until)``.

        Raises:
            InvalidTraceData: ``since``/``until`` are not timezone-aware datetimes in order.
        """
        for label, value in (("since", since), ("until", until)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise InvalidTraceData(f"{label} must be a timezone-aware datetime")
        if since >= until:
            raise InvalidTraceData("since must be before until")
        q.require_text("user_id", user_id, optional=True)
        if self._scope is not None:
            if user_id not in (None, "", self._scope):
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            user_id = self._scope
        params = {"since": since, "until": until, "user_id": user_id or None, "top": int(top_users)}
        limit = DASHBOARD_TIMEOUT_MS
        totals = dict((yield _one(q.OVERVIEW_TOTALS, params, timeout_ms=limit)) or {})
        totals.update((yield _one(q.OVERVIEW_STEP_PERCENTILES, params, timeout_ms=limit)) or {})
        per_day = yield _all(q.OVERVIEW_PER_DAY, params, timeout_ms=limit)
        per_node = yield _all(q.OVERVIEW_PER_NODE, params, timeout_ms=limit)
        per_user = yield _all(q.OVERVIEW_PER_USER, params, timeout_ms=limit)
        return Overview(since, until, totals, per_day, per_node, per_user)

    @operation
    def list_traces(
        self, filter: TraceFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> Op[TracePage]:
        """One page of matching traces, most recently updated first.

        Pass the returned ``next_cursor`` back for the next page; keyset pagination makes a
        deep page as fast as the first.
        """
        limit, _ = q.require_limit(limit)
        query, params = q.list_query(filter, limit, cursor, scope=self._scope)
        # Never prepared: a prepared statement soon gets a generic plan that cannot see the
        # filter's values, and the best plan here depends on them (how rare a word is).
        rows = yield _all(query, params, prepare=False)
        return q.page_from_rows(rows, limit)

    @operation
    def count_traces(self, filter: TraceFilter | None = None) -> Op[int]:
        """How many traces match."""
        query, params = q.count_query(filter, scope=self._scope)
        row = yield _one(query, params, prepare=False)
        return int(row["n"]) if row else 0

    @operation
    def count_traces_bounded(
        self, filter: TraceFilter | None = None, *, budget_ms: int = 100
    ) -> Op[tuple[int, bool]]:
        """``(n, True)`` when the exact count takes at most ``budget_ms``, else the planner's
        estimate as ``(n, False)``: for a page that must answer at once on any table size."""
        query, params = q.count_query(filter, scope=self._scope)
        try:
            row = yield _one(query, params, prepare=False, timeout_ms=int(budget_ms))
            return (int(row["n"]) if row else 0), True
        except QueryTimeout:
            pass
        equery, eparams = q.count_estimate_query(filter, scope=self._scope)
        plan = yield _one(equery, eparams, prepare=False)
        return q.estimate_from_plan(plan), False

    @operation
    def delete_traces(
        self,
        filter: TraceFilter | None = None,
        *,
        allow_all: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> Op[int]:
        """Delete every matching trace (not one page), in batches; return how many.

        An empty filter deletes everything only with ``allow_all=True``. ``progress`` is
        called with the running total after each batch. The batches run one after another on
        one connection.
        """
        if q.is_empty_filter(filter) and not allow_all:
            raise InvalidTraceData("refusing to delete every trace: pass allow_all=True")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        query, params = q.delete_batch_query(filter, batch_size, scope=self._scope)
        total = 0
        try:
            while True:
                n = yield _count(query, params, prepare=False)
                total += n
                if progress:
                    progress(total)
                if n < batch_size:
                    break
        finally:
            self._offsets.forget()
        return total

    @operation
    def set_status(self, trace_id: str, status: str) -> Op[bool]:
        """Set a trace's status: running, completed, failed or interrupted."""
        q.require_status(status)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.SET_STATUS, {"status": status, "id": tid, "scope": self._scope})) > 0

    @operation
    def rename_trace(self, trace_id: str, name: str) -> Op[bool]:
        """Give a trace a new name. False when it does not exist."""
        q.require_text("name", name)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.RENAME, {"name": name, "id": tid, "scope": self._scope})) > 0

    @operation
    def update_metadata(self, trace_id: str, metadata: dict[str, Any]) -> Op[bool]:
        """Merge keys into a trace's metadata."""
        param = q.metadata_param(metadata)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.MERGE_METADATA, {"metadata": param, "id": tid, "scope": self._scope})) > 0

    @operation(transaction=True)
    def set_trace_times(self, times: list[tuple[str, datetime, datetime]]) -> Op[int]:
        """Set ``created_at``/``updated_at`` of traces, given as ``(id, created, updated)``:
        history for imported or demo data. Returns how many traces exist among them.

        Only these rows are locked, and only for this transaction; no table-owner rights
        are needed.
        """
        if not times:
            return 0
        ids, created, updated = [], [], []
        for item in times:
            tid = q.parse_uuid(item[0]) if isinstance(item, (tuple, list)) and len(item) == 3 else None
            if tid is None or not all(isinstance(t, datetime) and t.tzinfo for t in item[1:]):
                raise InvalidTraceData(
                    f"times must be (trace id, aware created, aware updated), got {item!r}"
                )
            ids.append(tid)
            created.append(item[1])
            updated.append(item[2])
        yield _one(q.KEEP_TIMES)
        params = {"ids": ids, "created": created, "updated": updated, "scope": self._scope}
        return (yield _count(q.SET_TIMES, params))

    @operation
    def server_status(self) -> Op[ServerStatus]:
        """Server label, version, migrations, exact row counts per table, indexes, functions.

        Raises:
            AccessDenied: the store is seen by one user (:meth:`as_user`); this is every user's.
        """
        if self._scope is not None:
            raise AccessDenied("the server status covers every user's traces")
        version = (yield _one(q.STATUS_VERSION))["version"]
        migrations = [r["name"] for r in (yield _all(q.STATUS_MIGRATIONS))]
        tables = {}
        for table in q.STATUS_TABLES:
            tables[table] = int((yield _one(q.count_rows(table)))["n"])
        indexes = yield _all(q.STATUS_INDEXES, {"tables": list(q.STATUS_TABLES)})
        functions = yield _all(q.STATUS_FUNCTIONS, {})
        return ServerStatus(
            label=self.server.label,
            version=version,
            migrations=migrations,
            tables=tables,
            indexes=[r["indexname"] for r in indexes],
            functions=[r["function"] for r in functions],
        )
