"""Read-only queries for the dashboard: entry columns without their JSON, single entries,
filter choices and the aggregates of the overview page.

Every query here runs under a statement time limit and returns plain dicts, never cursors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import tuple_row

from . import queries as q
from .errors import InvalidTraceData

# Dashboard queries give up after this long rather than hold a page.
STATEMENT_TIMEOUT_MS = 10_000
MAX_ENTRY_ROWS = 200_000
MAX_CHOICES = 500

ENTRY_COLUMN_NAMES = ("seq", "node", "kind", "name", "status", "started_at", "ended_at", "duration_ms")

# Everything the timeline and the per-node table need, without ``data``: decoding 10,000
# JSONB documents would cost more than drawing them.
ENTRY_COLUMNS = """
SELECT seq, node, kind, name, status, started_at, ended_at, duration_ms
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s
 ORDER BY seq LIMIT %(limit)s
"""

ENTRIES_BY_SEQ = """
SELECT seq, node, kind, name, status, started_at, ended_at, duration_ms, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq = ANY(%(seqs)s)
 ORDER BY seq
"""

# Distinct users through the (user_id, ...) index, one index probe per user.
DISTINCT_USERS = """
WITH RECURSIVE u AS (
    (SELECT user_id FROM automation_traces ORDER BY user_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.user_id FROM automation_traces t WHERE t.user_id > u.user_id
             ORDER BY t.user_id LIMIT 1)
      FROM u WHERE u.user_id IS NOT NULL
)
SELECT user_id FROM u WHERE user_id IS NOT NULL LIMIT %(limit)s
"""

# Nodes seen in the most recently updated traces: bounded work on any table size.
RECENT_NODES = """
SELECT DISTINCT n AS node
  FROM (SELECT nodes FROM automation_traces ORDER BY updated_at DESC, id DESC LIMIT 5000) t,
       unnest(t.nodes) AS n
 ORDER BY 1 LIMIT %(limit)s
"""

RANGE = """
t.created_at >= %(since)s AND t.created_at < %(until)s
AND (%(user_id)s::text IS NULL OR t.user_id = %(user_id)s)
"""

PER_DAY = f"""
SELECT date_trunc('day', t.created_at) AS day, t.status, count(*) AS traces,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       coalesce(sum(t.entry_count), 0) AS entries
  FROM automation_traces t
 WHERE {RANGE}
 GROUP BY 1, 2 ORDER BY 1, 2
"""

PER_NODE = f"""
SELECT coalesce(e.node, '(none)') AS node, count(*) AS entries,
       count(*) FILTER (WHERE e.status = 'error') AS errors,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms,
       avg(e.duration_ms) AS mean_ms, coalesce(sum(e.duration_ms), 0) AS total_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {RANGE}
 GROUP BY 1 ORDER BY entries DESC, node LIMIT 50
"""

PER_USER = f"""
SELECT t.user_id, count(*) AS traces, coalesce(sum(t.entry_count), 0) AS entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       coalesce(sum(t.error_count), 0) AS error_entries, max(t.updated_at) AS last_active
  FROM automation_traces t
 WHERE {RANGE}
 GROUP BY 1 ORDER BY traces DESC, entries DESC, t.user_id LIMIT %(top)s
"""

TOTALS = f"""
SELECT count(*) AS traces, coalesce(sum(t.entry_count), 0) AS entries,
       coalesce(sum(t.error_count), 0) AS error_entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       count(*) FILTER (WHERE t.status = 'running') AS running,
       count(DISTINCT t.user_id) AS users
  FROM automation_traces t
 WHERE {RANGE}
"""

STEP_PERCENTILES = f"""
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {RANGE}
"""


@dataclass(frozen=True)
class Overview:
    """Aggregates over the traces created in ``[since, until)``."""

    since: datetime
    until: datetime
    totals: dict[str, Any]
    per_day: list[dict[str, Any]] = field(default_factory=list)
    per_node: list[dict[str, Any]] = field(default_factory=list)
    per_user: list[dict[str, Any]] = field(default_factory=list)


def _limited(conn: Any) -> None:
    conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")


def entry_columns(db: Any, trace_id: str, limit: int = MAX_ENTRY_ROWS) -> dict[str, list[Any]]:
    """A trace's entries as columns (seq, node, kind, name, status, started_at, ended_at,
    duration_ms), in seq order, without their JSON data. Empty lists for an unknown id."""
    empty: dict[str, list[Any]] = {name: [] for name in ENTRY_COLUMN_NAMES}
    tid = q.parse_uuid(trace_id)
    if tid is None:
        return empty
    with db._conn() as conn, conn.transaction():
        _limited(conn)
        cur = conn.cursor(row_factory=tuple_row)
        rows = cur.execute(ENTRY_COLUMNS, {"trace_id": tid, "limit": limit}).fetchall()
    if not rows:
        return empty
    return {
        name: list(values) for name, values in zip(ENTRY_COLUMN_NAMES, zip(*rows, strict=True), strict=True)
    }


def entries_by_seq(db: Any, trace_id: str, seqs: list[int]) -> list[dict[str, Any]]:
    """The chosen entries of a trace, with their data, in seq order."""
    tid = q.parse_uuid(trace_id)
    if tid is None or not seqs:
        return []
    clean = [int(s) for s in seqs]
    with db._conn() as conn:
        return conn.execute(ENTRIES_BY_SEQ, {"trace_id": tid, "seqs": clean}).fetchall()


def get_entry(db: Any, trace_id: str, seq: int) -> dict[str, Any] | None:
    """One entry of a trace with its data, or None."""
    rows = entries_by_seq(db, trace_id, [seq])
    return rows[0] if rows else None


def filter_choices(db: Any, limit: int = MAX_CHOICES) -> dict[str, list[str]]:
    """Users and node names to offer in filter widgets (bounded, fast on large tables)."""
    with db._conn() as conn, conn.transaction():
        _limited(conn)
        users = [r["user_id"] for r in conn.execute(DISTINCT_USERS, {"limit": limit}).fetchall()]
        nodes = [r["node"] for r in conn.execute(RECENT_NODES, {"limit": limit}).fetchall()]
    return {"users": users, "nodes": nodes}


def overview(
    db: Any, since: datetime, until: datetime, user_id: str | None = None, top_users: int = 15
) -> Overview:
    """Traces per day and status, entries and step durations per node, busiest users and
    totals, over the traces created in ``[since, until)``.

    Raises:
        InvalidTraceData: ``since``/``until`` are not timezone-aware datetimes in order.
    """
    for label, value in (("since", since), ("until", until)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidTraceData(f"{label} must be a timezone-aware datetime")
    if since >= until:
        raise InvalidTraceData("since must be before until")
    params = {"since": since, "until": until, "user_id": user_id or None, "top": top_users}
    with db._conn() as conn, conn.transaction():
        _limited(conn)
        totals = dict(conn.execute(TOTALS, params).fetchone() or {})
        totals.update(conn.execute(STEP_PERCENTILES, params).fetchone() or {})
        per_day = conn.execute(PER_DAY, params).fetchall()
        per_node = conn.execute(PER_NODE, params).fetchall()
        per_user = conn.execute(PER_USER, params).fetchall()
    return Overview(since, until, totals, per_day, per_node, per_user)


def is_unfiltered(flt: Any) -> bool:
    """True when a TraceFilter matches every trace (deleting it needs ``allow_all``)."""
    return q.is_empty_filter(flt)
