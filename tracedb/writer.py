"""The recorder's writer thread: sends what the run produces, in order, one round trip per
batch, and never stops for one bad thing.

- **Outage** (``DatabaseUnavailable``): the batch is sent again under the same id (so a batch
  whose reply was lost is stored once) every 0.05 s, doubling to at most
  ``RETRY_CAP_S``; meanwhile the buffer keeps at most ``buffer_limit`` entries (see
  :mod:`tracedb.buffer`).
- **Cancelled statement** (``QueryTimeout``: a statement timeout, ``pg_cancel_backend``) and
  other failures of the database: retried a few times, then the batch is given up and its
  entries are marked as a gap on the trace.
- **Refused content** (``InvalidTraceData``, ``EntryTooLarge``, or anything unexpected while
  an entry is prepared): the batch is split in halves until the refused entry is found; it is
  stored as an error entry saying why and which entry it was, the others as they are. When
  even a batch without entries is refused, the trace itself cannot be recorded (an id or name
  the store refuses, another user's trace): the run goes on, its entries are counted as
  dropped.
- **Deleted trace** (``TraceNotFound``): what follows goes to a new trace of the thread.
- While a run goes on without writing, the trace's heartbeat is beaten every
  ``heartbeat_s`` seconds, so a trace whose process died reads as abandoned.

Every failure is counted (``FlushReport.error_counts``) and the last few messages kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .buffer import FINAL_STATUSES, Batch, Buffer, Item
from .errors import (
    AccessDenied,
    DatabaseUnavailable,
    InvalidTraceData,
    QueryTimeout,
    TraceDBError,
    TraceNotFound,
)
from .limits import HEARTBEAT_S
from .summaries import refused_entry

log = logging.getLogger("tracedb.recorder")

# A returning server is found within this (the longest wait between two attempts).
RETRY_CAP_S = 0.5
# Attempts at a batch whose statement was cancelled, or that failed otherwise, before it is
# given up (an outage is waited out however long it lasts).
TIMEOUT_ATTEMPTS = 5
FAILURE_ATTEMPTS = 3
# Messages kept for the report.
KEEP_MESSAGES = 10


class Sink(Protocol):
    """Where a writer sends its batches (the recorder)."""

    thread_id: str | None
    trace_id: str | None

    def append(self, batch: Batch) -> None: ...

    def touch(self) -> None: ...

    def after_append(self) -> None: ...

    def forget_trace(self) -> None: ...

    def idle(self) -> None: ...


@dataclass
class FlushReport:
    """What a recorder stored, and what it could not.

    Attributes:
        trace_id: the trace written to (None if nothing could be written).
        written: entries of the run stored as they were produced.
        pending: entries still waiting when ``flush`` gave up (the database was unreachable).
        dropped: entries not stored: dropped for a full buffer, in batches given up, or of a
            trace that cannot be recorded. Each loss is marked on the trace by a gap entry
            where possible.
        errors: the last few messages about what went wrong, newest last.
        error_counts: how often each kind of failure happened (``unreachable``,
            ``timeout``, ``refused``, ``failed``, ``buffer_full``, ``heartbeat``, ...).
        replaced: entries the database refused, stored as error entries instead.
    """

    trace_id: str | None
    written: int
    pending: int
    dropped: int
    errors: list[str] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    replaced: int = 0

    @property
    def ok(self) -> bool:
        """True when every entry was stored as it was produced."""
        return self.pending == 0 and self.dropped == 0 and self.replaced == 0


class _Refused(Exception):
    """The database refused a batch for its content."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _GivenUp(Exception):
    """A batch failed too often (or cannot be stored at all)."""

    def __init__(self, cause: BaseException, permanent: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.permanent = permanent


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Writer(threading.Thread):
    """Sends queued entries in order; keeps them while the database is unreachable."""

    def __init__(self, rec: Sink, buffer_limit: int, *, heartbeat_s: float = HEARTBEAT_S) -> None:
        super().__init__(name=f"tracedb-recorder-{rec.thread_id}", daemon=True)
        self.rec = rec
        self.buffer_limit = buffer_limit
        self.heartbeat_s = heartbeat_s
        self.cond = threading.Condition()
        self.buffer = Buffer(buffer_limit)
        self.in_flight = 0
        self.busy = False
        self.closed = False
        self.finished = False
        self.live = False  # a run is going on: beat the heartbeat
        self.outage_since: float | None = None
        self.recovered_at: float | None = None  # when the last outage ended (monotonic)
        self.unrecordable: str | None = None
        self.last_beat = time.monotonic()
        self.written = 0
        self.dropped = 0
        self.replaced = 0
        self.counts: Counter[str] = Counter()
        self.messages: deque[str] = deque(maxlen=KEEP_MESSAGES)
        self._overflowing = False

    # -- the caller's side ------------------------------------------------------------

    def put(
        self,
        entries: list[dict[str, Any]],
        checkpoint_ids: list[str | None] | None = None,
        *,
        status: str | None = None,
        new_turn: bool = False,
        starts: dict[str, dict[str, Any]] | None = None,
        ends: list[str] | None = None,
    ) -> None:
        """Queue entries (and the marks that go with them) for the writer thread."""
        with self.cond:
            if status == "running":
                self.live = True
            elif status in FINAL_STATUSES:
                self.live = False
            if self.unrecordable is not None:
                self.dropped += len(entries)
                return
            lost = self.buffer.put(
                entries,
                checkpoint_ids,
                status=status,
                new_turn=new_turn,
                starts=starts,
                ends=ends,
                reachable=self.outage_since is None,
            )
            if lost:
                self.dropped += lost
                self.counts["buffer_full"] += lost
                if not self._overflowing:
                    self._note(
                        f"trace buffer full ({self.buffer_limit:,} entries waiting for the database): "
                        "the oldest waiting entries are dropped and marked as a gap"
                    )
                self._overflowing = True
            elif not self.buffer.gap:
                self._overflowing = False
            self.cond.notify_all()

    def failed_to_record(self, mode: str, exc: BaseException) -> None:
        """A stream part the recorder could not read: counted and reported."""
        with self.cond:
            self.counts["unreadable"] += 1
            self._note(f"a {mode!r} part of the stream could not be recorded: {_text(exc)}")

    def restart(self) -> bool:
        """Accept a new run; False when the thread has ended (make a new writer)."""
        with self.cond:
            if self.finished:
                return False
            self.unrecordable = None
            self.closed = False
            return True

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued is sent (or given up); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.buffer.has_work() or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(timeout=min(left, 0.1))
        return True

    def report(self, trace_id: str | None) -> FlushReport:
        with self.cond:
            return FlushReport(
                trace_id,
                self.written,
                self.buffer.entries + self.in_flight,
                self.dropped,
                list(self.messages),
                dict(self.counts),
                self.replaced,
            )

    def close(self) -> None:
        """Let the thread end once nothing is left to send."""
        with self.cond:
            self.closed = True
            self.live = False
            self.cond.notify_all()

    # -- the thread -------------------------------------------------------------------

    def _note(self, message: str, level: int = logging.ERROR) -> None:
        self.messages.append(message)
        log.log(level, "trace of thread %s: %s", self.rec.thread_id, message)

    def run(self) -> None:
        while True:
            batch: Batch | None = None
            with self.cond:
                while not self.buffer.has_work() and not self.closed:
                    waits = [self.buffer.starts_due_in()]
                    if self.live and self.rec.trace_id is not None:
                        waits.append(self.last_beat + self.heartbeat_s - time.monotonic())
                        if waits[-1] <= 0:
                            break
                    self.cond.wait(timeout=min((w for w in waits if w is not None), default=None))
                if self.buffer.has_work():
                    batch = self.buffer.take()
                    self.busy = True
                    self.in_flight = len(batch.items) if batch else 0
                elif self.closed:
                    self.finished = True
                    self.cond.notify_all()
                    break
            if batch is None:
                self._beat()
                continue
            try:
                self._deliver(batch)
            # The thread must outlive anything: a failure here is counted and the batch lost.
            except Exception as exc:  # noqa: BLE001
                with self.cond:
                    self.counts["failed"] += 1
                    self.dropped += self.buffer.lose(batch, f"not recorded: {_text(exc)}"[:200])
                    self._note(f"a batch could not be recorded: {_text(exc)}")
            with self.cond:
                self.busy = False
                self.in_flight = 0
                idle = not self.live and not self.buffer.has_work()
                self.cond.notify_all()
            if idle:
                self._idle()
        self._idle()

    def _idle(self) -> None:
        try:
            self.rec.idle()
        except Exception:  # noqa: BLE001 - closing an idle connection may fail; it is dropped anyway
            log.debug("closing the recorder's connection failed", exc_info=True)

    def _beat(self) -> None:
        self.last_beat = time.monotonic()
        try:
            self.rec.touch()
        except Exception as exc:  # noqa: BLE001 - a missed beat is counted, never fatal
            with self.cond:
                self.counts["heartbeat"] += 1
                if not isinstance(exc, DatabaseUnavailable):
                    self._note(f"heartbeat failed: {_text(exc)}", logging.WARNING)

    def _deliver(self, batch: Batch) -> None:
        """Store a batch, or as much of it as the database accepts; never raises for the
        batch's content."""
        try:
            self._send(batch)
        except _Refused as refused:
            self._split(batch, refused.cause)
            return
        except _GivenUp as gave_up:
            with self.cond:
                if gave_up.permanent:
                    self._cannot_record(batch, gave_up.cause)
                else:
                    lost = self.buffer.lose(batch, f"not recorded: {_text(gave_up.cause)}"[:200])
                    self.dropped += lost
                    self._note(f"{lost} entries not recorded: {_text(gave_up.cause)}")
            return
        with self.cond:
            self.written += batch.produced
            self.last_beat = time.monotonic()
        try:
            self.rec.after_append()
        except Exception as exc:  # noqa: BLE001 - metadata is a nicety; the entries are stored
            with self.cond:
                self.counts["metadata"] += 1
                self._note(f"trace metadata not stored: {_text(exc)}", logging.WARNING)

    def _split(self, batch: Batch, cause: BaseException) -> None:
        with self.cond:
            self.counts["refused"] += 1
        if len(batch.items) > 1:
            for half in batch.halves():
                self._deliver(half)
            return
        item = batch.items[0] if batch.items else None
        if item is not None and item.role == "entry":
            replacement = Item(
                refused_entry(item.entry, cause, item.index),
                item.checkpoint_id,
                ts=item.ts,
                index=item.index,
                role="replacement",
            )
            with self.cond:
                self.replaced += 1
                self._note(f"entry {item.index} refused by the database, stored as an error: {_text(cause)}")
            self._deliver(batch.renewed(items=[replacement]))
        elif batch.running_start or batch.running_end:
            # the running markers themselves are refused: the entries matter more
            with self.cond:
                self._note(f"running-node markers refused: {_text(cause)}", logging.WARNING)
            self._deliver(batch.renewed(running_start={}, running_end=[]))
        else:
            with self.cond:
                self._cannot_record(batch, cause)

    def _cannot_record(self, batch: Batch, cause: BaseException) -> None:
        """Nothing of this trace can be stored (the store refuses its ids, name or owner)."""
        lost = batch.produced + sum(1 for i in batch.items if i.role == "replacement")
        lost += self.buffer.drop_all("cannot record this trace")
        self.buffer.gap = None
        self.dropped += lost
        self.unrecordable = _text(cause)
        self._note(f"this trace cannot be recorded, {lost} entries dropped: {_text(cause)}")

    def _send(self, batch: Batch) -> None:
        """Append the batch; raises _Refused or _GivenUp (see the module)."""
        delay = 0.05
        timeouts = failures = 0
        moved = False
        while True:
            try:
                self.rec.append(batch)
            except DatabaseUnavailable as exc:
                with self.cond:
                    self.counts["unreachable"] += 1
                    if self.outage_since is None:
                        self.outage_since = time.monotonic()
                        self._note(
                            f"database unreachable, {self.buffer.entries + len(batch.items)} entries "
                            f"waiting: {exc}",
                            logging.WARNING,
                        )
                time.sleep(delay)
                delay = min(delay * 2, RETRY_CAP_S)
                continue
            except TraceNotFound as exc:
                if moved:
                    raise _GivenUp(exc) from exc
                moved = True
                with self.cond:
                    self.counts["trace_deleted"] += 1
                    self._note("the trace was deleted while recording: continuing in a new trace")
                self.rec.forget_trace()
                continue
            except AccessDenied as exc:
                raise _GivenUp(exc, permanent=True) from exc
            except InvalidTraceData as exc:
                raise _Refused(exc) from exc
            except QueryTimeout as exc:
                timeouts += 1
                with self.cond:
                    self.counts["timeout"] += 1
                    self._note(
                        f"write cancelled by the database (attempt {timeouts}): {exc}", logging.WARNING
                    )
                if timeouts >= TIMEOUT_ATTEMPTS:
                    raise _GivenUp(exc) from exc
                time.sleep(min(0.1 * 2**timeouts, 2.0))
                continue
            except TraceDBError as exc:
                failures += 1
                with self.cond:
                    self.counts["failed"] += 1
                    self._note(f"write failed (attempt {failures}): {exc}", logging.WARNING)
                if failures >= FAILURE_ATTEMPTS:
                    raise _GivenUp(exc) from exc
                time.sleep(0.2 * failures)
                continue
            # Anything else comes from preparing the entries (a value the store's checks did
            # not expect): treated as refused content, so the entry is found and marked.
            except Exception as exc:  # noqa: BLE001
                raise _Refused(exc) from exc
            if self.outage_since is not None:
                with self.cond:
                    self.recovered_at = time.monotonic()
                    waited = self.recovered_at - self.outage_since
                    self.outage_since = None
                    self._note(f"database reachable again after {waited:.1f} s", logging.INFO)
            return
