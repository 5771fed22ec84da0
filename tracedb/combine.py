"""Appends of many threads in one statement and one commit.

A server process that records many conversations at once (many agents, one store) sends an
append per step of each: at 32 agents stepping every 40 ms, 800 commits a second, and the
time goes to waiting for the server to flush its log at each one. A store sends such
appends through a ``Combiner``: while one statement is at the server, the appends that
arrive meanwhile queue, and the next statement carries them all (``APPEND_MANY``: each is
the same ``tracedb_append`` call as on its own, in one transaction). A lone append is sent
at once, as before, so a quiet store pays nothing; a busy one commits once per statement
instead of once per append.

What each caller gets back is what its append alone would have returned. When the combined
statement fails for one append's sake (a trace deleted meanwhile, a value the database
refuses), nothing of it was committed and each append is sent again on its own, so each
caller gets its own result or error; a lost connection is reported to every caller, as it
would have been to each alone (its appends may or may not have been committed; batch ids
make a retry safe). Appends in one statement lock their traces in the order of their ids,
so two combined statements never wait for each other in a cycle.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import queries as q
from .core import Statement
from .errors import DatabaseUnavailable, TraceDBError
from .jsonsafe import dumps

# Most appends one statement carries: its arrays and its row locks stay bounded.
MAX_APPENDS = 64
# Statements of appends a store has at the server at once.
STATEMENTS = 2

# The parameters of an APPEND that a combined statement carries per append; the others must
# be those of an append to a trace named by id (see ``combinable``).
_CARRIED = ("trace_id", "name", "entries", "status", "new_turn", "scope", "batch", "running", "dropped")
_FIXED = {
    "user_id": None,
    "provider_id": None,
    "thread_id": None,
    "offset": None,
    "new_id": None,
    "chain": None,
    "replace": False,
}


def combinable(params: Any) -> bool:
    """Whether an APPEND with these parameters may share a statement with others: an append
    of entries to a trace given by id (not a thread's trace to find or create, not an
    exact upsert's offset or chain)."""
    return (
        isinstance(params, dict)
        and params.get("trace_id") is not None
        and isinstance(params.get("entries"), str)
        and all(params.get(key) == value for key, value in _FIXED.items())
    )


def combined(statements: Sequence[Statement]) -> Statement:
    """One statement that runs these appends in turn (in the order of their trace ids, so
    that the row locks of two such statements are always taken in one order) and returns
    their rows in the order given, each with its position ``ord`` (1-based)."""
    order = sorted(range(len(statements)), key=lambda i: str(statements[i].params["trace_id"]))  # type: ignore[index]
    columns: dict[str, list[Any]] = {key: [] for key in ("ord", *_CARRIED)}
    for i in order:
        params = statements[i].params
        assert params is not None
        columns["ord"].append(i + 1)
        columns["trace_id"].append(str(params["trace_id"]))
        columns["name"].append(params["name"])
        columns["entries"].append(params["entries"])
        columns["status"].append(params["status"])
        columns["new_turn"].append(bool(params["new_turn"]))
        columns["scope"].append(params["scope"])
        columns["batch"].append(None if params["batch"] is None else str(params["batch"]))
        running = params["running"]
        columns["running"].append(None if running is None else dumps(running.obj))
        columns["dropped"].append(int(params["dropped"] or 0))
    params: dict[str, Any] = dict(columns)
    params["entries"] = "[" + ",".join(columns["entries"]) + "]"  # each a JSON array already
    return Statement(q.APPEND_MANY, params, fetch="all")


def rows_in_order(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The rows of a combined statement, in the order of its appends, without ``ord``."""
    out: list[dict[str, Any] | None] = [None] * n
    for row in rows:
        row = dict(row)
        out[row.pop("ord") - 1] = row
    if any(row is None for row in out):  # pragma: no cover - every append returns a row
        raise TraceDBError("a combined append returned fewer rows than it carried")
    return out  # type: ignore[return-value]


class _Slot:
    """One append waiting for its statement."""

    __slots__ = ("done", "error", "lead", "result", "st")

    def __init__(self, st: Statement) -> None:
        self.st = st
        self.result: Any = None
        self.error: BaseException | None = None
        self.lead = False
        self.done: Any = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class _Queue:
    """The state both combiners share: how many statements are at the server, and the
    appends waiting for the next."""

    def __init__(self, limit: int, statements: int) -> None:
        self.limit = limit
        self.statements = statements
        self.waiting: list[_Slot] = []
        self.leaders = 0

    def join(self, slot: _Slot, event: Callable[[], Any]) -> bool:
        """True when ``slot`` leads (sends a statement now), else it waits in line for
        its ``event`` (made here: a lone append, the common case, needs none)."""
        if self.leaders < self.statements:
            self.leaders += 1
            return True
        slot.done = event()
        self.waiting.append(slot)
        return False

    def take(self, slot: _Slot) -> list[_Slot]:
        """The leader's batch: its own append, then those waiting longest."""
        n = self.limit - 1
        batch, self.waiting = [slot, *self.waiting[:n]], self.waiting[n:]
        return batch

    def hand_over(self) -> _Slot | None:
        """A leader is done: the append waiting longest leads next (None: nobody waits)."""
        if not self.waiting:
            self.leaders -= 1
            return None
        nxt = self.waiting.pop(0)
        nxt.lead = True
        return nxt


def _settle(batch: list[_Slot], rows: Any) -> None:
    for slot, row in zip(batch, rows_in_order(rows, len(batch)), strict=True):
        slot.result = row


class Combiner:
    """Combines the appends of a sync store's threads. ``run`` runs one statement on a
    connection of the store and returns its result, or raises a :class:`TraceDBError`."""

    def __init__(
        self, run: Callable[[Statement], Any], limit: int = MAX_APPENDS, statements: int = STATEMENTS
    ) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._queue = _Queue(limit, statements)

    def submit(self, st: Statement) -> Any:
        """Run one append (alone or with others) and return its row."""
        slot = _Slot(st)
        with self._lock:
            lead = self._queue.join(slot, threading.Event)
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return slot.outcome()
        with self._lock:
            batch = self._queue.take(slot)
        try:
            self._send(batch)
        finally:
            for other in batch:
                if other is not slot:
                    if other.result is None and other.error is None:
                        other.error = DatabaseUnavailable("the append was interrupted: it may not be stored")
                    other.done.set()
            with self._lock:
                nxt = self._queue.hand_over()
            if nxt is not None:
                nxt.done.set()
        return slot.outcome()

    def _send(self, batch: list[_Slot]) -> None:
        if len(batch) > 1:
            try:
                rows = self._run(combined([s.st for s in batch]))
            except DatabaseUnavailable as exc:
                for s in batch:
                    s.error = exc
                return
            except TraceDBError:
                pass  # one append's error: each again on its own
            else:  # committed: never sent again
                _settle(batch, rows)
                return
        for s in batch:
            try:
                s.result = self._run(s.st)
            except TraceDBError as exc:
                s.error = exc


class AsyncCombiner:
    """Combines the appends of an async store's tasks (see :class:`Combiner`)."""

    def __init__(
        self,
        run: Callable[[Statement], Awaitable[Any]],
        limit: int = MAX_APPENDS,
        statements: int = STATEMENTS,
    ) -> None:
        self._run = run
        self._limits = (limit, statements)
        self._queue = _Queue(limit, statements)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, st: Statement) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a store used from a new event loop: nothing of the old one
            self._loop, self._queue = loop, _Queue(*self._limits)  # is coming back
        slot = _Slot(st)
        if not self._queue.join(slot, asyncio.Event):
            try:
                await slot.done.wait()
            except asyncio.CancelledError:
                self._leave(slot)
                raise
            if not slot.lead:
                return slot.outcome()
        # The statement is not cancelled with the task that sends it: the others' appends
        # ride on it, and the next leader is chosen when it is over.
        task = asyncio.ensure_future(self._lead(slot, self._queue.take(slot)))
        await asyncio.shield(task)
        return slot.outcome()

    def _leave(self, slot: _Slot) -> None:
        """A waiting caller was cancelled: its append is not sent (unless a statement took
        it already, which then runs to its end); if it was to lead, the next one does."""
        if slot.lead:
            nxt = self._queue.hand_over()
            if nxt is not None:
                nxt.done.set()
        elif slot in self._queue.waiting:
            self._queue.waiting.remove(slot)

    async def _lead(self, slot: _Slot, batch: list[_Slot]) -> None:
        try:
            await self._send(batch)
        finally:
            for other in batch:
                if other is not slot:
                    if other.result is None and other.error is None:
                        other.error = DatabaseUnavailable("the append was interrupted: it may not be stored")
                    other.done.set()
            nxt = self._queue.hand_over()
            if nxt is not None:
                nxt.done.set()

    async def _send(self, batch: list[_Slot]) -> None:
        if len(batch) > 1:
            try:
                rows = await self._run(combined([s.st for s in batch]))
            except DatabaseUnavailable as exc:
                for s in batch:
                    s.error = exc
                return
            except TraceDBError:
                pass
            else:
                _settle(batch, rows)
                return
        for s in batch:
            try:
                s.result = await self._run(s.st)
            except TraceDBError as exc:
                s.error = exc
