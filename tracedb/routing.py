"""Reads on a streaming replica that never go back in time.

A store opened with a read URL (``TRACEDB_READ_URL``) keeps a second pool on the replica.
Operations marked ``read=True`` (see :class:`tracedb.core.operation`) may run there, the rest
run on the primary. The rules, per store (shared by its :meth:`as_user` views):

* **Read your writes, never go backwards.** After anything this store ran on the primary (a
  write, or a read that fell back to it) the next read first learns the primary's WAL
  position, ``pg_current_wal_insert_lsn()``, which covers every commit seen or made so far
  (the insert position, not the write position, so that it holds with
  ``synchronous_commit = off`` too). The replica serves reads only once its replay position,
  ``pg_last_wal_replay_lsn()``, has reached the highest such position; until then reads go
  to the primary. A page that once read a trace from the primary therefore never shows an
  older version of it.
* **A trace the replica does not have yet** (another process just created it): a read
  that finds nothing (``None``) on the replica asks the primary.
* **A replica that fails** (unreachable, or a query cancelled by a recovery conflict):
  the read runs on the primary and the replica is left alone for a few seconds.

What it costs: a store that only reads (a dashboard) runs no extra statement; the replica's
position is remembered and only asked again when a read needs more than it last had. After a
write, the next read costs one or two short statements more (measured in docs/scaling.md).
The read URL must lead to one replica: replay positions of different servers cannot be
compared.

Everything here is free of I/O: :func:`read_plan` is a generator of :class:`Request` that
each store drives with its own pools, like the operations themselves.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import psycopg

from .core import Op, Statement
from .errors import DatabaseUnavailable, TraceDBError

# WAL positions as byte offsets (bigint), comparable in Python. NULL on the replica's side
# means the read URL leads to a server that is not in recovery: always current.
PRIMARY_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS lsn"
REPLICA_POSITION = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END AS lsn"
)
# How long a replica that failed is left alone before reads try it again, and how long a
# read waits for a replica connection before it runs on the primary.
REPLICA_RETRY_S = 5.0
REPLICA_WAIT_S = 2.0
# A replica found behind is not asked again for this long: the reads meanwhile run on the
# primary without a check (a burst of reads right after a write costs one check, not one
# per read).
REPLICA_RECHECK_S = 0.05


def position(query: str) -> Op[int | None]:
    """An operation that reads one WAL position."""
    row = yield Statement(query, fetch="one")
    return None if row is None else row["lsn"]


@dataclass
class Request:
    """Run ``op`` on the replica or the primary. ``track``: this run may show the primary's
    newest data, so later reads must wait for the replica to have it."""

    op: Op[Any]
    on_replica: bool
    track: bool = False


class ReadRouting:
    """What one store knows of its primary's and its replica's WAL positions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._primary_used = False
        self._needed = 0  # the replica must have replayed this far to serve a read
        self._replica: float = -1  # the replica's last known replay position
        self._skip_until = 0.0
        self._behind_at = -REPLICA_RECHECK_S
        self.stats: Counter[str] = Counter()

    def count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def primary_used(self) -> None:
        """Something ran on the primary: the next read learns its position first."""
        with self._lock:
            self._primary_used = True

    def take_primary_used(self) -> bool:
        with self._lock:
            used, self._primary_used = self._primary_used, False
            return used

    def need(self, lsn: int | None) -> None:
        with self._lock:
            self._needed = max(self._needed, lsn or 0)

    def replica_at(self, lsn: int | None) -> None:
        with self._lock:
            self._replica = max(self._replica, float("inf") if lsn is None else lsn)

    def replica_current(self) -> bool:
        with self._lock:
            return self._replica >= self._needed

    def replica_found_behind(self) -> None:
        with self._lock:
            self._behind_at = time.monotonic()

    def replica_behind_recently(self) -> bool:
        with self._lock:
            return time.monotonic() - self._behind_at < REPLICA_RECHECK_S

    def replica_failed(self) -> None:
        with self._lock:
            self._skip_until = time.monotonic() + REPLICA_RETRY_S

    def replica_usable(self) -> bool:
        return time.monotonic() >= self._skip_until


def _replica_trouble(exc: TraceDBError) -> bool:
    """Errors that say nothing about the request: the replica is gone, or cancelled the query
    because replaying WAL needed what it read (a recovery conflict)."""
    return isinstance(exc, DatabaseUnavailable) or isinstance(
        exc.__cause__, psycopg.errors.SerializationFailure
    )


def read_plan(routing: ReadRouting, make_op: Callable[[], Op[Any]]) -> Generator[Request, Any, Any]:
    """Where to run one read: yields :class:`Request` objects (each answered with the op's
    result, or an error thrown in) and returns the read's result."""
    if not routing.replica_usable():
        return (yield from _on_primary(routing, make_op))
    # The replica's last known position is compared first; it is asked again only when that
    # does not meet the need, and the primary's newer position is learnt only once the
    # replica meets the older one (else the read goes to the primary anyway).
    try:
        current = routing.replica_current() or (yield from _ask_replica(routing))
    except TraceDBError as exc:
        return (yield from _after_replica_error(routing, exc, make_op))
    if current and routing.take_primary_used():
        try:
            routing.count("primary_checks")
            routing.need((yield Request(position(PRIMARY_POSITION), on_replica=False)))
        except BaseException:
            routing.primary_used()  # still to be learnt
            raise
        try:
            current = routing.replica_current() or (yield from _ask_replica(routing))
        except TraceDBError as exc:
            return (yield from _after_replica_error(routing, exc, make_op))
    if current:
        try:
            result = yield Request(make_op(), on_replica=True)
        except TraceDBError as exc:
            return (yield from _after_replica_error(routing, exc, make_op))
        if result is not None:
            routing.count("replica")
            return result
        routing.count("replica_misses")
    return (yield from _on_primary(routing, make_op))


def _after_replica_error(
    routing: ReadRouting, exc: TraceDBError, make_op: Callable[[], Op[Any]]
) -> Generator[Request, Any, Any]:
    if not _replica_trouble(exc):
        raise exc
    routing.count("replica_failures")
    routing.replica_failed()
    return (yield from _on_primary(routing, make_op))


def _ask_replica(routing: ReadRouting) -> Generator[Request, Any, bool]:
    if routing.replica_behind_recently():
        return False
    routing.count("replica_checks")
    routing.replica_at((yield Request(position(REPLICA_POSITION), on_replica=True)))
    if routing.replica_current():
        return True
    routing.replica_found_behind()
    return False


def _on_primary(routing: ReadRouting, make_op: Callable[[], Op[Any]]) -> Generator[Request, Any, Any]:
    routing.count("primary")
    return (yield Request(make_op(), on_replica=False, track=True))
