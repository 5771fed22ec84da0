"""Helpers shared by the benchmarks: a throwaway database, percentiles, realistic entries."""

from __future__ import annotations

import json
import os
import random
import statistics
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tracedb import queries as q

DEFAULT_ADMIN_URL = "postgresql:///postgres"

# A small vocabulary with a long tail, so text search has common, middling and rare words.
WORDS = (
    "search fetch weather invoice customer order refund shipping delay payment account "
    "summary report draft email calendar meeting schedule budget forecast revenue "
    "contract renewal ticket support escalation database query timeout retry error "
    "success planner model tools summarise answer question context document chunk "
    "embedding vector index latency token prompt completion function argument result "
    "london paris berlin tokyo madrid oslo lisbon vienna prague dublin"
).split()
NODES = ("planner", "model", "tools", "summarise")
TOOLS = ("web_search", "sql_query", "send_email", "calendar_lookup", "calculator", "fetch_url")


def admin_url(url: str | None) -> str:
    """The server to benchmark on: ``url``, else ``TRACEDB_URL``, else the local socket."""
    return url or os.environ.get("TRACEDB_URL") or DEFAULT_ADMIN_URL


@contextmanager
def temp_database(server_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """Create a database of our own on ``server_url``; yield its URL; drop it afterwards."""
    name = f"tracedb_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server_url, dbname=name)
    try:
        yield url
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``values`` by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# Entries of the given traces not indexed for search yet (indexing runs behind the writes),
# counting those quick appends stored that the trace row does not count yet.
UNINDEXED = sql.SQL(
    "SELECT coalesce(sum({entries} - t.indexed_count), 0) AS n FROM automation_traces t WHERE t.id = ANY(%s)"
).format(entries=sql.SQL(q.LIVE["entry_count"]))


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def sentence(rng: random.Random, n: int) -> str:
    """``n`` words drawn with a skewed distribution (low indexes are common)."""
    size = len(WORDS)
    return " ".join(WORDS[min(int(rng.paretovariate(1.2)) - 1, size - 1)] for _ in range(n))


def make_entry(
    i: int, rng: random.Random, *, size: int = 400, start: datetime | None = None
) -> dict[str, Any]:
    """One realistic trace entry of about ``size`` bytes of JSON."""
    node = NODES[i % len(NODES)]
    began = (start or datetime(2026, 1, 1, tzinfo=UTC)) + timedelta(milliseconds=250 * i)
    entry: dict[str, Any] = {
        "node": node,
        "kind": "tool" if node == "tools" else "llm" if node == "model" else "step",
        "name": f"{node}-{i}",
        "status": "ok",
        "started_at": began.isoformat(),
        "ended_at": (began + timedelta(milliseconds=200)).isoformat(),
        "duration_ms": 200.0,
        "input": {"step": i, "tool": TOOLS[i % len(TOOLS)]},
        "output": "",
    }
    base = len(json.dumps(entry))
    words: list[str] = []
    while base + len(" ".join(words)) < size - 8:
        words.append(sentence(rng, 1))
    entry["output"] = " ".join(words)
    return entry
