"""Every SQL statement tracedb runs, the builders that make them from a TraceFilter, and the
checks of the values that go into them.

SQL is written one way: fixed statements are constants with named placeholders
(``%(name)s``); statements that depend on a filter are composed with :mod:`psycopg.sql`,
each value added through :class:`Params`, which names its placeholder. No value is ever
formatted into SQL text.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from .errors import InvalidTraceData
from .jsonsafe import to_jsonable
from .limits import ABANDON_AFTER, MAX_LIMIT, MAX_TEXT_BYTES
from .models import STATUSES, WRITABLE_STATUSES, Trace, TraceFilter, TracePage, TraceSummary

# -- the columns of a trace summary ----------------------------------------------------

SUMMARY_FIELDS = (
    "id",
    "user_id",
    "provider_id",
    "thread_id",
    "name",
    "status",
    "entry_count",
    "error_count",
    "nodes",
    "metadata",
    "first_started_at",
    "last_ended_at",
    "total_duration_ms",
    "turns",
    "dropped_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "last_error",
    "running",
    "heartbeat_at",
    "created_at",
    "updated_at",
)

# A running trace whose writer has not been heard from for %(abandon_after)s seconds (no
# append, no heartbeat) reads as abandoned: its process died or lost the database.
STALE = sql.SQL("coalesce(t.heartbeat_at, t.updated_at) < now() - make_interval(secs => %(abandon_after)s)")
STATUS = sql.SQL("CASE WHEN t.status = 'running' AND {stale} THEN 'abandoned' ELSE t.status END").format(
    stale=STALE
)


def summary_columns() -> sql.Composed:
    """The summary columns of ``automation_traces t`` (the id as text, the status as read)."""
    columns: list[sql.Composable] = []
    for name in SUMMARY_FIELDS:
        if name == "id":
            columns.append(sql.SQL("t.id::text AS id"))
        elif name == "status":
            columns.append(sql.SQL("{} AS status").format(STATUS))
        else:
            columns.append(sql.Identifier("t", name))
    return sql.SQL(", ").join(columns)


SUMMARY = summary_columns()
SUMMARY_NAMES = sql.SQL(", ").join(sql.Identifier(name) for name in SUMMARY_FIELDS)

ENTRY_FIELDS = (
    "seq",
    "node",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "turn",
    "checkpoint_id",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
)
_ENTRY_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in ENTRY_FIELDS)

# -- fixed statements -------------------------------------------------------------------

APPEND = """
SELECT trace_id::text AS trace_id, first_seq, entry_count, written, in_sync, created, turn,
       duplicate, replaced, fingerprint
  FROM tracedb_append(%(trace_id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s,
                      %(entries)s::jsonb, %(offset)s, %(status)s, %(new_id)s, %(new_turn)s,
                      %(scope)s, %(batch)s, %(chain)s, %(replace)s, %(running)s, %(dropped)s)
"""

# Where the most recent trace of a thread and user stands: its entry count and fingerprint.
THREAD_STATE = """
SELECT t.id::text AS id, t.entry_count, t.fingerprint FROM automation_traces t
 WHERE t.thread_id = %(thread_id)s AND t.user_id = %(user_id)s
 ORDER BY t.created_at DESC, t.id DESC LIMIT 1
"""

# The writer of a running trace is alive: moves its heartbeat (and, at most once a second,
# its updated_at through the touch trigger).
TOUCH = """
UPDATE automation_traces t SET heartbeat_at = clock_timestamp()
 WHERE t.id = %(id)s AND t.status = 'running' AND (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
"""

INSERT_TRACE = """
INSERT INTO automation_traces (id, user_id, provider_id, thread_id, name, status, metadata)
VALUES (%(id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s, %(status)s, %(metadata)s)
"""

# Every statement that reads or changes traces by id takes %(scope)s: NULL for a store that
# may see every user's traces, else the only user whose traces it may see
# (``AutomationTraceDB.as_user``). Another user's trace is then as absent as one that does
# not exist.
SCOPED = sql.SQL("(%(scope)s::text IS NULL OR t.user_id = %(scope)s)")
OWNED_TRACE = sql.SQL(
    "(%(scope)s::text IS NULL OR EXISTS (SELECT 1 FROM automation_traces t"
    " WHERE t.id = %(trace_id)s AND t.user_id = %(scope)s))"
)


def _scoped(text: str) -> sql.Composed:
    return sql.SQL(text).format(
        columns=SUMMARY, scoped=SCOPED, owned=OWNED_TRACE, entry_columns=_ENTRY_COLUMNS, status=STATUS
    )


LOAD_BY_ID = _scoped(
    "SELECT {columns}, ARRAY(SELECT e.data FROM automation_trace_entries e WHERE e.trace_id = t.id ORDER BY e.seq) AS trace_data FROM automation_traces t"
    " WHERE t.id = %(id)s AND {scoped}"
)
SUMMARY_BY_ID = _scoped("SELECT {columns} FROM automation_traces t WHERE t.id = %(id)s AND {scoped}")
LOAD_BY_THREAD = _scoped(
    "SELECT {columns}, ARRAY(SELECT e.data FROM automation_trace_entries e WHERE e.trace_id = t.id ORDER BY e.seq) AS trace_data FROM automation_traces t"
    " WHERE t.thread_id = %(thread_id)s AND {scoped} ORDER BY t.created_at DESC, t.id DESC LIMIT 1"
)
USER_TRACES = _scoped(
    "SELECT {columns} FROM automation_traces t WHERE t.user_id = %(user_id)s AND {scoped}"
    " AND (%(provider_id)s::text IS NULL OR t.provider_id = %(provider_id)s)"
    " ORDER BY t.updated_at DESC, t.id DESC LIMIT %(limit)s OFFSET %(offset)s"
)
LOCK_TRACE = _scoped("SELECT t.id FROM automation_traces t WHERE t.id = %(id)s AND {scoped} FOR UPDATE")
RENAME = _scoped("UPDATE automation_traces t SET name = %(name)s WHERE t.id = %(id)s AND {scoped}")
SET_STATUS = _scoped("UPDATE automation_traces t SET status = %(status)s WHERE t.id = %(id)s AND {scoped}")
MERGE_METADATA = _scoped(
    "UPDATE automation_traces t SET metadata = t.metadata || %(metadata)s WHERE t.id = %(id)s AND {scoped}"
)
DELETE_ONE = _scoped("DELETE FROM automation_traces t WHERE t.id = %(id)s AND {scoped}")
# Used after LOCK_TRACE, which checked the scope.
RESET_ENTRIES = """
UPDATE automation_traces SET entry_count = 0, error_count = 0, nodes = '{}',
       first_started_at = NULL, last_ended_at = NULL, total_duration_ms = 0, turns = 0
 WHERE id = %(id)s
"""
DELETE_ENTRIES = "DELETE FROM automation_trace_entries WHERE trace_id = %(id)s"
PING = "SELECT 1 AS ok"

ENTRIES = _scoped(
    """
SELECT {entry_columns}, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq > %(after_seq)s AND {owned}
 ORDER BY seq LIMIT %(limit)s
"""
)

# Everything the timeline and the per-node table need, without ``data``: decoding 10,000
# JSONB documents would cost more than drawing them.
ENTRY_COLUMNS = _scoped(
    """
SELECT {entry_columns}
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq > %(after_seq)s AND {owned}
 ORDER BY seq LIMIT %(limit)s
"""
)

ENTRIES_BY_SEQ = _scoped(
    """
SELECT {entry_columns}, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq = ANY(%(seqs)s) AND {owned}
 ORDER BY seq
"""
)

# The nodes running right now in a trace (markers kept on the trace row while a node runs):
# shown as steps with status "running" (or "abandoned" when the trace's writer is gone).
RUNNING = _scoped(
    """
SELECT r.key AS task_id, r.value AS marker, t.turns, {status} AS trace_status
  FROM automation_traces t, jsonb_each(t.running) AS r
 WHERE t.id = %(trace_id)s AND {scoped}
 ORDER BY r.value->>'started_at', r.key
"""
)

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
  FROM (SELECT t.nodes FROM automation_traces t WHERE (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
         ORDER BY t.updated_at DESC, t.id DESC LIMIT 5000) t,
       unnest(t.nodes) AS n
 ORDER BY 1 LIMIT %(limit)s
"""

# The traces an overview covers: created in [since, until), of one user or all.
_RANGE = sql.SQL(
    "t.created_at >= %(since)s AND t.created_at < %(until)s"
    " AND (%(user_id)s::text IS NULL OR t.user_id = %(user_id)s)"
)


def _overview(text: str) -> sql.Composed:
    return sql.SQL(text).format(range=_RANGE, status=STATUS, stale=STALE)


OVERVIEW_PER_DAY = _overview(
    """
SELECT date_trunc(%(bucket)s, t.created_at) AS day, {status} AS status, count(*) AS traces,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       coalesce(sum(t.entry_count), 0) AS entries,
       sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens,
       sum(t.total_tokens) AS total_tokens, sum(t.cost_usd) AS cost_usd
  FROM automation_traces t
 WHERE {range}
 GROUP BY 1, 2 ORDER BY 1, 2
"""
)

# Latency over time: per bucket (hour, day or week), the work of a trace (its steps'
# durations added up) and the duration of a step, at the median and the 95th percentile.
OVERVIEW_LATENCY = _overview(
    """
SELECT d.day AS bucket, d.traces, d.trace_p50_ms, d.trace_p95_ms, s.step_p50_ms, s.step_p95_ms, s.steps
  FROM (SELECT date_trunc(%(bucket)s, t.created_at) AS day, count(*) AS traces,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY t.total_duration_ms)
                   FILTER (WHERE t.total_duration_ms > 0) AS trace_p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY t.total_duration_ms)
                   FILTER (WHERE t.total_duration_ms > 0) AS trace_p95_ms
          FROM automation_traces t WHERE {range} GROUP BY 1) d
  LEFT JOIN (SELECT date_trunc(%(bucket)s, t.created_at) AS day, count(e.duration_ms) AS steps,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS step_p50_ms,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS step_p95_ms
               FROM automation_traces t JOIN automation_trace_entries e ON e.trace_id = t.id
              WHERE {range} GROUP BY 1) s ON s.day = d.day
 ORDER BY d.day
"""
)

OVERVIEW_PER_NODE = _overview(
    """
SELECT coalesce(e.node, '(none)') AS node, count(*) AS entries,
       count(*) FILTER (WHERE e.status = 'error') AS errors,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms,
       avg(e.duration_ms) AS mean_ms, coalesce(sum(e.duration_ms), 0) AS total_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range}
 GROUP BY 1 ORDER BY entries DESC, node LIMIT 50
"""
)

# Tokens and cost per model, from the steps that report usage.
OVERVIEW_PER_MODEL = _overview(
    """
SELECT e.model, count(*) AS steps, sum(e.input_tokens) AS input_tokens,
       sum(e.output_tokens) AS output_tokens, sum(e.total_tokens) AS total_tokens,
       sum(e.cost_usd) AS cost_usd
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range} AND e.model IS NOT NULL
 GROUP BY 1 ORDER BY total_tokens DESC NULLS LAST, e.model LIMIT 50
"""
)

OVERVIEW_PER_USER = _overview(
    """
SELECT t.user_id, count(*) AS traces, coalesce(sum(t.entry_count), 0) AS entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       coalesce(sum(t.error_count), 0) AS error_entries, max(t.updated_at) AS last_active,
       sum(t.total_tokens) AS total_tokens, sum(t.cost_usd) AS cost_usd
  FROM automation_traces t
 WHERE {range}
 GROUP BY 1 ORDER BY traces DESC, entries DESC, t.user_id LIMIT %(top)s
"""
)

OVERVIEW_TOTALS = _overview(
    """
SELECT count(*) AS traces, coalesce(sum(t.entry_count), 0) AS entries,
       coalesce(sum(t.error_count), 0) AS error_entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       count(*) FILTER (WHERE t.status = 'running' AND NOT {stale}) AS running,
       count(*) FILTER (WHERE t.status = 'running' AND {stale}) AS abandoned,
       count(DISTINCT t.user_id) AS users,
       sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens,
       sum(t.total_tokens) AS total_tokens, sum(t.cost_usd) AS cost_usd,
       coalesce(sum(t.dropped_count), 0) AS dropped
  FROM automation_traces t
 WHERE {range}
"""
)

OVERVIEW_STEP_PERCENTILES = _overview(
    """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range}
"""
)

# created_at/updated_at of several traces at once, as given: history for imported or demo
# data. The touch trigger keeps the given times while ``tracedb.keep_times`` is on, which
# is set for this transaction only.
KEEP_TIMES = "SELECT set_config('tracedb.keep_times', 'on', true)"
SET_TIMES = """
UPDATE automation_traces t SET created_at = v.created_at, updated_at = v.updated_at
  FROM unnest(%(ids)s::uuid[], %(created)s::timestamptz[], %(updated)s::timestamptz[])
       AS v(id, created_at, updated_at)
 WHERE t.id = v.id AND (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
"""

INDEX_STALE = "SELECT tracedb_index_stale(%(limit)s, %(age)s) AS n"

# A statement's time limit, for this transaction only (the store sets it before a statement
# that carries ``timeout_ms``).
STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', %(timeout)s, true)"

# -- what `python -m tracedb status` reports --------------------------------------------

STATUS_TABLES = (
    "automation_traces",
    "automation_trace_entries",
    "automation_trace_search",
    "tracedb_api_keys",
    "tracedb_migrations",
)
# Reported when present: the seed's table, kept renamed after its rows were converted
# (tracedb/migrations.py), and the conversion's progress.
OPTIONAL_STATUS_TABLES = ("automation_traces_seed", "tracedb_seed_conversion")
STATUS_COLUMNS = """
SELECT c.relname AS table_name,
       a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS col
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relname = ANY(%(tables)s) AND c.relkind = 'r'
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum
"""
STATUS_VERSION = "SELECT version() AS version"
STATUS_MIGRATIONS = "SELECT name FROM tracedb_migrations ORDER BY version"
STATUS_INDEXES = """
SELECT indexname FROM pg_indexes
 WHERE schemaname = current_schema() AND tablename = ANY(%(tables)s) ORDER BY tablename, indexname
"""
STATUS_FUNCTIONS = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = current_schema() AND p.proname LIKE 'tracedb%%' ORDER BY 1
"""


def count_rows(table: str) -> sql.Composed:
    """``SELECT count(*)`` of one of :data:`STATUS_TABLES`."""
    if table not in STATUS_TABLES + OPTIONAL_STATUS_TABLES:
        raise InvalidTraceData(f"unknown table {table!r}")
    return sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))


# -- checks of values -------------------------------------------------------------------


def parse_uuid(value: Any) -> str | None:
    """The canonical text of a UUID, or None when ``value`` is not one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def require_text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """Check a text argument (user_id, thread_id, ...): a non-empty string without NUL."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidTraceData(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidTraceData(f"{name} must not contain NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidTraceData(f"{name} is not valid Unicode text: {exc}") from exc
    if size > MAX_TEXT_BYTES:
        raise InvalidTraceData(
            f"{name} is {size:,} bytes as UTF-8, over the limit of {MAX_TEXT_BYTES:,} bytes"
        )
    return value


def require_status(status: Any, *, readable: bool = False) -> str:
    """A status a trace can be given (running, completed, failed, interrupted), or with
    ``readable`` one it can read as (also abandoned: running, and not heard from)."""
    allowed = STATUSES if readable else WRITABLE_STATUSES
    if not isinstance(status, str) or status not in allowed:
        raise InvalidTraceData(f"status must be one of {', '.join(allowed)}; got {status!r}")
    return status


def require_int(name: str, value: Any, *, minimum: int | None = None, maximum: int = 2**31 - 1) -> int:
    """An integer argument (not a bool) within [minimum, maximum]."""
    low = -(2**31) if minimum is None else minimum
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= maximum:
        raise InvalidTraceData(f"{name} must be an integer from {low:,} to {maximum:,}, got {value!r}")
    return value


def require_limit(limit: Any, offset: Any = 0) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise InvalidTraceData(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidTraceData(f"offset must be a non-negative integer, got {offset!r}")
    return limit, offset


def metadata_param(metadata: Any) -> Jsonb:
    if metadata is None:
        return Jsonb({})
    if not isinstance(metadata, dict):
        raise InvalidTraceData(f"metadata must be a dict, got {type(metadata).__name__}")
    return Jsonb(to_jsonable(metadata))


# -- rows to data classes ---------------------------------------------------------------


def _running_markers(running: Any) -> list[dict[str, Any]]:
    if not isinstance(running, dict):
        return []
    markers = [{"task_id": k, **v} if isinstance(v, dict) else {"task_id": k} for k, v in running.items()]
    return sorted(markers, key=lambda m: (str(m.get("started_at") or ""), m["task_id"]))


def summary_from_row(row: dict[str, Any]) -> TraceSummary:
    fields = {k: v for k, v in row.items() if k != "trace_data"}
    fields["nodes"] = list(fields.get("nodes") or [])
    fields["running"] = _running_markers(fields.get("running"))
    return TraceSummary(**fields)


def trace_from_row(row: dict[str, Any]) -> Trace:
    fields = dict(row)
    fields["nodes"] = list(fields.get("nodes") or [])
    fields["running"] = _running_markers(fields.get("running"))
    fields["trace_data"] = list(fields.get("trace_data") or [])
    return Trace(**fields)


# -- keyset cursors ---------------------------------------------------------------------


def encode_cursor(updated_at: datetime, trace_id: str) -> str:
    raw = f"{updated_at.isoformat()}|{trace_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, trace_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        when = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise InvalidTraceData(f"cursor {cursor!r} is not one this store issued") from exc
    tid = parse_uuid(trace_id)
    if tid is None or when.tzinfo is None:
        raise InvalidTraceData(f"cursor {cursor!r} is not one this store issued")
    return when, tid


# -- filters ----------------------------------------------------------------------------


class Params(dict[str, Any]):
    """The named parameters of one statement being composed."""

    def add(self, name: str, value: Any) -> sql.Placeholder:
        """Keep ``value`` under a fresh name made from ``name``; return its placeholder."""
        key = f"{name}_{len(self)}"
        self[key] = value
        return sql.Placeholder(key)


# Text search and containment go through automation_trace_search: per block of entries of
# a trace, the words of its strings and "=<hash>" lexemes of its (key, scalar value) pairs,
# each at the position of its entry in the block. A match there only makes a trace a
# candidate; each candidate is confirmed against its entries, so the meaning stays "an
# entry matches". The confirmation is a scalar subquery so that it stays a per-row check of
# the candidates, never a join over every entry. Blocks that could not be indexed whole
# (complete = false) are candidates of every query.
# The candidate query asks for its terms in one entry ("a <0> b": the same position); a
# phrase is asked for as its words in one entry, which the confirmation narrows to the phrase.
#
# Traces whose newest entries are not indexed yet (index_pending: search rows are filled
# behind the writes) are candidates too, but in a branch of their own (see FilterSQL): an
# OR or a UNION inside this IN would stop the planner from probing the search rows of one
# trace at a time, the plan that makes common words fast.
_CANDIDATES = (
    "t.id IN (SELECT s.trace_id FROM automation_trace_search s WHERE s.words @@ {words} OR NOT s.complete)"
)
_PARSED_WORDS = "tracedb_same_entry(websearch_to_tsquery('simple'::regconfig, {query}))"
# With the query as tsquery text the planner sees the lexemes' frequencies and nothing is
# parsed per row; used where the parser and the 'simple' dictionary surely agree with it.
_LITERAL_WORDS = "{query}::tsquery"
# "(...) IS TRUE" keeps any index on the entries out of a confirmation: it must read the
# few entries of one trace through the primary key, never every matching entry of the table.
# An entry too big to be indexed is matched by tracedb_entry_matches, which cannot fail.
_TEXT_CONFIRMS = (
    "(SELECT TRUE FROM automation_trace_entries e WHERE e.trace_id = {tid} AND (CASE"
    " WHEN pg_column_size(e.data) <= tracedb_search_entry_bytes()"
    " THEN jsonb_to_tsvector('simple'::regconfig, e.data, '[\"string\"]'::jsonb)"
    " @@ websearch_to_tsquery('simple'::regconfig, {query})"
    " ELSE tracedb_entry_matches(e.data, websearch_to_tsquery('simple'::regconfig, {query})) END)"
    " IS TRUE LIMIT 1)"
)
_CONTAINS_CONFIRMS = (
    "(SELECT TRUE FROM automation_trace_entries e WHERE e.trace_id = {tid}"
    " AND (e.data @> {value}) IS TRUE LIMIT 1)"
)
_ASCII_WORD = re.compile(r"^[A-Za-z0-9]+$")
_TERM = re.compile(r'-?"[^"]*"?|\S+')


def words_tsquery(candidates: str) -> str | None:
    """``candidates`` as tsquery text when it is only ASCII words and quoted phrases of them
    (all to be found in one entry: ``'a' <0> 'b'``); None otherwise."""
    words = candidates.replace('"', " ").split()
    if not words or not all(_ASCII_WORD.match(w) for w in words) or any(w.lower() == "or" for w in words):
        return None
    return " <0> ".join(f"'{w.lower()}'" for w in words)


def _scalar_text(value: Any) -> str | None:
    """A JSON scalar as ``tracedb_json_keys`` spells it; None for objects and arrays."""
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "btrue" if value else "bfalse"
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, (int, float)):
        # PostgreSQL reads the JSON text json.dumps writes (repr for floats) as numeric, and
        # trim_scale drops trailing zeros: 1.0 and 1 are both "n1".
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return "n0" if number == 0 else "n" + format(number.normalize(), "f")
    return None


def contains_keys(value: Any, key: str | None = None) -> set[str]:
    """The "=<hash>" lexemes that every entry containing ``value`` has in its block: one per
    (nearest object key, scalar value), as ``tracedb_json_keys`` makes them."""
    keys: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            keys |= contains_keys(v, str(k))
    elif isinstance(value, list):
        for v in value:
            keys |= contains_keys(v, key)
    elif key is not None:
        text = _scalar_text(value)
        if text is not None:
            keys.add("=" + hashlib.md5(f"{key}={text}".encode()).hexdigest()[:16])
    return keys


def contains_tsquery(value: Any) -> str | None:
    """Candidate tsquery text for a containment query; None when it has no key to look for."""
    keys = sorted(contains_keys(value)) if isinstance(value, dict) else []
    if not keys:
        return None
    return " <0> ".join(f"'{k}'" for k in keys)


def candidate_terms(text: str) -> str | None:
    """The websearch query that every matching trace's words must satisfy.

    Negated terms are dropped (a block can hold a word that the matching entry lacks).
    None when no such query exists: only negations, or a negation next to OR.
    """
    terms = _TERM.findall(text)
    negated = [t for t in terms if t.startswith("-") and len(t) > 1]
    if negated and any(t.lower() == "or" for t in terms):
        return None
    kept = [t for t in terms if t not in negated]
    return " ".join(kept) if kept else None


def _like_prefix(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Confirm = Callable[[sql.Composable], sql.Composable]
_TRACE_ID = sql.SQL("t.id")


@dataclass
class FilterSQL:
    """A TraceFilter as SQL: conditions indexes can answer, search candidates (through the
    search rows), and confirmations to check per candidate trace (each a function of the SQL
    expression of that trace's id), sharing one set of named parameters.

    With search candidates a query runs in two branches that never overlap: the indexed
    traces that the search rows name, and the traces with entries not indexed yet
    (``index_pending``, few: the ones being written), which are confirmed directly. Each
    branch gets its own plan.
    """

    params: Params = field(default_factory=Params)
    conditions: list[sql.Composable] = field(default_factory=list)
    search: list[sql.Composable] = field(default_factory=list)
    confirms: list[Confirm] = field(default_factory=list)
    scope: sql.Composable | None = None
    # True once a condition that cannot match every trace is added (see narrows)
    narrowing: bool = False

    @property
    def branches(self) -> list[str]:
        """The branches a query over this filter runs: "all", or "indexed" and "pending"."""
        return ["indexed", "pending"] if self.search else ["all"]

    def where(self, branch: str = "all", *, with_confirms: bool = True) -> sql.Composable:
        """The WHERE condition of a branch (without the keyword); TRUE when there is none."""
        parts = list(self.conditions) + ([self.scope] if self.scope is not None else [])
        if branch in ("all", "indexed"):
            parts += self.search
        if branch == "indexed":
            parts.append(sql.SQL("NOT t.index_pending"))
        elif branch == "pending":
            parts.append(sql.SQL("t.index_pending"))
        if with_confirms:
            parts += [confirm(_TRACE_ID) for confirm in self.confirms]
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")

    @property
    def empty(self) -> bool:
        return not self.conditions and not self.search and not self.confirms

    @property
    def narrows(self) -> bool:
        """False when the filter can match every trace: no condition at all, or only ones
        such as an empty ``contains`` or a text of negations. Deleting with such a filter
        needs the explicit "all"."""
        return self.narrowing


def compile_filter(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> FilterSQL:
    """The SQL of ``flt``, for a store that sees only ``scope``'s traces (None: everyone's),
    where a running trace not heard from for ``abandon_after`` seconds is abandoned.

    Raises:
        InvalidTraceData: a field has a value of the wrong type.
    """
    if flt is not None and not isinstance(flt, TraceFilter):
        raise InvalidTraceData(f"filter must be a TraceFilter, got {type(flt).__name__}")
    flt = flt or TraceFilter()
    out = FilterSQL()
    p, cond = out.params, out.conditions
    p["abandon_after"] = float(abandon_after)
    if scope is not None:
        # Not a condition of the caller's choosing: is_empty_filter looks at conditions only.
        out.scope = sql.SQL("t.user_id = {}").format(p.add("scope", scope))
    user_id = _optional_text("user_id", flt.user_id)
    thread_id = _optional_text("thread_id", flt.thread_id)
    provider_id = _optional_text("provider_id", flt.provider_id)
    name = _optional_text("name", flt.name)
    node = _optional_text("node", flt.node)
    text = _optional_text("text", flt.text)
    if user_id:
        cond.append(sql.SQL("t.user_id = {}").format(p.add("user_id", user_id)))
    if thread_id:
        cond.append(sql.SQL("t.thread_id = {}").format(p.add("thread_id", thread_id)))
    if provider_id:
        cond.append(sql.SQL("t.provider_id = {}").format(p.add("provider_id", provider_id)))
    if name:
        cond.append(sql.SQL("lower(t.name) LIKE {}").format(p.add("name", _like_prefix(name))))
    if flt.status:
        cond.append(_status_condition(flt.status, p))
    for label, value, op in (("since", flt.since, ">="), ("until", flt.until, "<")):
        if value is not None:
            if not isinstance(value, datetime):
                raise InvalidTraceData(f"{label} must be a datetime, got {type(value).__name__}")
            cond.append(sql.SQL("t.updated_at {} {}").format(sql.SQL(op), p.add(label, value)))
    if node:
        cond.append(sql.SQL("t.nodes @> ARRAY[{}]::text[]").format(p.add("node", node)))
    out.narrowing = bool(cond)  # each condition so far excludes some traces
    if text:
        candidates = candidate_terms(text)
        if candidates is not None:
            literal = words_tsquery(candidates)
            if literal is None:
                words = sql.SQL(_PARSED_WORDS).format(query=p.add("words", candidates))
            else:
                words = sql.SQL(_LITERAL_WORDS).format(query=p.add("words", literal))
            out.search.append(sql.SQL(_CANDIDATES).format(words=words))
            out.narrowing = True
        # (a text of negations only can match every trace: it does not narrow)
        query = p.add("text", text)
        out.confirms.append(lambda tid, query=query: sql.SQL(_TEXT_CONFIRMS).format(tid=tid, query=query))
    if flt.contains is not None:
        if not isinstance(flt.contains, (dict, list)):
            raise InvalidTraceData("contains must be a JSON object or array")
        contained = to_jsonable(flt.contains)
        if isinstance(contained, list):
            cond.append(sql.SQL("FALSE"))  # entries are JSON objects: none contains an array
            out.narrowing = True
        else:
            literal = contains_tsquery(contained)
            if literal is not None:
                words = sql.SQL(_LITERAL_WORDS).format(query=p.add("keys", literal))
                out.search.append(sql.SQL(_CANDIDATES).format(words=words))
                out.narrowing = True
            # else ({} or only empty values) every trace with an entry matches
            value = p.add("contains", Jsonb(contained))
            out.confirms.append(
                lambda tid, value=value: sql.SQL(_CONTAINS_CONFIRMS).format(tid=tid, value=value)
            )
    if flt.trace_ids is not None:
        if isinstance(flt.trace_ids, (str, bytes)) or not isinstance(
            flt.trace_ids, (list, tuple, set, frozenset)
        ):
            raise InvalidTraceData("trace_ids must be a list of trace ids")
        ids = [i for i in (parse_uuid(v) for v in flt.trace_ids) if i]
        cond.append(sql.SQL("t.id = ANY({}::uuid[])").format(p.add("trace_ids", ids)))
        out.narrowing = True
    return out


def _optional_text(name: str, value: Any) -> str | None:
    """A text filter field: None or blank means "any"; anything but a string is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return require_text(name, value)


def _status_condition(status: Any, p: Params) -> sql.Composable:
    """Traces whose status, as read, is one of ``status``: "running" is a running trace heard
    from lately, "abandoned" one that has not been (see STALE)."""
    statuses = [status] if isinstance(status, str) else status
    if not isinstance(statuses, (list, tuple, set, frozenset)) or not statuses:
        raise InvalidTraceData(f"status must be one of {', '.join(STATUSES)} or a list of them")
    chosen = {require_status(s, readable=True) for s in statuses}
    parts: list[sql.Composable] = []
    stored = sorted(chosen - {"running", "abandoned"})
    if stored:
        parts.append(sql.SQL("t.status = ANY({})").format(p.add("status", stored)))
    if {"running", "abandoned"} <= chosen:
        parts.append(sql.SQL("t.status = 'running'"))
    elif "running" in chosen:
        parts.append(sql.SQL("(t.status = 'running' AND NOT {})").format(STALE))
    elif "abandoned" in chosen:
        parts.append(sql.SQL("(t.status = 'running' AND {})").format(STALE))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))


def is_empty_filter(flt: TraceFilter | None) -> bool:
    """True when ``flt`` can match every trace: it has no condition, or only ones that need
    not exclude any trace (an empty ``contains``, a text of negations only)."""
    return not compile_filter(flt).narrows


_ORDER = sql.SQL("ORDER BY t.updated_at DESC, t.id DESC")


def _union(f: FilterSQL, branch_query: Callable[[str], sql.Composable]) -> sql.Composable:
    """The branches of a query over ``f`` (see FilterSQL), joined by UNION ALL."""
    parts = [sql.SQL("({})").format(branch_query(b)) for b in f.branches]
    return sql.SQL(" UNION ALL ").join(parts)


def list_query(
    flt: TraceFilter | None,
    limit: int,
    cursor: str | None,
    scope: str | None = None,
    abandon_after: float = ABANDON_AFTER,
    offset: int = 0,
) -> tuple[sql.Composed, Params]:
    """One page (``limit + 1`` rows) of matching traces, newest first, after ``cursor``,
    skipping ``offset`` of them.

    Confirmations are applied to the ordered candidates, outside an ``OFFSET 0`` fence, so
    that only as many candidates are confirmed as the page needs rather than every candidate
    before the sort. The outer query has no ORDER BY of its own: with one, PostgreSQL would
    plan the inner query for all its rows instead of the few the LIMIT needs; a filter over
    a subquery scan keeps the subquery's order. With search candidates, the inner query
    merges its two branches (indexed, pending) in order.
    """
    f = compile_filter(flt, scope, abandon_after)
    if cursor:
        when, tid = decode_cursor(cursor)
        f.conditions.append(
            sql.SQL("(t.updated_at, t.id) < ({}, {}::uuid)").format(
                f.params.add("after_time", when), f.params.add("after_id", tid)
            )
        )
    limit_ = f.params.add("limit", limit + 1)
    offset_ = f.params.add("offset", offset)
    if not f.confirms:
        query = sql.SQL(
            "SELECT {columns} FROM automation_traces t WHERE {where} {order} LIMIT {limit} OFFSET {offset}"
        )
        return query.format(
            columns=SUMMARY, where=f.where(with_confirms=False), order=_ORDER, limit=limit_, offset=offset_
        ), f.params
    checks = sql.SQL(" AND ").join(confirm(sql.SQL("c.uid")) for confirm in f.confirms)

    # each branch of a union must hold the skipped rows too
    branch_limit = f.params.add("branch_limit", limit + 1 + offset)
    zero = f.params.add("no_offset", 0)

    def branch(b: str, rows: sql.Composable = branch_limit, skip: sql.Composable = zero) -> sql.Composable:
        # each branch confirms its own ordered candidates up to the page size, so that each
        # is planned for the few rows it needs (a LIMIT does not reach into UNION branches)
        return sql.SQL(
            "SELECT {names}, c.uid FROM (SELECT {columns}, t.id AS uid FROM automation_traces t"
            " WHERE {where} {order} OFFSET 0) c WHERE {checks} LIMIT {limit} OFFSET {offset}"
        ).format(
            names=SUMMARY_NAMES,
            columns=SUMMARY,
            where=f.where(b, with_confirms=False),
            order=_ORDER,
            checks=checks,
            limit=rows,
            offset=skip,
        )

    if f.branches == ["all"]:
        only = branch("all", limit_, offset_)
        return sql.SQL("SELECT {names} FROM ({b}) p").format(names=SUMMARY_NAMES, b=only), f.params
    query = sql.SQL(
        "SELECT {names} FROM ({union}) p ORDER BY p.updated_at DESC, p.uid DESC LIMIT {limit} OFFSET {offset}"
    )
    return query.format(names=SUMMARY_NAMES, union=_union(f, branch), limit=limit_, offset=offset_), f.params


def _delete_batch(f: FilterSQL, batch: int) -> sql.Composed:
    # ARRAY(...) is computed once, then each id is found through the primary key; with
    # IN (...) the planner may hash the batch and scan the whole table for every batch.
    batch_ = f.params.add("batch", batch)

    def branch(b: str) -> sql.Composable:
        return sql.SQL("SELECT t.id FROM automation_traces t WHERE {where} LIMIT {batch}").format(
            where=f.where(b), batch=batch_
        )

    return sql.SQL("DELETE FROM automation_traces WHERE id = ANY(ARRAY({ids}))").format(ids=_union(f, branch))


def _count(f: FilterSQL) -> sql.Composed:
    def branch(b: str) -> sql.Composable:
        return sql.SQL("SELECT 1 FROM automation_traces t WHERE {}").format(f.where(b))

    return sql.SQL("SELECT count(*) AS n FROM ({union}) x").format(union=_union(f, branch))


def prune_query(
    flt: TraceFilter | None,
    older_than: timedelta,
    keep_last: int,
    batch: int,
    dry_run: bool,
    scope: str | None = None,
    abandon_after: float = ABANDON_AFTER,
) -> tuple[sql.Composed, Params]:
    """Retention: delete (or with ``dry_run`` count) up to ``batch`` traces not updated for
    ``older_than`` that match ``flt``, keeping each user's ``keep_last`` most recent."""
    f = compile_filter(flt, scope, abandon_after)
    f.conditions.append(sql.SQL("t.updated_at < now() - {}").format(f.params.add("older_than", older_than)))
    if keep_last:
        keep = f.params.add("keep", keep_last)
        f.conditions.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM (SELECT u.updated_at, u.id FROM automation_traces u"
                " WHERE u.user_id = t.user_id ORDER BY u.updated_at DESC, u.id DESC OFFSET {keep} - 1 LIMIT 1) k"
                " WHERE (t.updated_at, t.id) < (k.updated_at, k.id))"
            ).format(keep=keep)
        )
    return (_count(f) if dry_run else _delete_batch(f, batch)), f.params


def count_query(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    f = compile_filter(flt, scope, abandon_after)
    return _count(f), f.params


def delete_batch_query(
    flt: TraceFilter | None, batch: int, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    """Delete up to ``batch`` matching traces of each branch (entries go by cascade)."""
    f = compile_filter(flt, scope, abandon_after)
    return _delete_batch(f, batch), f.params


def count_estimate_query(
    flt: TraceFilter | None, scope: str | None = None, abandon_after: float = ABANDON_AFTER
) -> tuple[sql.Composed, Params]:
    """EXPLAIN of the matching rows: the planner's estimate of a count, in about a millisecond.

    For a dashboard's "about N" when the exact count would take too long; read the figure
    with :func:`estimate_from_plan`.
    """
    f = compile_filter(flt, scope, abandon_after)
    # Only the index conditions: the planner cannot judge how many candidates a confirmation
    # keeps, while the candidates' count is what its statistics describe.
    query = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM automation_traces t WHERE {}")
    return query.format(f.where(with_confirms=False)), f.params


def estimate_from_plan(row: dict[str, Any] | tuple[Any, ...] | None) -> int:
    """The estimated row count from the result of :func:`count_estimate_query`."""
    if row is None:
        return 0
    plan = row["QUERY PLAN"] if isinstance(row, dict) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def page_from_rows(rows: list[dict[str, Any]], limit: int) -> TracePage:
    """A TracePage from ``limit + 1`` fetched rows: the extra row says a next page exists."""
    items = [summary_from_row(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return TracePage(items, nxt)


# -- API keys (tracedb/keys.py) ---------------------------------------------------------

_KEY_COLUMNS = sql.SQL("id::text AS id, user_id, admin, label, created_at, last_used_at, revoked_at")


def _keys(text: str) -> sql.Composed:
    return sql.SQL(text).format(columns=_KEY_COLUMNS)


INSERT_KEY = _keys(
    """
INSERT INTO tracedb_api_keys (id, user_id, admin, label, secret_hash)
VALUES (%(id)s, %(user_id)s, %(admin)s, %(label)s, %(secret_hash)s)
RETURNING {columns}
"""
)
LIST_KEYS = _keys(
    """
SELECT {columns} FROM tracedb_api_keys
 WHERE (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
 ORDER BY user_id, created_at, id
"""
)
REVOKE_KEY = """
UPDATE tracedb_api_keys SET revoked_at = now()
 WHERE id = %(id)s AND revoked_at IS NULL AND (%(scope)s::text IS NULL OR user_id = %(scope)s)
"""
FIND_KEY = _keys(
    "SELECT {columns} FROM tracedb_api_keys WHERE secret_hash = %(secret_hash)s AND revoked_at IS NULL"
)
# last_used_at is a hint for `api-key list`, not an audit log: written at most once a minute
# per key, so that a busy key does not turn every request into a write.
TOUCH_KEY = """
UPDATE tracedb_api_keys SET last_used_at = now()
 WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
"""
ANY_ACTIVE_KEY = "SELECT EXISTS (SELECT 1 FROM tracedb_api_keys WHERE revoked_at IS NULL) AS found"
