"""Plain data classes returned by the store. Never cursors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# The seed's row, in its order: what to_dict() starts with and what HTTP returns.
SEED_FIELDS = ("id", "user_id", "provider_id", "thread_id", "name", "trace_data", "created_at", "updated_at")

# What a trace can be set to.
WRITABLE_STATUSES = ("running", "completed", "failed", "interrupted")
# What a trace can read as: "abandoned" is a running trace whose writer has not been heard
# from for TRACEDB_ABANDON_AFTER seconds (its process died or lost the database).
STATUSES = (*WRITABLE_STATUSES, "abandoned")


@dataclass(frozen=True)
class TraceSummary:
    """A stored trace without its entries."""

    id: str
    user_id: str
    provider_id: str | None
    thread_id: str
    name: str | None
    status: str
    entry_count: int
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    error_count: int = 0
    nodes: list[str] = field(default_factory=list)
    first_started_at: datetime | None = None
    last_ended_at: datetime | None = None
    total_duration_ms: float = 0.0
    turns: int = 0
    dropped_count: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    last_error: str | None = None
    running: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_at: datetime | None = None

    @property
    def forked_from(self) -> tuple[str, int | None] | None:
        """The trace this one was replayed from and the step it was run again from
        (``metadata["forked_from"]``, which :meth:`get_forks` looks up; the step is None when
        not recorded), or None when this trace is no replay."""
        found = self.metadata.get("forked_from") if isinstance(self.metadata, dict) else None
        if not isinstance(found, dict) or not isinstance(found.get("trace_id"), str):
            return None
        seq = found.get("seq")
        return found["trace_id"], seq if isinstance(seq, int) and not isinstance(seq, bool) else None

    @property
    def duration_ms(self) -> float | None:
        """The span: wall time from the first entry's start to the last entry's end (pauses
        between turns included), else the summed durations."""
        if self.first_started_at and self.last_ended_at:
            return (self.last_ended_at - self.first_started_at).total_seconds() * 1000.0
        return self.total_duration_ms or None

    @property
    def work_ms(self) -> float | None:
        """The work: the durations of the steps added up, without the idle time between
        turns; None when no step recorded a duration."""
        return self.total_duration_ms or None

    def keys(self) -> list[str]:
        """The keys of :meth:`to_dict`: the seed's row first, then tracedb's fields."""
        names = [f.name for f in fields(self)]
        seed = [n for n in SEED_FIELDS if n in names]
        return seed + [n for n in names if n not in SEED_FIELDS] + ["duration_ms", "work_ms"]

    def _value(self, key: str) -> Any:
        value = getattr(self, key)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, list):
            return list(value)  # a copy: the row must not change this frozen object
        if isinstance(value, dict):
            return dict(value)
        return value

    def to_dict(self) -> dict[str, Any]:
        """The seed's row as a JSON-ready dict: ``id, user_id, provider_id, thread_id, name,
        trace_data`` (a :class:`Trace` only) ``, created_at, updated_at`` (ISO 8601 strings),
        then tracedb's fields (status, counts, nodes, metadata, timings, usage, durations)."""
        return {key: self._value(key) for key in self.keys()}

    def __getitem__(self, key: str) -> Any:
        """``trace["trace_data"]``, ``trace["id"]``: the row's values, as the seed's dict rows
        gave them (times as ISO 8601 strings).

        Raises:
            KeyError: not a key of :meth:`to_dict`.
        """
        if not isinstance(key, str) or key not in self.keys():
            raise KeyError(key)
        return self._value(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``row.get(key, default)``, as on the seed's dict rows."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` pairs of :meth:`to_dict`."""
        return iter(self.to_dict().items())

    def values(self) -> Iterator[Any]:
        """The values of :meth:`to_dict`."""
        return iter(self.to_dict().values())


@dataclass(frozen=True)
class Trace(TraceSummary):
    """A stored trace with its complete, ordered list of entries."""

    trace_data: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AppendResult:
    """Where an append went: the trace, the seq of its first new entry, the new count, how
    many entries were written, whether the trace was created, the turn, and whether the batch
    had been applied before (sent again after a lost reply: nothing was written)."""

    trace_id: str
    first_seq: int
    entry_count: int
    written: int
    created: bool = False
    turn: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class TraceFilter:
    """What to match in list_traces, count_traces and delete_traces. Empty fields match all.

    Attributes:
        user_id: exact user.
        thread_id: exact thread.
        name: case-insensitive prefix of the trace name.
        status: one status or several.
        since: updated at or after (inclusive).
        until: updated before (exclusive).
        node: at least one entry from this node.
        text: full-text search over the strings of the entries (websearch syntax).
        contains: JSON containment, an entry whose data contains this object.
        trace_ids: only these ids.
        provider_id: exact provider.
    """

    user_id: str | None = None
    thread_id: str | None = None
    name: str | None = None
    status: str | tuple[str, ...] | list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    node: str | None = None
    text: str | None = None
    contains: dict[str, Any] | list[Any] | None = None
    trace_ids: tuple[str, ...] | list[str] | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class TracePage:
    """One page of a keyset-paginated listing."""

    items: list[TraceSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class Overview:
    """Aggregates over the traces created in ``[since, until)``.

    Attributes:
        totals: traces, entries, errors, failed, running, abandoned, users, tokens, cost,
            dropped entries, and step duration p50/p95.
        per_day: per bucket (``day``) and status: traces, traces with errors, entries,
            tokens, cost.
        per_node: per node: entries, errors, step duration p50/p95/mean/total.
        per_user: the busiest users: traces, entries, failed, error entries, tokens, cost.
        latency: per bucket (``bucket``: hour, day or week): traces, trace work p50/p95
            (steps added up) and step p50/p95.
        per_model: per model: steps, tokens, cost.
    """

    since: datetime
    until: datetime
    totals: dict[str, Any]
    per_day: list[dict[str, Any]] = field(default_factory=list)
    per_node: list[dict[str, Any]] = field(default_factory=list)
    per_user: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    per_model: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ServerStatus:
    """What ``python -m tracedb status`` prints: where the server is, its version, the
    migrations applied, exact row counts per table, each table's columns (``"name type"``),
    indexes and functions."""

    label: str
    version: str
    migrations: list[str]
    tables: dict[str, int]
    indexes: list[str]
    functions: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)
