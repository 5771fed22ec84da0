"""Every SQL statement tracedb runs, and the helpers that build them from a TraceFilter.

Shared by the synchronous and the asynchronous store, so both run the same SQL.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from .errors import InvalidTraceData
from .jsonsafe import to_jsonable
from .models import STATUSES, Trace, TraceFilter, TracePage, TraceSummary

SUMMARY_COLUMNS = """
    t.id::text AS id, t.user_id, t.provider_id, t.thread_id, t.name, t.status,
    t.entry_count, t.error_count, t.nodes, t.tags, t.metadata,
    t.first_started_at, t.last_ended_at, t.total_duration_ms, t.created_at, t.updated_at
"""

APPEND = """
SELECT trace_id::text AS trace_id, first_seq, entry_count, written, in_sync, created
  FROM tracedb_append(%(trace_id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s,
                      %(entries)s::jsonb, %(offset)s, %(status)s, %(new_id)s)
"""

INSERT_TRACE = """
INSERT INTO automation_traces (id, user_id, provider_id, thread_id, name, status, metadata)
VALUES (%(id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s, %(status)s, %(metadata)s)
"""

LOAD_BY_ID = f"""
SELECT {SUMMARY_COLUMNS}, tracedb_trace_data(t.id) AS trace_data
  FROM automation_traces t WHERE t.id = %s
"""

SUMMARY_BY_ID = f"SELECT {SUMMARY_COLUMNS} FROM automation_traces t WHERE t.id = %s"

LOAD_BY_THREAD = f"""
SELECT {SUMMARY_COLUMNS}, tracedb_trace_data(t.id) AS trace_data
  FROM automation_traces t WHERE t.thread_id = %s
 ORDER BY t.created_at DESC, t.id DESC LIMIT 1
"""

USER_TRACES = f"""
SELECT {SUMMARY_COLUMNS} FROM automation_traces t WHERE t.user_id = %s
 ORDER BY t.updated_at DESC, t.id DESC LIMIT %s OFFSET %s
"""

LOCK_TRACE = "SELECT id FROM automation_traces WHERE id = %s FOR UPDATE"
RESET_ENTRIES = """
UPDATE automation_traces SET entry_count = 0, error_count = 0, nodes = '{}',
       first_started_at = NULL, last_ended_at = NULL, total_duration_ms = 0
 WHERE id = %s
"""
DELETE_ENTRIES = "DELETE FROM automation_trace_entries WHERE trace_id = %s"
RENAME = "UPDATE automation_traces SET name = %s WHERE id = %s"
SET_STATUS = "UPDATE automation_traces SET status = %s WHERE id = %s"
MERGE_METADATA = "UPDATE automation_traces SET metadata = metadata || %s WHERE id = %s"
DELETE_ONE = "DELETE FROM automation_traces WHERE id = %s"

ENTRIES = """
SELECT seq, node, kind, name, status, started_at, ended_at, duration_ms, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq > %(after_seq)s
 ORDER BY seq LIMIT %(limit)s
"""

THREAD_TRACE_ID = """
SELECT id::text AS id, entry_count FROM automation_traces WHERE thread_id = %s
 ORDER BY created_at DESC, id DESC LIMIT 1
"""

MAX_LIMIT = 10_000


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
    if len(value) > 1000:
        raise InvalidTraceData(f"{name} is longer than 1,000 characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTraceData(f"{name} is not valid Unicode text: {exc}") from exc
    return value


def require_status(status: Any) -> str:
    if status not in STATUSES:
        raise InvalidTraceData(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    return status


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


def summary_from_row(row: dict[str, Any]) -> TraceSummary:
    fields = {k: v for k, v in row.items() if k != "trace_data"}
    fields["nodes"] = list(fields.get("nodes") or [])
    fields["tags"] = list(fields.get("tags") or [])
    return TraceSummary(**fields)


def trace_from_row(row: dict[str, Any]) -> Trace:
    fields = dict(row)
    fields["nodes"] = list(fields.get("nodes") or [])
    fields["tags"] = list(fields.get("tags") or [])
    fields["trace_data"] = list(fields.get("trace_data") or [])
    return Trace(**fields)


# -- keyset cursors --------------------------------------------------------------------


def encode_cursor(updated_at: datetime, trace_id: str) -> str:
    raw = f"{updated_at.isoformat()}|{trace_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, trace_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        when = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidTraceData(f"cursor {cursor!r} is not one this store issued") from exc
    tid = parse_uuid(trace_id)
    if tid is None or when.tzinfo is None:
        raise InvalidTraceData(f"cursor {cursor!r} is not one this store issued")
    return when, tid


# -- filters ----------------------------------------------------------------------------

TEXT_MATCH = (
    "jsonb_to_tsvector('simple'::regconfig, e.data, '[\"string\"]'::jsonb)"
    " @@ websearch_to_tsquery('simple'::regconfig, %s)"
)

# Text search and containment go through automation_trace_search (sql/003): per block of 32
# entries of a trace, the distinct words of its strings and "=<hash>" lexemes of its
# (key, string/boolean value) pairs. A match there only makes a trace a candidate; each
# candidate is confirmed against its entries, so the meaning stays "an entry matches".
# The confirmation is a scalar subquery so that it stays a per-row check of the candidates,
# never a join over every entry. Blocks that could not be indexed whole (complete = false)
# are candidates for every query.
# The words have no positions, against which a phrase never matches: the candidate query
# turns phrases ("a b", or a_b, which parses as one) into "a & b".
TRACE_WORDS = (
    "t.id IN (SELECT s.trace_id FROM automation_trace_search s WHERE s.words @@ regexp_replace("
    "websearch_to_tsquery('simple'::regconfig, %s)::text, '<[0-9]*-?>', '&', 'g')::tsquery"
    " OR NOT s.complete)"
)
# With the query as tsquery text the planner sees the lexemes' frequencies and nothing is
# parsed per row; used where the parser and the 'simple' dictionary surely agree with it.
TRACE_WORDS_LITERAL = (
    "t.id IN (SELECT s.trace_id FROM automation_trace_search s"
    " WHERE s.words @@ %s::tsquery OR NOT s.complete)"
)
TEXT_CONFIRMS = (
    "(SELECT TRUE FROM automation_trace_entries e WHERE e.trace_id = {tid} AND ("
    + TEXT_MATCH
    + ") IS TRUE LIMIT 1)"
)
# "(...) IS TRUE" keeps the entries' GIN index out of a confirmation: it must read the few
# entries of one trace through the primary key, never every matching entry of the table.
CONTAINS_CONFIRMS = (
    "(SELECT TRUE FROM automation_trace_entries e WHERE e.trace_id = {tid}"
    " AND (e.data @> %s) IS TRUE LIMIT 1)"
)
_ASCII_WORD = re.compile(r"^[A-Za-z0-9]+$")
_TERM = re.compile(r'-?"[^"]*"?|\S+')


def words_tsquery(candidates: str) -> str | None:
    """``candidates`` as tsquery text when it is only ASCII words and quoted phrases of them
    (all to be found: ``'a' & 'b'``); None otherwise."""
    words = candidates.replace('"', " ").split()
    if not words or not all(_ASCII_WORD.match(w) for w in words) or any(w.lower() == "or" for w in words):
        return None
    return " & ".join(f"'{w.lower()}'" for w in words)


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
    return " & ".join(f"'{k}'" for k in keys)


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


def filter_clause(flt: TraceFilter | None) -> tuple[sql.Composable, list[Any]]:
    """WHERE conditions (without the keyword) and their parameters for ``flt``.

    Raises:
        InvalidTraceData: a field has a value of the wrong type.
    """
    conds, params, confirm, confirm_params = filter_parts(flt)
    conds = conds + [c.format(tid="t.id") for c in confirm]
    if not conds:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ".join(conds)), params + confirm_params


def filter_parts(flt: TraceFilter | None) -> tuple[list[str], list[Any], list[str], list[Any]]:
    """The conditions of ``flt`` in two groups, each with its parameters: those indexes can
    answer, and confirmations to check per candidate trace (``{tid}`` stands for its id).

    Raises:
        InvalidTraceData: a field has a value of the wrong type.
    """
    flt = flt or TraceFilter()
    conds: list[str] = []
    params: list[Any] = []
    confirm: list[str] = []
    confirm_params: list[Any] = []
    if flt.user_id:
        conds.append("t.user_id = %s")
        params.append(require_text("user_id", flt.user_id))
    if flt.thread_id:
        conds.append("t.thread_id = %s")
        params.append(require_text("thread_id", flt.thread_id))
    if flt.name:
        conds.append("lower(t.name) LIKE %s")
        params.append(_like_prefix(require_text("name", flt.name) or ""))
    if flt.status:
        statuses = [flt.status] if isinstance(flt.status, str) else list(flt.status)
        for status in statuses:
            require_status(status)
        conds.append("t.status = ANY(%s)")
        params.append(statuses)
    for label, value, op in (("since", flt.since, ">="), ("until", flt.until, "<")):
        if value is not None:
            if not isinstance(value, datetime):
                raise InvalidTraceData(f"{label} must be a datetime, got {type(value).__name__}")
            conds.append(f"t.updated_at {op} %s")
            params.append(value)
    if flt.node:
        conds.append("t.nodes @> ARRAY[%s]::text[]")
        params.append(require_text("node", flt.node))
    if flt.text and flt.text.strip():
        text = require_text("text", flt.text) or ""
        candidates = candidate_terms(text)
        if candidates is not None:
            literal = words_tsquery(candidates)
            template = TRACE_WORDS if literal is None else TRACE_WORDS_LITERAL
            conds.append(template)
            params.append(candidates if literal is None else literal)
        confirm.append(TEXT_CONFIRMS)
        confirm_params.append(text)
    if flt.contains is not None:
        if not isinstance(flt.contains, (dict, list)):
            raise InvalidTraceData("contains must be a JSON object or array")
        contained = to_jsonable(flt.contains)
        if isinstance(contained, list):
            conds.append("FALSE")  # entries are JSON objects: none contains an array
        else:
            literal = contains_tsquery(contained)
            if literal is not None:  # else ({} or only empty values) every trace is a candidate
                conds.append(TRACE_WORDS_LITERAL)
                params.append(literal)
            confirm.append(CONTAINS_CONFIRMS)
            confirm_params.append(Jsonb(contained))
    if flt.trace_ids is not None:
        ids = [parse_uuid(v) for v in flt.trace_ids]
        conds.append("t.id = ANY(%s::uuid[])")
        params.append([i for i in ids if i])
    return conds, params, confirm, confirm_params


def is_empty_filter(flt: TraceFilter | None) -> bool:
    """True when ``flt`` matches every trace (it has no condition)."""
    conds, _, confirm, _ = filter_parts(flt)
    return not conds and not confirm


SUMMARY_NAMES = ", ".join(
    part.strip().split(" AS ")[-1].removeprefix("t.") for part in SUMMARY_COLUMNS.split(",")
)


def list_query(flt: TraceFilter | None, limit: int, cursor: str | None) -> tuple[sql.Composed, list[Any]]:
    """One page (``limit + 1`` rows) of matching traces, newest first, after ``cursor``.

    Confirmations (see :func:`filter_parts`) are applied to the ordered candidates, outside
    an ``OFFSET 0`` fence, so that only as many candidates are confirmed as the page needs
    rather than every candidate before the sort. The outer query has no ORDER BY of its own:
    with one, PostgreSQL would plan the inner query for all its rows instead of the few the
    LIMIT needs; a filter over a subquery scan keeps the subquery's order.
    """
    conds, params, confirm, confirm_params = filter_parts(flt)
    if cursor:
        when, tid = decode_cursor(cursor)
        conds = conds + ["(t.updated_at, t.id) < (%s, %s::uuid)"]
        params = params + [when, tid]
    where = " AND ".join(conds) or "TRUE"
    if not confirm:
        query = sql.SQL(
            "SELECT "
            + SUMMARY_COLUMNS
            + " FROM automation_traces t WHERE "
            + where
            + " ORDER BY t.updated_at DESC, t.id DESC LIMIT %s"
        )
        return query, params + [limit + 1]
    checks = " AND ".join(c.format(tid="c.uid") for c in confirm)
    query = sql.SQL(
        "SELECT " + SUMMARY_NAMES + " FROM (SELECT " + SUMMARY_COLUMNS + ", t.id AS uid"
        " FROM automation_traces t WHERE " + where + " ORDER BY t.updated_at DESC, t.id DESC OFFSET 0) c"
        " WHERE " + checks + " LIMIT %s"
    )
    return query, params + confirm_params + [limit + 1]


def count_query(flt: TraceFilter | None) -> tuple[sql.Composed, list[Any]]:
    where, params = filter_clause(flt)
    return sql.SQL("SELECT count(*) AS n FROM automation_traces t WHERE {where}").format(where=where), params


def delete_batch_query(flt: TraceFilter | None, batch: int) -> tuple[sql.Composed, list[Any]]:
    """Delete up to ``batch`` matching traces (entries go by cascade); returns their ids."""
    where, params = filter_clause(flt)
    # ARRAY(...) is computed once, then each id is found through the primary key; with
    # IN (...) the planner may hash the batch and scan the whole table for every batch.
    query = sql.SQL(
        "DELETE FROM automation_traces WHERE id = ANY(ARRAY("
        "SELECT t.id FROM automation_traces t WHERE {where} LIMIT %s))"
        " RETURNING id"
    ).format(where=where)
    return query, params + [batch]


def count_estimate_query(flt: TraceFilter | None) -> tuple[sql.Composed, list[Any]]:
    """EXPLAIN of the matching rows: the planner's estimate of a count, in about a millisecond.

    For a dashboard's "about N" when the exact count would take too long; read the figure
    with :func:`estimate_from_plan`.
    """
    conds, params, _, _ = filter_parts(flt)
    # Only the index conditions: the planner cannot judge how many candidates a confirmation
    # keeps, while the candidates' count is what its statistics describe.
    where = " AND ".join(conds) or "TRUE"
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM automation_traces t WHERE " + where), params


def estimate_from_plan(row: dict[str, Any] | tuple[Any, ...] | None) -> int:
    """The estimated row count from the result of :func:`count_estimate_query`."""
    if row is None:
        return 0
    plan = row["QUERY PLAN"] if isinstance(row, dict) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])


# Run inside a transaction before count_query to bound it; QueryCanceled means "too slow".
COUNT_TIME_LIMIT = "SELECT set_config('statement_timeout', %s, true)"


def page_from_rows(rows: list[dict[str, Any]], limit: int) -> TracePage:
    """A TracePage from ``limit + 1`` fetched rows: the extra row says a next page exists."""
    items = [summary_from_row(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return TracePage(items, nxt)
