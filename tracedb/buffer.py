"""What a recorder has produced and not yet sent, and how it is cut into batches.

The buffer holds, in order, the entries to store and the marks between them (a new turn
starts, the trace's status changes, a node stopped running), plus the nodes that started
running (a set: they are sent with the next batch, whatever it holds). While the database is
unreachable it keeps at most ``limit`` entries: beyond that the *oldest* are dropped, so
that what the run does once the database is back is never lost for an old outage, and the
dropped ones leave a gap (how many, from when to when) that is stored in their place. While
the database answers, the bound is four times larger (the writer is draining).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .summaries import gap_entry

# Most entries sent in one append: a backlog after an outage goes out in statements of a
# bounded size.
MAX_BATCH = 500
FINAL_STATUSES = ("completed", "failed", "interrupted")
# While the database answers, the buffer may hold this many times its limit: the writer is
# draining it, and what the run produces right after an outage must not be dropped.
REACHABLE_FACTOR = 4
# A node's running mark waits this long for other work to go with: a node that ends sooner
# is never marked (its start and end cancel in one batch), and a fast graph does not pay a
# round trip per node start.
START_DELAY_S = 0.05


@dataclass
class Item:
    """One entry to store, or a mark (``entry`` None) between entries.

    Attributes:
        entry: the entry as produced (the store converts it when it is sent).
        checkpoint_id: the checkpoint its step started from.
        ends: task ids of nodes that stopped running once this item is stored.
        status: the trace's status from this point on.
        new_turn: a new turn of the conversation starts here.
        ts: when the item was produced (epoch seconds).
        index: the entry's position among everything this recorder produced.
        role: ``entry``; ``gap`` for the entry standing for dropped ones; ``replacement``
            for an error entry stored instead of a refused one.
    """

    entry: dict[str, Any] | None
    checkpoint_id: str | None = None
    ends: tuple[str, ...] = ()
    status: str | None = None
    new_turn: bool = False
    ts: float = field(default_factory=time.time)
    index: int | None = None
    role: Literal["entry", "gap", "replacement"] = "entry"


@dataclass
class Gap:
    """Entries that could not be stored, to be marked by one gap entry where they were."""

    count: int = 0
    first: float | None = None
    last: float | None = None
    ends: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    def add(
        self, count: int, first: float, last: float, reason: str, ends: list[str] | tuple[str, ...]
    ) -> None:
        self.count += count
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)
        self.ends.extend(ends)
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    def merge(self, other: Gap) -> None:
        if other.count:
            assert other.first is not None and other.last is not None
            for reason, n in other.reasons.items():
                self.add(n, other.first, other.last, reason, [])
        self.ends.extend(other.ends)

    def item(self) -> Item:
        assert self.first is not None and self.last is not None
        return Item(gap_entry(self.count, self.first, self.last, self.reasons), role="gap", ts=self.first)


@dataclass
class Batch:
    """One append: entries with their checkpoints, the marks that go with them, an id."""

    items: list[Item] = field(default_factory=list)
    status: str | None = None
    new_turn: bool = False
    running_start: dict[str, dict[str, Any]] = field(default_factory=dict)
    running_end: list[str] = field(default_factory=list)
    gap: Gap | None = None
    batch_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [i.entry for i in self.items if i.entry is not None]

    @property
    def checkpoint_ids(self) -> list[str | None] | None:
        ids = [i.checkpoint_id for i in self.items]
        return ids if any(ids) else None

    @property
    def dropped(self) -> int:
        return self.gap.count if self.gap else 0

    @property
    def produced(self) -> int:
        """Entries of the run stored as they were produced."""
        return sum(1 for i in self.items if i.role == "entry")

    def halves(self) -> tuple[Batch, Batch]:
        """Two batches, each with half the entries: the first with the marks that come
        before entries (new turn, started nodes, the gap), the second with those that come
        after (status, ended nodes). Each gets an id of its own."""
        mid = len(self.items) // 2
        first = Batch(
            self.items[:mid], new_turn=self.new_turn, running_start=self.running_start, gap=self.gap
        )
        second = Batch(self.items[mid:], status=self.status, running_end=self.running_end)
        return first, second

    def renewed(self, **changes: Any) -> Batch:
        """This batch with some fields changed, under a new id."""
        return replace(self, batch_id=str(uuid.uuid4()), **changes)


class Buffer:
    """Entries and marks waiting to be sent, at most ``limit`` entries (see the module)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.items: deque[Item] = deque()
        self.entries = 0
        self.starts: dict[str, dict[str, Any]] = {}
        self.starts_at: float | None = None  # when the oldest unsent start came (monotonic)
        self.gap: Gap | None = None
        self._counter = itertools.count()

    def put(
        self,
        entries: list[dict[str, Any]],
        checkpoint_ids: list[str | None] | None = None,
        *,
        status: str | None = None,
        new_turn: bool = False,
        starts: dict[str, dict[str, Any]] | None = None,
        ends: list[str] | None = None,
        reachable: bool = False,
    ) -> int:
        """Queue entries and marks; returns how many entries were dropped for room.

        ``new_turn`` applies before the entries, ``status`` and ``ends`` after them. While
        the database answers (``reachable``) the writer is draining the buffer: it may then
        hold ``REACHABLE_FACTOR`` times the limit, so that a burst after an outage is kept.
        """
        now = time.time()
        if new_turn:
            self.items.append(Item(None, status=None if entries else status, new_turn=True, ts=now))
        for i, entry in enumerate(entries):
            cp = checkpoint_ids[i] if checkpoint_ids and i < len(checkpoint_ids) else None
            self.items.append(Item(entry, cp, ts=now, index=next(self._counter)))
        self.entries += len(entries)
        tail = tuple(ends or ())
        if tail and entries:
            self.items[-1].ends = tail
        if (status is not None and (entries or not new_turn)) or (tail and not entries):
            self.items.append(Item(None, ends=() if entries else tail, status=status, ts=now))
        if starts:
            self.starts.update(starts)
            if self.starts_at is None:
                self.starts_at = time.monotonic()
        dropped = 0
        limit = self.limit * REACHABLE_FACTOR if reachable else self.limit
        while self.entries > limit:
            self._drop_oldest("buffer full")
            dropped += 1
        return dropped

    def _drop_oldest(self, reason: str) -> None:
        # self.entries counts the entry items, so there is one
        i = next(k for k, item in enumerate(self.items) if item.entry is not None)
        item = self.items[i]
        del self.items[i]
        self.entries -= 1
        self.gap = self.gap or Gap()
        self.gap.add(1, item.ts, item.ts, reason, item.ends)

    def drop_all(self, reason: str) -> int:
        """Drop every pending entry (the trace cannot be recorded); returns how many."""
        n = self.entries
        while self.entries:
            self._drop_oldest(reason)
        self.items.clear()
        self.starts.clear()
        self.starts_at = None
        return n

    def lose(self, batch: Batch, reason: str) -> int:
        """A batch that could not be stored: its entries become part of the next gap."""
        produced = [i for i in batch.items if i.role != "gap"]
        gap = self.gap or Gap()
        if batch.gap:
            gap.merge(batch.gap)
        if produced:
            gap.add(
                len(produced),
                min(i.ts for i in produced),
                max(i.ts for i in produced),
                reason,
                batch.running_end,
            )
        else:
            gap.ends.extend(batch.running_end)
        self.gap = gap if gap.count or gap.ends else None
        return len(produced)

    def starts_due_in(self) -> float | None:
        """Seconds until waiting running marks are sent even alone; None without any."""
        if self.starts_at is None:
            return None
        return self.starts_at + START_DELAY_S - time.monotonic()

    def has_work(self) -> bool:
        """Something to send now: entries or marks, or running marks that waited long enough
        (a gap alone waits for the next batch: it may never be storable)."""
        if self.items:
            return True
        due = self.starts_due_in()
        return due is not None and due <= 0

    def take(self) -> Batch | None:
        """The next batch: up to MAX_BATCH entries, never across the start of a turn."""
        if not self.has_work():
            return None
        batch = Batch()
        first = True
        while self.items and len(batch.items) < MAX_BATCH:
            item = self.items[0]
            if item.new_turn and not first:
                break
            self.items.popleft()
            first = False
            batch.new_turn = batch.new_turn or item.new_turn
            if item.status is not None:
                batch.status = item.status
            if item.entry is not None:
                batch.items.append(item)
                self.entries -= 1
            batch.running_end.extend(item.ends)
        if self.gap is not None:
            gap, self.gap = self.gap, None
            if gap.count:
                batch.items.insert(0, gap.item())
                batch.gap = gap
            batch.running_end = [*gap.ends, *batch.running_end]
        ended = set(batch.running_end)
        # A node that started and ended within this batch need not be marked at all.
        batch.running_start = {k: v for k, v in self.starts.items() if k not in ended}
        self.starts = {}
        self.starts_at = None
        return batch
