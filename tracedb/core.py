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
import types
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from . import checks
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
    Payload,
    PreparedEntries,
    prepare_entries,
    to_jsonable,
)
from .limits import ABANDON_AFTER
from .sent import SentLists, TraceCounts
from .server import ServerInfo

T = TypeVar("T")


class _PayloadDumper(Dumper):
    """Sends a :class:`tracedb.jsonsafe.Payload` as its text, made then."""

    def dump(self, obj: Payload) -> bytes:
        return str(obj).encode()


# Every connection made from now on knows how to send a Payload (a class of tracedb's own:
# nothing else a program sends is affected).
psycopg.adapters.register_dumper(Payload, _PayloadDumper)

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
        combine: an append that may share a statement and a commit with other threads'
            appends (see :mod:`tracedb.combine`), when it is its operation's first statement.
        quick: a cheaper statement that does the same when it can (``QUICK_APPEND``), run
            first when this one runs on its own: its row is the result, and when it returns
            none, this statement runs.
        finish: makes the result of the row fetched (with ``fetch="one"``, when there is
            one): a quick append's row of two columns becomes the row of ``APPEND``.
    """

    query: str | sql.Composable
    params: Mapping[str, Any] | None = None
    fetch: Literal["one", "all", "rowcount", "none"] = "all"
    rows: Literal["dict", "tuple"] = "dict"
    prepare: bool | None = None
    timeout_ms: int | None = None
    combine: bool = False
    quick: Statement | None = None
    finish: Callable[[Any], Any] | None = None


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


def statement_error(exc: BaseException, conn: Any) -> TraceDBError:
    """The named error of a statement that failed on ``conn`` (None: no connection was
    had): :func:`translate`'s, or DatabaseUnavailable when the connection died under it
    (behind a pooler a killed server connection shows as a protocol error, "received 2
    results from command 'BEGIN'", not as an OperationalError)."""
    error = translate(exc)
    if conn is not None and conn.broken and not isinstance(error, DatabaseUnavailable):
        error = DatabaseUnavailable(f"the connection to the database was lost: {exc}")
    error.__cause__ = exc
    return error


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
        call = self.__dict__.get("_call")
        if call is None:  # made once per operation, bound per access (a method, not a closure)
            call = self.__dict__["_call"] = self._make_call()
        return types.MethodType(call, obj)

    def _make_call(self) -> Callable[..., Any]:
        fn, transaction, changes = self.fn, self.transaction, self.changes
        assert fn is not None

        if self.read and not transaction:

            def read(obj: Any, *args: Any, **kwargs: Any) -> Any:
                # a factory, not a generator: a read may run again on the primary
                return obj._run_read(lambda: fn(obj, *args, **kwargs))

            return functools.update_wrapper(read, fn)

        if changes:

            def bound(obj: Any, *args: Any, **kwargs: Any) -> Any:
                # the two-argument call, as a wrapper of _run may expect
                return obj._run(fn(obj, *args, **kwargs), transaction)

        else:

            def bound(obj: Any, *args: Any, **kwargs: Any) -> Any:
                return obj._run(fn(obj, *args, **kwargs), transaction, track=False)

        return functools.update_wrapper(bound, fn)


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


_QUICK_NULLS = dict.fromkeys(q.QUICK_COLUMNS)


def _quick_row(trace_id: str, epoch: int, row: tuple[int, int | None]) -> dict[str, Any]:
    """APPEND's row of a quick append to ``trace_id`` that wrote entry ``seq`` (``row``:
    its seq and turn)."""
    seq, turn = row
    return {
        "trace_id": trace_id,
        "first_seq": seq,
        "entry_count": seq + 1,
        "written": 1,
        "in_sync": True,
        "created": False,
        "turn": turn,
        "duplicate": False,
        "replaced": False,
        "fingerprint": None,
        "epoch": epoch,
    }


_APPEND_BASE: dict[str, Any] = {
    **dict.fromkeys(_APPEND_KEYS),
    "entries": "[]",
    "new_turn": False,
    "replace": False,
    "dropped": 0,
}


def _append_params(**params: Any) -> dict[str, Any]:
    return {**_APPEND_BASE, **params}


def _valid_thread(thread_id: Any) -> bool:
    """Whether ``thread_id`` could name a stored thread (a look-up of any other is None)."""
    if not isinstance(thread_id, str) or not thread_id or "\x00" in thread_id:
        return False
    try:
        thread_id.encode("utf-8")  # a lone surrogate cannot be sent, nor stored
    except UnicodeEncodeError:
        return False
    return True


def local_user(env: Mapping[str, str] = os.environ) -> str:
    """The user a program records and reads as when no one signed in and no key names one:
    ``TRACEDB_USER``, else ``local`` (the CLI, the API without keys, the dashboard without
    sign-in)."""
    return env.get("TRACEDB_USER") or "local"


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
        task_id = checks.require_text("task id", str(task))
        if not isinstance(marker, Mapping):
            raise InvalidTraceData(f"the marker of running task {task_id!r} must be a dict")
        markers[task_id or ""] = to_jsonable(marker)
    ended = [checks.require_text("task id", str(task)) for task in (end or [])]
    return Jsonb({"start": markers, "end": ended})


class StoreBase:
    """What every store operation relies on: the limits, the user scope, the per-thread
    memory of upserts, the indexer. The shells (``store.py``, ``aio.py``) provide ``_run``
    (how a generator is driven), ``server`` and the connections."""

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
        self._counts = TraceCounts()
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
        view._scope = checks.require_text("user_id", user_id, optional=True)
        return view

    def _writer_id(self, user_id: Any) -> str:
        """The user a write is made as: the scope's user; a different user_id is refused."""
        if self._scope is not None:
            if user_id is not None and user_id != self._scope:
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            return self._scope
        return checks.require_text("user_id", user_id) or ""

    def _wrote(self, row: Mapping[str, Any]) -> None:
        """An append wrote entries (or replaced them): index them for search, behind."""
        self._counts.seen(row)
        if (row["written"] or row["replaced"]) and self._indexer is not None:
            self._indexer.written(row["trace_id"])

    def _quick(
        self,
        trace_id: str,
        prepared: PreparedEntries,
        seq: int | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
    ) -> Statement | None:
        """The quick statement of an append of one entry (``prepared``) to ``trace_id`` as
        its entry ``seq`` (default: the count last seen), or None where it cannot be: this
        process has not seen where that trace stands, or the entry is an error (which the
        row counts at once)."""
        seen = self._counts.get(trace_id)
        columns = prepared.columns[0]
        if seen is None or columns["e"]:
            return None
        params = {**_QUICK_NULLS, **columns}  # keys it does not name are not sent
        params.update(
            trace_id=trace_id,
            seq=seen[0] if seq is None else seq,
            epoch=seen[1],
            data=prepared.texts[0],
            scope=self._scope,
        )
        finish = functools.partial(_quick_row, str(trace_id), seen[1])
        if thread_id is None:
            return Statement(q.QUICK_APPEND, params, fetch="one", rows="tuple", finish=finish)
        params.update(thread_id=thread_id, user_id=user_id)
        return Statement(q.QUICK_UPSERT, params, fetch="one", rows="tuple", finish=finish)

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
