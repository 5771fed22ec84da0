"""What this process last stored of each thread's complete list, so that the next
seed-style upsert can tell "extends it" from "differs" without reading the database.

The store compares the new list with the objects it stored last (``list == list`` compares
identical objects by identity, in C, so a list that only grew costs a pointer comparison
per entry) and, because an entry object can be changed in place, keeps deep copies of the
last TAIL entries to compare their content too. The database checks the claim on every
write against the fingerprint it keeps, so the cache can only save work, never store
something wrong: an entry changed in place further back than TAIL entries is noticed when
the list is next sent whole (by another process, or after this cache forgot the thread).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Entries at the end of a list whose content (not only identity) is compared: where a
# streaming client changes an entry in place ("running" -> "completed").
TAIL = 4
# Bounds of the cache: threads, and entries over all threads.
MAX_THREADS = 1000
MAX_ENTRIES = 500_000


@dataclass
class SentList:
    """One thread's list as last stored by this process.

    Attributes:
        trace_id: the trace it went to.
        refs: the entry objects of the list.
        chain: fingerprints after each prefix of the list (``len(refs) + 1`` of them).
        tail: deep copies of the last TAIL entries (None where one cannot be copied).
    """

    trace_id: str
    refs: list[Any]
    chain: list[str]
    tail: list[Any] = field(default_factory=list)

    def extended_by(self, entries: list[Any]) -> bool:
        """True when ``entries`` starts with this list, unchanged."""
        n = len(self.refs)
        if len(entries) < n or entries[:n] != self.refs:
            return False
        start = n - len(self.tail)
        return all(copy_ is None or entries[start + i] == copy_ for i, copy_ in enumerate(self.tail))


def _snapshot(entry: Any) -> Any:
    try:
        return copy.deepcopy(entry)
    except Exception:  # noqa: BLE001 - an entry that cannot be copied is only compared by identity
        return None


class SentLists:
    """A bounded, thread-safe map of (user, thread) to :class:`SentList`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: OrderedDict[tuple[str, str], SentList] = OrderedDict()
        # which thread's list went to a trace: every append by trace id forgets that thread,
        # and looking it up must not cost a pass over all the threads remembered
        self._by_trace: dict[str, tuple[str, str]] = {}
        self._entries = 0

    def get(self, key: tuple[str, str]) -> SentList | None:
        with self._lock:
            return self._lists.get(key)

    def put(
        self, key: tuple[str, str], trace_id: str, entries: list[Any], chain: list[str], *, extended: bool
    ) -> None:
        """Remember ``entries`` (whose fingerprints are ``chain``) as stored in ``trace_id``;
        ``extended``: they extend the list remembered before, whose copies still hold."""
        old = self.get(key) if extended else None
        n = len(entries)
        old_start = len(old.refs) - len(old.tail) if old is not None else 0
        tail: list[Any] = []
        for i in range(max(0, n - TAIL), n):
            if old is not None and old_start <= i < len(old.refs) and entries[i] is old.refs[i]:
                tail.append(old.tail[i - old_start])
            else:
                tail.append(_snapshot(entries[i]))
        sent = SentList(trace_id, list(entries), chain, tail)
        with self._lock:
            self._drop(key)
            old_key = self._by_trace.get(trace_id)
            if old_key is not None:  # a trace's lists come from one thread; be sure of it
                self._drop(old_key)
            self._lists[key] = sent
            self._by_trace[trace_id] = key
            self._entries += n
            while self._lists and (len(self._lists) > MAX_THREADS or self._entries > MAX_ENTRIES):
                self._drop(next(iter(self._lists)))

    def _drop(self, key: tuple[str, str]) -> None:
        """Forget ``key`` (the lock held)."""
        sent = self._lists.pop(key, None)
        if sent is not None:
            self._entries -= len(sent.refs)
            if self._by_trace.get(sent.trace_id) == key:
                del self._by_trace[sent.trace_id]

    def __len__(self) -> int:
        return len(self._lists)

    def forget(self, key: tuple[str, str] | None = None) -> None:
        """Forget one thread, or every thread."""
        with self._lock:
            if key is None:
                self._lists.clear()
                self._by_trace.clear()
                self._entries = 0
            else:
                self._drop(key)

    def forget_trace(self, trace_id: str) -> None:
        """Forget the thread whose list went to ``trace_id``."""
        with self._lock:
            key = self._by_trace.get(trace_id)
            if key is not None:
                self._drop(key)


# Traces whose count and epoch a process keeps (the most recently written).
MAX_TRACES = 10_000


class TraceCounts:
    """Where each trace this process wrote to stood after its last write: its entry count
    and its index epoch, which a quick append (``QUICK_APPEND``) sends. The database checks
    both, so a stale pair (another process wrote, or replaced the entries) only makes that
    append go the general way, which brings the pair up to date."""

    def __init__(self, limit: int = MAX_TRACES) -> None:
        self._limit = limit
        self._counts: dict[str, tuple[int, int]] = {}

    def seen(self, row: Mapping[str, Any]) -> None:
        """Remember where an append's row says its trace stands."""
        epoch = row.get("epoch")
        if epoch is None or row.get("entry_count") is None:
            return
        if len(self._counts) >= self._limit and row["trace_id"] not in self._counts:
            self._counts.clear()  # a bound, not a cache policy: the next writes refill it
        self._counts[row["trace_id"]] = (row["entry_count"], epoch)

    def get(self, trace_id: str) -> tuple[int, int] | None:
        """The (entry count, epoch) last seen for ``trace_id``, or None."""
        return self._counts.get(trace_id)
