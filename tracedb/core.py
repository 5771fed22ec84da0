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
import os
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Self, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
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
from .indexer import Indexer
from .jsonsafe import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ENTRY_BYTES,
    PreparedEntries,
    _parse_time,
    chain,
    check_trace_data,
    prepare_entries,
    to_jsonable,
    unwrap_trace_data,
)
from .limits import ABANDON_AFTER, DASHBOARD_TIMEOUT_MS, MAX_CHOICES, MAX_ENTRY_ROWS
from .models import AppendResult, Overview, ServerStatus, Trace, TraceFilter, TracePage, TraceSummary
from .sent import SentLists
from .server import ServerInfo

T = TypeVar("T")

# A list of fewer entries than this is sent whole when this process does not know what the
# thread holds; a longer one is preceded by a probe of the stored count and fingerprint, so
# that only what the trace lacks is sent.
PROBE_AFTER = 50


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

    A value the database cannot hold (too long for an index, too many words for a search
    vector, nested too deeply) and data it refuses are InvalidTraceData: input to change, not
    an outage to wait out. A statement cancelled by a time limit or a cancel request is
    QueryTimeout, a missing trace TraceNotFound, a lost server DatabaseUnavailable. Anything
    else is a TraceDBError.
    """
    if isinstance(exc, TraceDBError):
        return exc
    primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) and exc.diag else None
    if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        return InvalidTraceData(f"a value is too large for the database: {primary or exc}")
    if isinstance(exc, (psycopg.errors.DataError, psycopg.errors.IntegrityError)):
        return InvalidTraceData(f"the database refused the data: {primary or exc}")
    if isinstance(exc, psycopg.errors.NoDataFound):  # tracedb_append on a missing trace
        return TraceNotFound(primary or str(exc))
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return QueryTimeout("the database cancelled the statement (time limit or cancel request)")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)):
        return DatabaseUnavailable(f"the database is unreachable: {exc}")
    return TraceDBError(f"the database failed the request ({type(exc).__name__}): {primary or exc}")


class operation:  # noqa: N801 - used as a decorator, like property
    """Marks a store method written as a generator of :class:`Statement`.

    On an instance, the method becomes what that instance's ``_run`` makes of the generator:
    the result itself for the sync store, a coroutine for the async store. With
    ``transaction=True`` every statement of the operation runs in one transaction.

    Where it runs: ``read=True`` marks an operation that only reads traces, which a store
    with a read replica may run there (``_run_read``, see :mod:`tracedb.routing`); every
    other operation runs on the primary, and the reads after it wait for the replica to
    catch up with the primary, unless it is marked ``changes=False`` (it reads nothing a
    later read could go back from: ``ping``, ``server_status``).
    """

    def __init__(
        self,
        fn: Callable[..., Op[Any]] | None = None,
        *,
        transaction: bool = False,
        read: bool = False,
        changes: bool = True,
    ) -> None:
        self.fn = fn
        self.transaction = transaction
        self.read = read
        self.changes = changes
        if fn is not None:
            functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, fn: Callable[..., Op[Any]]) -> operation:
        return operation(fn, transaction=self.transaction, read=self.read, changes=self.changes)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        fn, transaction, changes = self.fn, self.transaction, self.changes
        assert fn is not None

        if self.read and not transaction:

            @functools.wraps(fn)
            def read(*args: Any, **kwargs: Any) -> Any:
                # a factory, not a generator: a read may run again on the primary
                return obj._run_read(lambda: fn(obj, *args, **kwargs))

            return read

        @functools.wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            if changes:  # the two-argument call, as a wrapper of _run may expect
                return obj._run(fn(obj, *args, **kwargs), transaction)
            return obj._run(fn(obj, *args, **kwargs), transaction, track=False)

        return bound


def _one(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="one", **kw)


def _all(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="all", **kw)


def _count(query: str | sql.Composable, params: Mapping[str, Any] | None = None, **kw: Any) -> Statement:
    return Statement(query, params, fetch="rowcount", **kw)


_APPEND_KEYS = (
    "trace_id",
    "user_id",
    "provider_id",
    "thread_id",
    "name",
    "entries",
    "offset",
    "status",
    "new_id",
    "scope",
    "batch",
    "chain",
    "running",
)


def _append_params(**params: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(_APPEND_KEYS)
    base.update(entries="[]", new_turn=False, replace=False, dropped=0)
    return {**base, **params}


def _valid_thread(thread_id: Any) -> bool:
    return isinstance(thread_id, str) and bool(thread_id) and "\x00" not in thread_id


def _abandon_after() -> float:
    raw = os.environ.get("TRACEDB_ABANDON_AFTER")
    if not raw:
        return ABANDON_AFTER
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidTraceData(f"TRACEDB_ABANDON_AFTER must be a number of seconds, got {raw!r}") from exc
    if not value > 0:
        raise InvalidTraceData(f"TRACEDB_ABANDON_AFTER must be positive, got {raw!r}")
    return value


def _running_param(start: Mapping[str, Any] | None, end: list[str] | None) -> Jsonb | None:
    """The ``p_running`` of an append: markers of nodes that started, ids of tasks that ended."""
    if start is not None and not isinstance(start, Mapping):
        raise InvalidTraceData("running_start must be a dict of task id to marker")
    if end is not None and (isinstance(end, (str, bytes)) or not isinstance(end, (list, tuple))):
        raise InvalidTraceData("running_end must be a list of task ids")
    if not start and not end:
        return None
    markers: dict[str, Any] = {}
    for task, marker in (start or {}).items():
        task_id = q.require_text("task id", str(task))
        if not isinstance(marker, Mapping):
            raise InvalidTraceData(f"the marker of running task {task_id!r} must be a dict")
        markers[task_id or ""] = to_jsonable(marker)
    ended = [q.require_text("task id", str(task)) for task in (end or [])]
    return Jsonb({"start": markers, "end": ended})


from .keys import KeyOperations  # noqa: E402 - keys.py builds on operation and Statement above


class StoreOperations(KeyOperations):
    """Every store operation. Subclasses provide ``_run`` (how a generator is driven),
    ``server``, and the connection handling."""

    server: ServerInfo
    _scope: str | None = None
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    timeout: float = 10.0
    abandon_after: float = ABANDON_AFTER
    _indexer: Indexer | None = None

    def _init_common(self, max_entry_bytes: int, max_depth: int, timeout: float) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.max_depth = max_depth
        self.timeout = timeout
        self.abandon_after = _abandon_after()
        self._sent = SentLists()
        self._scope = None

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

    def _wrote(self, row: Mapping[str, Any]) -> None:
        """An append wrote entries (or replaced them): index them for search, behind."""
        if (row["written"] or row["replaced"]) and self._indexer is not None:
            self._indexer.written(row["trace_id"])

    def _by_id(self, **params: Any) -> dict[str, Any]:
        """Parameters of a statement on one trace: the values, the scope, the abandon limit."""
        return {**params, "scope": self._scope, "abandon_after": self.abandon_after}

    def _run(self, op: Op[Any], transaction: bool, track: bool = True) -> Any:  # pragma: no cover - per shell
        """Run ``op`` on the primary; ``track``: reads after it wait for a replica to catch up."""
        raise NotImplementedError

    def _run_read(self, make_op: Callable[[], Op[Any]]) -> Any:
        """Run a read (made by ``make_op``, as often as needed) on the replica or the primary."""
        return self._run(make_op(), False)

    def _prepare(
        self, entries: list[Any], start_index: int = 0, checkpoint_ids: list[str | None] | None = None
    ) -> PreparedEntries:
        return prepare_entries(
            entries,
            max_entry_bytes=self.max_entry_bytes,
            max_depth=self.max_depth,
            start_index=start_index,
            checkpoint_ids=checkpoint_ids,
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
        prepared = self._prepare(check_trace_data(trace_data))
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
        self._wrote((yield _one(q.APPEND, _append_params(trace_id=trace_id, entries=prepared.payload()))))
        # the thread's most recent trace is this one now: what was sent before is stale
        self._sent.forget((user_id, thread_id))
        return trace_id

    @operation(read=True)
    def load_trace_by_id(self, trace_id: str) -> Op[Trace | None]:
        """The trace with this id, entries included; None for an unknown or malformed id."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.LOAD_BY_ID, self._by_id(id=tid))
        return q.trace_from_row(row) if row else None

    @operation(read=True)
    def load_trace_by_thread(self, thread_id: str) -> Op[Trace | None]:
        """The thread's most recently created trace, entries included, or None."""
        if not _valid_thread(thread_id):
            return None
        row = yield _one(q.LOAD_BY_THREAD, self._by_id(thread_id=thread_id))
        return q.trace_from_row(row) if row else None

    @operation(read=True)
    def get_user_traces(
        self, user_id: str, provider_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Op[list[TraceSummary]]:
        """A user's traces (of one provider, if given), most recently updated first, without
        entries."""
        q.require_text("user_id", user_id)
        q.require_text("provider_id", provider_id, optional=True)
        limit, offset = q.require_limit(limit, offset)
        params = self._by_id(user_id=user_id, provider_id=provider_id, limit=limit, offset=offset)
        rows = yield _all(q.USER_TRACES, params)
        return [q.summary_from_row(r) for r in rows]

    @operation(transaction=True)
    def update_trace(
        self, trace_id: str, name: str | None = None, trace_data: list[dict[str, Any]] | None = None
    ) -> Op[bool]:
        """Rename a trace and/or replace all its entries with ``trace_data``. False when it
        does not exist. Both happen in one transaction, or nothing does.

        Raises:
            InvalidTraceData: the new name or data cannot be stored (nothing is changed).
        """
        q.require_text("name", name, optional=True)
        prepared = self._prepare(check_trace_data(trace_data)) if trace_data is not None else None
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        if (yield _one(q.LOCK_TRACE, self._by_id(id=tid))) is None:
            return False
        if name is not None:
            yield _count(q.RENAME, self._by_id(name=name, id=tid))
        if prepared is not None:
            params = _append_params(
                trace_id=tid,
                entries=prepared.payload(),
                offset=0,
                chain=chain("", prepared.digests),
                replace=True,
                scope=self._scope,
            )
            self._wrote((yield _one(q.APPEND, params)))
            self._sent.forget_trace(tid)
        return True

    @operation(transaction=True)
    def patch_trace(
        self,
        trace_id: str,
        *,
        name: str | None = None,
        trace_data: list[Any] | None = None,
        status: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Op[TraceSummary | None]:
        """Rename, replace the entries, set the status and merge metadata in one transaction:
        every value is checked before anything is written, so one bad field changes nothing.
        Returns the trace's header afterwards, or None when it does not exist.

        Raises:
            InvalidTraceData: a value cannot be stored (nothing is changed).
        """
        if status is not None:
            q.require_status(status)
        meta = q.metadata_param(metadata) if metadata is not None else None
        # The rename and the replacement are update_trace's, run in this transaction.
        found = yield from type(self).update_trace.fn(self, trace_id, name, trace_data)
        if not found:
            return None
        tid = q.parse_uuid(trace_id)
        if status is not None:
            yield _count(q.SET_STATUS, self._by_id(status=status, id=tid))
        if meta is not None:
            yield _count(q.MERGE_METADATA, self._by_id(metadata=meta, id=tid))
        row = yield _one(q.SUMMARY_BY_ID, self._by_id(id=tid))
        return q.summary_from_row(row) if row else None

    @operation
    def delete_trace(self, trace_id: str) -> Op[bool]:
        """Delete one trace and its entries. False when it did not exist."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        deleted = yield _count(q.DELETE_ONE, self._by_id(id=tid))
        self._sent.forget_trace(tid)
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
        """Make the thread's trace exactly ``trace_data``; create it if the thread has none.

        ``trace_data`` is the complete trace so far. When it extends what is stored (the
        streaming case), only the new entries are converted, sent and written, and nothing
        stored is read: a call costs O(new entries). When it differs (shorter, another
        prefix, an entry edited), the stored entries are replaced by it in one transaction.
        Concurrent upserts of different lists leave one of the lists, never a mix.
        ``name=None`` keeps the stored name. Returns the trace id, the same for the whole
        thread.

        This process remembers the list it stored last per thread (see
        :mod:`tracedb.sent`); the database checks every claim against a fingerprint of the
        stored entries, so a stale memory (another process wrote) only costs a second round
        trip.

        Raises:
            InvalidTraceData: an argument or an entry cannot be stored (nothing is changed).
        """
        user_id = self._writer_id(user_id)
        q.require_text("provider_id", provider_id, optional=True)
        q.require_text("thread_id", thread_id)
        q.require_text("name", name, optional=True)
        entries = unwrap_trace_data(trace_data)
        key = (user_id, thread_id)
        who = {"user_id": user_id, "provider_id": provider_id, "thread_id": thread_id, "name": name}
        n = len(entries)

        sent = self._sent.get(key)
        if sent is not None and sent.extended_by(entries):
            # Only the new entries: the database appends them if its fingerprint still is
            # that of the list this process stored.
            start = len(sent.refs)
            new = self._prepare(entries[start:], start)
            tail = chain(sent.chain[start], new.digests)
            row = yield _one(q.APPEND, _append_params(entries=new.payload(), offset=start, chain=tail, **who))
            if row["in_sync"]:
                self._wrote(row)
                self._sent.put(key, row["trace_id"], entries, sent.chain[:start] + tail, extended=True)
                return row["trace_id"]
            state: tuple[int, str | None] | None = (row["entry_count"], row["fingerprint"])
        else:
            state = None

        # The whole list: fingerprint it (once per thread and process), then send what the
        # stored trace lacks, or everything to replace it.
        whole = self._prepare(entries)
        fingerprints = chain("", whole.digests)
        if state is None and n > PROBE_AFTER:
            probe = yield _one(q.THREAD_STATE, {"thread_id": thread_id, "user_id": user_id})
            state = (probe["entry_count"], probe["fingerprint"]) if probe else (0, "")
        start = 0
        if state is not None and state[0] <= n and state[1] == fingerprints[state[0]]:
            start = state[0]
        params = _append_params(
            entries=whole.payload(start), offset=start, chain=fingerprints[start:], replace=start == 0, **who
        )
        row = yield _one(q.APPEND, params)
        if not row["in_sync"]:
            # another writer changed the trace between the probe and this call: replace
            params = _append_params(
                entries=whole.payload(), offset=0, chain=fingerprints, replace=True, **who
            )
            row = yield _one(q.APPEND, params)
        self._wrote(row)
        self._sent.put(key, row["trace_id"], entries, fingerprints, extended=False)
        return row["trace_id"]

    # -- what the rest of the product needs -----------------------------------------------

    @operation(changes=False)
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
        batch_id: str | None = None,
        checkpoint_ids: list[str | None] | None = None,
        running_start: Mapping[str, Mapping[str, Any]] | None = None,
        running_end: list[str] | None = None,
        dropped: int = 0,
    ) -> Op[AppendResult]:
        """Append entries to a trace in one round trip; costs O(len(entries)).

        Give ``trace_id``, or ``thread_id`` and ``user_id`` to append to the most recent
        trace of that thread and user (created, with ``new_trace_id`` if given, when there is
        none). ``status`` and ``name``, when given, are set in the same statement.

        Args:
            entries: the entries, in order.
            new_turn: start the next turn of the conversation: these entries and every later
                one carry its number (``turn``) until the next turn starts.
            batch_id: a UUID naming this batch. Sending the same batch again (after a reply
                was lost) writes nothing and answers ``duplicate=True``: no entry is stored
                twice. The last 16 batch ids of a trace are remembered.
            checkpoint_ids: the checkpoint each entry's step started from, one per entry
                (None where unknown); stored in the entries' ``checkpoint_id`` column.
            running_start: nodes that started running, as ``{task id: marker}``; a marker is
                a dict with at least ``node`` and ``started_at``. Readers see them as steps
                with status ``running`` until ``running_end`` names their task or the trace
                ends.
            running_end: task ids of nodes that stopped running.
            dropped: entries the writer had to drop (counted on the trace).

        Raises:
            InvalidTraceData: bad arguments or entries (nothing is written).
            TraceNotFound: ``trace_id`` does not exist (or this view may not see it).
        """
        entries = check_trace_data(entries)
        if status is not None:
            q.require_status(status)
        q.require_text("name", name, optional=True)
        if checkpoint_ids is not None and (
            not isinstance(checkpoint_ids, list) or len(checkpoint_ids) != len(entries)
        ):
            raise InvalidTraceData("checkpoint_ids must be a list with one item per entry")
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise InvalidTraceData(f"dropped must be a non-negative integer, got {dropped!r}")
        batch = None
        if batch_id is not None:
            batch = q.parse_uuid(batch_id)
            if batch is None:
                raise InvalidTraceData(f"batch_id must be a UUID, got {batch_id!r}")
        prepared = self._prepare(entries, checkpoint_ids=checkpoint_ids)
        params = _append_params(
            entries=prepared.payload(),
            status=status,
            name=name,
            new_turn=bool(new_turn),
            scope=self._scope,
            batch=batch,
            running=_running_param(running_start, running_end),
            dropped=dropped,
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
        if row["written"]:
            self._wrote(row)
            self._sent.forget_trace(row["trace_id"])
        return AppendResult(
            row["trace_id"],
            row["first_seq"],
            row["entry_count"],
            row["written"],
            row["created"],
            row["turn"],
            row["duplicate"],
        )

    @operation
    def touch(self, trace_id: str) -> Op[bool]:
        """Beat a running trace's heartbeat: its writer is alive (a node may run for minutes
        without producing entries). False when the trace is not running or does not exist."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.TOUCH, self._by_id(id=tid))) > 0

    @operation(read=True)
    def get_summary(self, trace_id: str) -> Op[TraceSummary | None]:
        """A trace's header without entries, or None."""
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.SUMMARY_BY_ID, self._by_id(id=tid))
        return q.summary_from_row(row) if row else None

    def _running_rows(self, markers: list[dict[str, Any]], with_data: bool) -> list[dict[str, Any]]:
        """Steps that are running now, as entry rows (no seq yet)."""
        rows = []
        for m in markers:
            marker = m["marker"] if isinstance(m["marker"], dict) else {}
            status = "running" if m["trace_status"] == "running" else "abandoned"
            row: dict[str, Any] = dict.fromkeys(q.ENTRY_FIELDS)
            row.update(
                node=marker.get("node"),
                kind=marker.get("kind") or "node",
                name=marker.get("name") or marker.get("node"),
                status=status,
                started_at=_parse_time(marker.get("started_at")),
                turn=m["turns"] or None,
                checkpoint_id=marker.get("checkpoint_id"),
            )
            if with_data:
                row["data"] = {"task_id": m["task_id"], "status": status, **marker}
            rows.append(row)
        return rows

    @operation(read=True)
    def get_entries(
        self, trace_id: str, *, after_seq: int = -1, limit: int = 100_000, running: bool = True
    ) -> Op[list[dict[str, Any]]]:
        """Entries with their columns (seq, node, kind, name, status, started_at, ended_at,
        duration_ms, turn, checkpoint_id, model, input_tokens, output_tokens, total_tokens,
        cost_usd, data), in seq order, after ``after_seq``.

        With ``running``, the nodes running right now follow as rows with ``seq`` None and
        status ``running`` (``abandoned`` when the trace's writer is gone).
        """
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return []
        params = self._by_id(
            trace_id=tid,
            after_seq=q.require_int("after_seq", after_seq, minimum=-1),
            limit=q.require_int("limit", limit, minimum=1),
        )
        rows = yield _all(q.ENTRIES, params)
        if running:
            rows = rows + self._running_rows((yield _all(q.RUNNING, params)), with_data=True)
        return rows

    @operation(read=True)
    def entry_columns(
        self, trace_id: str, *, after_seq: int = -1, limit: int = MAX_ENTRY_ROWS, running: bool = True
    ) -> Op[dict[str, list[Any]]]:
        """A trace's entries as columns (those of :meth:`get_entries` but ``data``), in seq
        order, after ``after_seq``, without their JSON: what a timeline or a table of steps
        needs, read in one go. The running nodes follow as in :meth:`get_entries`. Empty lists
        for an unknown id."""
        columns: dict[str, list[Any]] = {name: [] for name in q.ENTRY_FIELDS}
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return columns
        params = self._by_id(
            trace_id=tid,
            after_seq=q.require_int("after_seq", after_seq, minimum=-1),
            limit=q.require_int("limit", limit, minimum=1),
        )
        rows = yield _all(q.ENTRY_COLUMNS, params, rows="tuple", timeout_ms=DASHBOARD_TIMEOUT_MS)
        if rows:
            columns = {
                name: list(values)
                for name, values in zip(q.ENTRY_FIELDS, zip(*rows, strict=True), strict=True)
            }
        if running:
            for row in self._running_rows((yield _all(q.RUNNING, params)), with_data=False):
                for name in q.ENTRY_FIELDS:
                    columns[name].append(row[name])
        return columns

    @operation(read=True)
    def entries_by_seq(self, trace_id: str, seqs: list[int]) -> Op[list[dict[str, Any]]]:
        """The chosen entries of a trace, with their data, in seq order."""
        tid = q.parse_uuid(trace_id)
        if tid is None or not seqs:
            return []
        if not isinstance(seqs, (list, tuple)):
            raise InvalidTraceData(f"seqs must be a list of integers, got {type(seqs).__name__}")
        clean = [q.require_int("seq", s, minimum=0) for s in seqs]
        rows = yield _all(q.ENTRIES_BY_SEQ, self._by_id(trace_id=tid, seqs=clean))
        return rows

    @operation(read=True)
    def get_entry(self, trace_id: str, seq: int) -> Op[dict[str, Any] | None]:
        """One entry of a trace with its columns and data, or None."""
        tid = q.parse_uuid(trace_id)
        if tid is None or isinstance(seq, bool) or not isinstance(seq, int):
            return None
        rows = yield _all(q.ENTRIES_BY_SEQ, self._by_id(trace_id=tid, seqs=[seq]))
        return rows[0] if rows else None

    @operation(read=True)
    def filter_choices(self, limit: int = MAX_CHOICES) -> Op[dict[str, list[str]]]:
        """Users and node names to offer in filter widgets (bounded, fast on large tables)."""
        params = {"limit": q.require_int("limit", limit, minimum=1, maximum=10_000), "scope": self._scope}
        nodes = yield _all(q.RECENT_NODES, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
        if self._scope is not None:
            users = [self._scope]
        else:
            rows = yield _all(q.DISTINCT_USERS, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
            users = [r["user_id"] for r in rows]
        return {"users": users, "nodes": [r["node"] for r in nodes]}

    @operation(read=True)
    def overview(
        self,
        since: datetime,
        until: datetime,
        user_id: str | None = None,
        top_users: int = 15,
        bucket: str = "day",
    ) -> Op[Overview]:
        """Over the traces created in ``[since, until)``: totals, traces per day and status
        (with tokens and cost), latency per ``bucket`` ("hour", "day" or "week": trace work
        and step duration, p50 and p95),
        entries and step durations per node, tokens and cost per model, busiest users.

        Raises:
            InvalidTraceData: ``since``/``until`` are not timezone-aware datetimes in order.
        """
        for label, value in (("since", since), ("until", until)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise InvalidTraceData(f"{label} must be a timezone-aware datetime")
        if since >= until:
            raise InvalidTraceData("since must be before until")
        if bucket not in ("hour", "day", "week"):
            raise InvalidTraceData(f"bucket must be hour, day or week, got {bucket!r}")
        q.require_text("user_id", user_id, optional=True)
        if self._scope is not None:
            if user_id not in (None, "", self._scope):
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            user_id = self._scope
        params = {
            "since": since,
            "until": until,
            "user_id": user_id or None,
            "top": q.require_int("top_users", top_users, minimum=1, maximum=1000),
            "abandon_after": self.abandon_after,
            "bucket": bucket,
        }
        limit = DASHBOARD_TIMEOUT_MS
        totals = dict((yield _one(q.OVERVIEW_TOTALS, params, timeout_ms=limit)) or {})
        totals.update((yield _one(q.OVERVIEW_STEP_PERCENTILES, params, timeout_ms=limit)) or {})
        per_day = yield _all(q.OVERVIEW_PER_DAY, params, timeout_ms=limit)
        latency = yield _all(q.OVERVIEW_LATENCY, params, timeout_ms=limit)
        per_node = yield _all(q.OVERVIEW_PER_NODE, params, timeout_ms=limit)
        per_model = yield _all(q.OVERVIEW_PER_MODEL, params, timeout_ms=limit)
        per_user = yield _all(q.OVERVIEW_PER_USER, params, timeout_ms=limit)
        return Overview(since, until, totals, per_day, per_node, per_user, latency, per_model)

    @operation(read=True)
    def list_traces(
        self,
        filter: TraceFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
        offset: int = 0,
    ) -> Op[TracePage]:
        """One page of matching traces, most recently updated first.

        Pass the returned ``next_cursor`` back for the next page; keyset pagination makes a
        deep page as fast as the first. ``offset`` skips that many matches (as the seed's
        listing did); it costs what it skips.
        """
        limit, offset = q.require_limit(limit, offset)
        query, params = q.list_query(filter, limit, cursor, self._scope, self.abandon_after, offset=offset)
        # Never prepared: a prepared statement soon gets a generic plan that cannot see the
        # filter's values, and the best plan here depends on them (how rare a word is).
        rows = yield _all(query, params, prepare=False)
        return q.page_from_rows(rows, limit)

    @operation(read=True)
    def count_traces(self, filter: TraceFilter | None = None) -> Op[int]:
        """How many traces match."""
        query, params = q.count_query(filter, self._scope, self.abandon_after)
        row = yield _one(query, params, prepare=False)
        return int(row["n"]) if row else 0

    @operation(read=True)
    def count_traces_bounded(
        self, filter: TraceFilter | None = None, *, budget_ms: int = 100
    ) -> Op[tuple[int, bool]]:
        """``(n, True)`` when the exact count takes at most ``budget_ms``, else the planner's
        estimate as ``(n, False)``: for a page that must answer at once on any table size."""
        budget_ms = q.require_int("budget_ms", budget_ms, minimum=1, maximum=3_600_000)
        query, params = q.count_query(filter, self._scope, self.abandon_after)
        try:
            row = yield _one(query, params, prepare=False, timeout_ms=budget_ms)
            return (int(row["n"]) if row else 0), True
        except QueryTimeout:
            pass
        equery, eparams = q.count_estimate_query(filter, self._scope, self.abandon_after)
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

        A filter that can match every trace (no condition, an empty ``contains``, a text of
        negations only) deletes only with ``allow_all=True``. ``progress`` is called with the
        running total after each batch. The batches run one after another on one connection.
        """
        if q.is_empty_filter(filter) and not allow_all:
            raise InvalidTraceData(
                "refusing to delete every trace: this filter can match them all; pass allow_all=True"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        query, params = q.delete_batch_query(filter, batch_size, self._scope, self.abandon_after)
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
            self._sent.forget()
        return total

    @operation
    def prune(
        self,
        older_than: timedelta,
        *,
        keep_last: int = 0,
        status: str | tuple[str, ...] | list[str] | None = None,
        dry_run: bool = False,
        batch_size: int = 1000,
    ) -> Op[int]:
        """Delete the traces not updated for ``older_than``, with their entries: retention.

        Args:
            older_than: age (since the last update) from which a trace goes.
            keep_last: keep this many of the most recently updated traces of each user, however
                old.
            status: only traces of this status (or these), e.g. ``"completed"``.
            dry_run: count what would go, delete nothing.

        Returns:
            How many traces were deleted (or would be, with ``dry_run``).
        """
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise InvalidTraceData(f"older_than must be a positive timedelta, got {older_than!r}")
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise InvalidTraceData(f"keep_last must be a non-negative integer, got {keep_last!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        flt = TraceFilter(status=status) if status else None
        query, params = q.prune_query(
            flt, older_than, keep_last, batch_size, dry_run, self._scope, self.abandon_after
        )
        if dry_run:
            return int((yield _one(query, params, prepare=False))["n"])
        total = 0
        try:
            while True:
                n = yield _count(query, params, prepare=False)
                total += n
                if n < batch_size:
                    break
        finally:
            self._sent.forget()
        return total

    @operation
    def set_status(self, trace_id: str, status: str) -> Op[bool]:
        """Set a trace's status: running, completed, failed or interrupted."""
        q.require_status(status)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.SET_STATUS, self._by_id(status=status, id=tid))) > 0

    @operation
    def rename_trace(self, trace_id: str, name: str) -> Op[bool]:
        """Give a trace a new name. False when it does not exist."""
        q.require_text("name", name)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.RENAME, self._by_id(name=name, id=tid))) > 0

    @operation
    def update_metadata(self, trace_id: str, metadata: dict[str, Any]) -> Op[bool]:
        """Merge keys into a trace's metadata."""
        param = q.metadata_param(metadata)
        tid = q.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.MERGE_METADATA, self._by_id(metadata=param, id=tid))) > 0

    @operation(transaction=True)
    def set_trace_times(self, times: list[tuple[str, datetime, datetime]]) -> Op[int]:
        """Set ``created_at``/``updated_at`` of traces, given as ``(id, created, updated)``:
        history for imported or demo data. Returns how many traces exist among them.

        Only these rows are locked, and only for this transaction; no table-owner rights
        are needed.
        """
        if not isinstance(times, (list, tuple)):
            raise InvalidTraceData("times must be a list of (trace id, created, updated)")
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
    def index_pending(self, limit: int = 1000) -> Op[int]:
        """Index for search the entries of up to ``limit`` traces whose newest entries are not
        indexed yet, whoever wrote them; returns how many traces were indexed. Each store
        does this in the background for what it writes (see :mod:`tracedb.indexer`); this is
        for a database whose writers stopped before their indexer ran."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidTraceData("limit must be a positive integer")
        return int((yield _one(q.INDEX_STALE, {"limit": limit, "age": timedelta(0)}))["n"])

    @operation(changes=False)
    def server_status(self) -> Op[ServerStatus]:
        """Server label, version, migrations, exact row counts per table, indexes, functions.

        Raises:
            AccessDenied: the store is seen by one user (:meth:`as_user`); this is every user's.
        """
        if self._scope is not None:
            raise AccessDenied("the server status covers every user's traces")
        version = (yield _one(q.STATUS_VERSION))["version"]
        migrations = [r["name"] for r in (yield _all(q.STATUS_MIGRATIONS))]
        columns: dict[str, list[str]] = {}
        every_table = list(q.STATUS_TABLES + q.OPTIONAL_STATUS_TABLES)
        for r in (yield _all(q.STATUS_COLUMNS, {"tables": every_table})):
            columns.setdefault(r["table_name"], []).append(r["col"])
        tables = {}
        for table in q.STATUS_TABLES + tuple(t for t in q.OPTIONAL_STATUS_TABLES if t in columns):
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
            columns=columns,
        )
