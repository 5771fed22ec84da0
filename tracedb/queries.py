"""Every SQL statement tracedb runs, and the helpers that build them from a TraceFilter.

Shared by the synchronous and the asynchronous store, so both run the same SQL.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
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


def _like_prefix(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filter_clause(flt: TraceFilter | None) -> tuple[sql.Composable, list[Any]]:
    """WHERE conditions (without the keyword) and their parameters for ``flt``.

    Raises:
        InvalidTraceData: a field has a value of the wrong type.
    """
    flt = flt or TraceFilter()
    conds: list[str] = []
    params: list[Any] = []
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
        conds.append(
            "t.id IN (SELECT e.trace_id FROM automation_trace_entries e WHERE " + TEXT_MATCH + ")"
        )
        params.append(require_text("text", flt.text))
    if flt.contains is not None:
        if not isinstance(flt.contains, (dict, list)):
            raise InvalidTraceData("contains must be a JSON object or array")
        conds.append(
            "t.id IN (SELECT e.trace_id FROM automation_trace_entries e WHERE e.data @> %s)"
        )
        params.append(Jsonb(to_jsonable(flt.contains)))
    if flt.trace_ids is not None:
        ids = [parse_uuid(v) for v in flt.trace_ids]
        conds.append("t.id = ANY(%s::uuid[])")
        params.append([i for i in ids if i])
    if not conds:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ".join(conds)), params


def is_empty_filter(flt: TraceFilter | None) -> bool:
    """True when ``flt`` matches every trace (each condition brings one parameter)."""
    _, params = filter_clause(flt)
    return not params


def list_query(flt: TraceFilter | None, limit: int, cursor: str | None) -> tuple[sql.Composed, list[Any]]:
    where, params = filter_clause(flt)
    keyset = sql.SQL("")
    if cursor:
        when, tid = decode_cursor(cursor)
        keyset = sql.SQL(" AND (t.updated_at, t.id) < (%s, %s::uuid)")
        params = params + [when, tid]
    query = sql.SQL(
        "SELECT " + SUMMARY_COLUMNS + " FROM automation_traces t WHERE {where}{keyset}"
        " ORDER BY t.updated_at DESC, t.id DESC LIMIT %s"
    ).format(where=where, keyset=keyset)
    return query, params + [limit + 1]


def count_query(flt: TraceFilter | None) -> tuple[sql.Composed, list[Any]]:
    where, params = filter_clause(flt)
    return sql.SQL("SELECT count(*) AS n FROM automation_traces t WHERE {where}").format(where=where), params


def delete_batch_query(flt: TraceFilter | None, batch: int) -> tuple[sql.Composed, list[Any]]:
    """Delete up to ``batch`` matching traces (entries go by cascade); returns their ids."""
    where, params = filter_clause(flt)
    query = sql.SQL(
        "DELETE FROM automation_traces WHERE id IN ("
        "SELECT t.id FROM automation_traces t WHERE {where} LIMIT %s)"
        " RETURNING id"
    ).format(where=where)
    return query, params + [batch]


def page_from_rows(rows: list[dict[str, Any]], limit: int) -> TracePage:
    """A TracePage from ``limit + 1`` fetched rows: the extra row says a next page exists."""
    items = [summary_from_row(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return TracePage(items, nxt)
