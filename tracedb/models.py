"""Plain data classes returned by the store. Never cursors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

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
    running: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_at: datetime | None = None

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601 strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["duration_ms"] = self.duration_ms
        out["work_ms"] = self.work_ms
        return out


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
        per_day: per day and status: traces, traces with errors, entries, tokens, cost.
        per_node: per node: entries, errors, step duration p50/p95/mean/total.
        per_user: the busiest users: traces, entries, failed, error entries, tokens, cost.
        latency: per day: traces, trace work p50/p95 (steps added up) and step p50/p95.
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
    migrations applied, exact row counts per table, indexes and functions."""

    label: str
    version: str
    migrations: list[str]
    tables: dict[str, int]
    indexes: list[str]
    functions: list[str]
