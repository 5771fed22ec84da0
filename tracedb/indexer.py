"""Search indexing behind the writes.

An append only marks its trace ``index_pending``: building a trace's search rows costs more
than writing its entries, and a recording must not wait for it. Each store runs one
``Indexer``: a daemon thread with a connection of its own that, about once a second, indexes
the traces the store wrote since (``tracedb_index_traces``), and now and then the traces any
writer left pending (a crashed process, a client that went away). Until a trace is indexed,
searches treat it as a candidate and confirm it against its entries, so results never
depend on the indexer's lag, only their speed does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg

from . import queries as q

log = logging.getLogger("tracedb.indexer")

INTERVAL_S = 1.0
# Traces left pending by others are looked for this often, and this many at a time.
STALE_EVERY_S = 30.0
STALE_LIMIT = 100

# A call indexes at most this many entries of a trace (the entries of a call are held in
# memory at once, and an entry may be large).
CALL_ENTRIES = 256
# A trace whose content changed this recently is being written: its last block is indexed
# once it is complete or the trace has been quiet this long (see sql/018), not rewritten at
# every round as it fills (its entries are read directly by searches meanwhile). Content
# moves a trace's updated_at at most once a second.
LIVE = timedelta(seconds=2)
# A call that returns sooner than this did no work: the traces it left pending are held by
# another transaction (a delete, another indexer).
IDLE_CALL_S = 0.005
# Traces any writer left pending this long are taken into the rounds.
STALE_AFTER = timedelta(seconds=10)


class Indexer:
    """Indexes, in the background, the traces one store wrote.

    Args:
        connect: opens the indexer's own connection (autocommit).
        interval: seconds between rounds.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], interval: float = INTERVAL_S) -> None:
        self._connect = connect
        self.interval = interval
        self._lock = threading.Condition()
        self._ids: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        self._last_stale = 0.0
        self.rounds = 0
        # the last round stopped at its time limit with work left: the next starts at once
        self.behind = False

    def written(self, trace_id: str) -> None:
        """A trace got entries that are not indexed yet."""
        with self._lock:
            if self._closed:
                return
            self._ids.add(trace_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tracedb-indexer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._closed and not self.behind:
                    self._lock.wait(self.interval)
                closed = self._closed
            self.run_once(last=closed)
            if closed:
                break
        if self._conn is not None:
            self._conn.close()

    def run_once(self, last: bool = False) -> None:
        """One round: the traces written since the last round, and now and then stale ones.
        ``last``: the store is closing, so no later round will come back for a trace's last
        incomplete block: it is indexed now."""
        live = None if last else LIVE
        with self._lock:
            ids, self._ids = self._ids, set()
        self.behind = False
        try:
            conn = self._connection()
            if time.monotonic() - self._last_stale >= STALE_EVERY_S:
                # Traces any writer left pending (it crashed, or stopped before its indexer
                # ran) join this round's traces: a call of theirs is as long as any other's,
                # where one call used to index all their entries at once, holding up the
                # traces this store writes for as long (a backlog of 50,000 entries, 12 s).
                stale = conn.execute(q.STALE_TRACES, {"age": STALE_AFTER, "limit": STALE_LIMIT})
                ids.update(str(row[0]) for row in stale)
                self._last_stale = time.monotonic()
            deadline = time.monotonic() + self.interval
            held: set[str] = set()
            while ids:
                # One trace a call, each call its own transaction: a call holds its trace's
                # row from the moment it counts what it indexed until it commits, and an
                # append to that trace waits that long; a call for many traces held each of
                # them until the last was counted. Call again for a trace while calls do
                # work, for up to one interval: a trace written faster than one call's worth
                # a round would fall ever further behind (its searches reading ever more
                # entries directly). Stopped by the time limit with work left, the next round
                # follows without a pause: waiting an interval after each full round capped
                # indexing at half its pace, and 32 writers at a step every 40 ms left most
                # entries unindexed.
                again: set[str] = set()
                for trace_id in sorted(ids):
                    if time.monotonic() >= deadline:
                        again.add(trace_id)
                        self.behind = True
                        continue
                    started = time.monotonic()
                    conn.execute(q.FOLD_TRACES, {"ids": [trace_id]})
                    if conn.execute(
                        q.INDEX_TRACES, {"ids": [trace_id], "max": CALL_ENTRIES, "live": live}
                    ).fetchall():
                        # still pending: more to do, or (a call that returned at once) its
                        # last block left to fill, or held by another transaction (a delete,
                        # another indexer): next round
                        quick = time.monotonic() - started < IDLE_CALL_S
                        (held if quick else again).add(trace_id)
                ids = again
                if self.behind:
                    break
            ids |= held
            self.rounds += 1
        except psycopg.Error as exc:
            # The database is away: keep the ids for the next round; searches stay exact.
            log.debug("search indexing postponed: %s", exc)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        finally:
            if ids:
                with self._lock:
                    self._ids |= ids

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def close(self, timeout: float = 5.0) -> None:
        """A last round for what is pending, then stop."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._lock.notify_all()
        if thread is not None:
            thread.join(timeout)
