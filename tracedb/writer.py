"""The recorder's writer thread: sends buffered entries in order, in one round trip per
batch, and keeps them while the database is unreachable."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import DatabaseUnavailable, InvalidTraceData, TraceDBError

log = logging.getLogger("tracedb.recorder")


class Sink(Protocol):
    """Where a writer sends its batches (the recorder)."""

    thread_id: str | None

    def _write(
        self, entries: list[dict[str, Any]], status: str | None, new_turn: bool, batch_id: str
    ) -> None: ...


@dataclass
class FlushReport:
    """What a recorder stored, and what it could not.

    Attributes:
        trace_id: the trace written to (None if nothing could be written).
        written: entries stored by this recorder.
        pending: entries still waiting when ``flush`` gave up (the database was unreachable).
        dropped: entries refused because the buffer was full or the data was invalid.
        errors: messages about what went wrong, newest last.
    """

    trace_id: str | None
    written: int
    pending: int
    dropped: int
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entry was stored."""
        return self.pending == 0 and self.dropped == 0


class Writer(threading.Thread):
    """Sends queued entries in order; keeps them while the database is unreachable."""

    def __init__(self, rec: Sink, buffer_limit: int) -> None:
        super().__init__(name=f"tracedb-recorder-{rec.thread_id}", daemon=True)
        self.rec = rec
        self.buffer_limit = buffer_limit
        self.cond = threading.Condition()
        self.pending: list[dict[str, Any]] = []
        self.status: str | None = None
        self.new_turn = False
        # a batch the database may or may not have stored (its reply was lost): sent again as
        # it is, under the same id, before anything else, so that it is stored once
        self.retry: tuple[list[dict[str, Any]], str | None, bool, str] | None = None
        self.in_flight = 0
        self.busy = False
        self.overflowing = False
        self.closed = False
        self.written = 0
        self.dropped = 0
        self.errors: list[str] = []

    def put(self, entries: list[dict[str, Any]], status: str | None = None, new_turn: bool = False) -> None:
        with self.cond:
            room = self.buffer_limit - len(self.pending) - self.in_flight
            if len(entries) > room:
                lost = len(entries) - max(room, 0)
                if not self.overflowing:
                    # One message per overflow; FlushReport.dropped keeps the running count.
                    msg = (
                        f"trace buffer full ({self.buffer_limit:,} entries waiting for the "
                        "database): newer entries are not recorded until it drains"
                    )
                    self.errors.append(msg)
                    log.error(msg)
                self.overflowing = True
                self.dropped += lost
                entries = entries[: max(room, 0)]
            elif not self.pending:
                self.overflowing = False
            self.pending.extend(entries)
            if status is not None:
                self.status = status
            self.new_turn = self.new_turn or new_turn
            self.cond.notify_all()

    def run(self) -> None:
        delay = 0.05
        while True:
            with self.cond:
                while not self.pending and self.status is None and self.retry is None and not self.closed:
                    self.cond.wait()
                if not self.pending and self.status is None and self.retry is None and self.closed:
                    return
                if self.retry is not None:
                    (batch, status, new_turn, batch_id), self.retry = self.retry, None
                else:
                    batch, self.pending = self.pending, []
                    status, self.status = self.status, None
                    new_turn, self.new_turn = self.new_turn, False
                    batch_id = str(uuid.uuid4())
                self.in_flight = len(batch)
                self.busy = True
            try:
                self.rec._write(batch, status, new_turn, batch_id)
            except DatabaseUnavailable as exc:
                with self.cond:
                    # Send the same batch again, under its id, with backoff.
                    self.retry = (batch, status, new_turn, batch_id)
                    self.busy = False
                    if not self.errors or not self.errors[-1].startswith("database unreachable"):
                        self.errors.append(
                            f"database unreachable, {len(self.pending)} entries waiting: {exc}"
                        )
                        log.warning("trace %s: database unreachable, retrying: %s", self.rec.thread_id, exc)
                    self.cond.wait(timeout=delay)
                delay = min(delay * 2, 2.0)
                continue
            except (InvalidTraceData, TraceDBError) as exc:
                with self.cond:
                    self.dropped += len(batch)
                    self.in_flight = 0
                    self.busy = False
                    self.errors.append(f"{len(batch)} entries not recorded: {exc}")
                    log.error("trace %s: %d entries not recorded: %s", self.rec.thread_id, len(batch), exc)
                    self.cond.notify_all()
                continue
            delay = 0.05
            with self.cond:
                self.written += len(batch)
                self.in_flight = 0
                self.busy = False
                self.cond.notify_all()

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.pending or self.busy or self.status is not None or self.retry is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(timeout=min(left, 0.1))
        return True

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
