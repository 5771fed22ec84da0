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
from .jsonsafe import Payload, dumps

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


_KNOWN = frozenset((*_CARRIED, *_FIXED))
_FIXED_VALUES = tuple(_FIXED.values())


def combinable(st: Statement) -> bool:
    """Whether an APPEND may share a statement with others: an append of entries to a trace
    given by id (not a thread's trace to find or create, not an exact upsert's offset or
    chain), with no parameter a combined statement would not carry."""
    params = st.params
    return (
        st.query == q.APPEND
        and isinstance(params, dict)
        and params.keys() <= _KNOWN
        and params.get("trace_id") is not None
        and isinstance(params.get("entries"), (str, Payload))
        and tuple(map(params.get, _FIXED)) == _FIXED_VALUES
    )


def combined(statements: Sequence[Statement]) -> Statement:
    """One statement that runs these appends in turn (in the order of their trace ids) and
    returns a row for each, with its position ``ord`` (1-based) in ``statements``."""
    order = sorted(range(len(statements)), key=lambda i: str(statements[i].params["trace_id"]))  # type: ignore[index]
    columns: dict[str, list[Any]] = {key: [] for key in ("ord", *_CARRIED)}
    for i in order:
        params = statements[i].params
        assert params is not None
        columns["ord"].append(i + 1)
        columns["trace_id"].append(str(params["trace_id"]))
        columns["name"].append(params["name"])
        columns["entries"].append(str(params["entries"]))
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


class _Slot:
    """One append waiting for its statement."""

    __slots__ = ("alone", "done", "error", "lead", "result", "shared", "st")

    def __init__(self, st: Statement) -> None:
        self.st = st
        self.result: Any = None
        self.error: BaseException | None = None
        self.lead = False  # it leads next: sends a statement for itself and those waiting
        self.alone = False  # the statement did not run it: its caller sends it on its own
        # it leads while another statement is at the server: even alone, it goes by the
        # statement that skips a held trace (at most one line is ever held by a lone append)
        self.shared = False
        self.done: Any = None

    @property
    def settled(self) -> bool:
        return self.result is not None or self.error is not None or self.alone


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
            slot.shared = self.leaders > 1
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
        nxt.lead = nxt.shared = True
        return nxt

    def leave(self, slot: _Slot) -> _Slot | None:
        """A waiting caller gave up (interrupted, cancelled): its append leaves the line
        (unless a statement took it already, which then runs to its end); if it was to
        lead, the next one leads instead (returned, to be woken)."""
        if slot.lead:
            slot.lead = False
            return self.hand_over()
        if slot in self.waiting:
            self.waiting.remove(slot)
        return None


def _batch_statement(batch: list[_Slot]) -> Statement | None:
    """The statement of a leader's batch: its append's own when it is alone and no other
    statement is at the server (the cheapest), else a combined one (which skips a trace
    another transaction holds); None when the batch cannot be combined (each is then
    marked to go alone)."""
    if len(batch) == 1 and not batch[0].shared:
        return batch[0].st
    try:
        return combined([s.st for s in batch])
    except Exception:  # noqa: BLE001 - a parameter combined() did not expect: send each alone
        for s in batch:
            s.alone = True
        return None


def _wake(batch: list[_Slot]) -> None:
    """The leader is done with its batch: wake the others (each with an answer)."""
    for other in batch[1:]:
        if not other.settled:
            other.error = DatabaseUnavailable(_INTERRUPTED)
        other.done.set()


def _answer(slot: _Slot) -> Any:
    """The row of an append a statement ran, or its error."""
    if slot.error is not None:
        raise slot.error
    return slot.result


def _settle(batch: list[_Slot], rows: Any) -> None:
    """Hand out a statement's rows; an append the statement did not run goes alone."""
    if len(batch) == 1 and not batch[0].shared:
        batch[0].result = rows
        return
    for row in rows:
        row = dict(row)
        slot = batch[row.pop("ord") - 1]
        if row["trace_id"] is None:
            slot.alone = True
        else:
            slot.result = row
    for slot in batch:  # never left without an answer (every append returns a row)
        if not slot.settled:
            slot.error = TraceDBError("a combined append returned no row for this append")


def _failed(batch: list[_Slot], exc: TraceDBError) -> None:
    """The statement failed. A lost connection reaches every caller, as it would have
    alone (each its own error). Any other error was one append's: the statement committed
    nothing, and each caller sends its own append again, at once and side by side."""
    if len(batch) == 1 and not batch[0].shared:
        batch[0].error = exc
        return
    for slot in batch:
        if isinstance(exc, DatabaseUnavailable):
            slot.error = DatabaseUnavailable(str(exc))
            slot.error.__cause__ = exc
        else:
            slot.alone = True


_INTERRUPTED = "the append was interrupted: it may not be stored"


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
        queue = self._queue
        with self._lock:
            alone = queue.leaders == 0
            if alone:
                queue.leaders = 1
        if alone:  # the common case: no other statement at the server, nobody in line
            try:
                return self._run(st)
            finally:
                self._hand_over()
        slot = _Slot(st)
        with self._lock:
            lead = queue.join(slot, threading.Event)
        if not lead:
            try:
                slot.done.wait()
            except BaseException:
                with self._lock:
                    nxt = self._queue.leave(slot)
                if nxt is not None:
                    nxt.done.set()
                raise
            if not slot.lead:
                return self._outcome(slot)
        batch = [slot]
        try:
            with self._lock:
                batch = self._queue.take(slot)
            statement = _batch_statement(batch)
            if statement is not None:
                try:
                    _settle(batch, self._run(statement))
                except TraceDBError as exc:
                    _failed(batch, exc)
        finally:
            _wake(batch)
            self._hand_over()
        return self._outcome(slot)

    def _hand_over(self) -> None:
        """A statement is over: the append waiting longest leads next."""
        with self._lock:
            nxt = self._queue.hand_over()
        if nxt is not None:
            nxt.done.set()

    def _outcome(self, slot: _Slot) -> Any:
        if slot.alone:  # outside the line: a statement of its own, beside the others
            return self._run(slot.st)
        return _answer(slot)


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
        queue = self._queue  # the line this append joins, whatever happens to the attribute
        slot = _Slot(st)
        if not queue.join(slot, asyncio.Event):
            try:
                await slot.done.wait()
            except BaseException:
                nxt = queue.leave(slot)
                if nxt is not None:
                    nxt.done.set()
                raise
            if not slot.lead:
                return await self._outcome(slot)
        # The statement is not cancelled with the task that sends it: the others' appends
        # ride on it, and the next leader is chosen when it is over.
        await asyncio.shield(asyncio.ensure_future(self._lead(queue, slot)))
        return await self._outcome(slot)

    async def _lead(self, queue: _Queue, slot: _Slot) -> None:
        batch = queue.take(slot)
        try:
            statement = _batch_statement(batch)
            if statement is not None:
                try:
                    _settle(batch, await self._run(statement))
                except TraceDBError as exc:
                    _failed(batch, exc)
        finally:
            _wake(batch)
            nxt = queue.hand_over()
            if nxt is not None:
                nxt.done.set()

    async def _outcome(self, slot: _Slot) -> Any:
        if slot.alone:
            return await self._run(slot.st)
        return _answer(slot)
