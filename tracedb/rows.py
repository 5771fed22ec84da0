"""Rows of the database as the data classes callers get, and keyset cursors."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from .checks import parse_uuid
from .errors import InvalidTraceData
from .models import Trace, TracePage, TraceSummary


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


def page_from_rows(rows: list[dict[str, Any]], limit: int) -> TracePage:
    """A TracePage from ``limit + 1`` fetched rows: the extra row says a next page exists."""
    items = [summary_from_row(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return TracePage(items, nxt)
