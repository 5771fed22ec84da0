"""Export traces as JSON, JSONL or CSV, streaming page by page so memory stays bounded."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from .models import Trace, TraceFilter

FORMATS = ("json", "jsonl", "csv")
CSV_COLUMNS = (
    "trace_id",
    "trace_name",
    "user_id",
    "thread_id",
    "trace_status",
    "seq",
    "node",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "data",
)


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """A trace as a JSON-ready dict: header fields and ``trace_data``."""
    return trace.to_dict()


def iter_traces(db: Any, flt: TraceFilter | None, page_size: int = 200) -> Iterator[Trace]:
    """Every matching trace with its entries, newest first, one page in memory at a time."""
    cursor = None
    while True:
        page = db.list_traces(flt, limit=page_size, cursor=cursor)
        for summary in page.items:
            trace = db.load_trace_by_id(summary.id)
            if trace is not None:
                yield trace
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def write_traces(
    db: Any,
    flt: TraceFilter | None,
    fmt: str,
    out: IO[str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write matching traces to ``out`` in ``fmt``; return how many.

    CSV has one row per entry, with the trace's columns repeated and the entry as JSON.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    n = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(CSV_COLUMNS)
    if fmt == "json":
        out.write("[")
    for trace in iter_traces(db, flt):
        if fmt == "json":
            out.write(("," if n else "") + "\n" + json.dumps(trace_to_dict(trace), ensure_ascii=False))
        elif fmt == "jsonl":
            out.write(json.dumps(trace_to_dict(trace), ensure_ascii=False) + "\n")
        else:
            assert writer is not None
            for row in entry_rows(trace):
                writer.writerow(row)
        n += 1
        if progress:
            progress(n)
    if fmt == "json":
        out.write("\n]\n")
    return n


def entry_rows(trace: Trace) -> Iterator[list[Any]]:
    """CSV rows of one trace, one per entry."""
    for seq, entry in enumerate(trace.trace_data):
        yield [
            trace.id,
            trace.name or "",
            trace.user_id,
            trace.thread_id,
            trace.status,
            seq,
            entry.get("node", ""),
            entry.get("kind", ""),
            entry.get("name", ""),
            entry.get("status", ""),
            entry.get("started_at", ""),
            entry.get("ended_at", ""),
            entry.get("duration_ms", ""),
            json.dumps(entry, ensure_ascii=False),
        ]
