"""Per-event write paths: where one entry per transaction spends its time, next to a raw
single-row INSERT measured in the same run.

Each call writes one entry of about 400 B in a transaction of its own (autocommit); the
paths run interleaved, one call of each in turn, each to a trace of its own, so that load
from elsewhere on the machine hits them alike. The tables are analyzed after the first 50
calls: plans made while they are empty can read a whole table later.

On a bare connection:

- ``raw``: a single-row INSERT into a plain table with the entry columns (the ceiling).
- ``function``: ``tracedb_append`` with one entry, the general write (an UPDATE of the trace
  row with its new counts, then the INSERT of the entry).
- ``insert``: the entry's INSERT alone, its ``seq`` given by the client.
- ``quick``: the quick append (``queries.QUICK_APPEND``, sql/025): one INSERT ... SELECT
  that locks the trace row FOR SHARE, checks owner, epoch and that its ``seq`` follows the
  trace's last entry, and leaves the row's counts to be folded in later.

Through the store's own path (the entry converted and checked, the pool):

- ``store_append``: ``AutomationTraceDB.append_entries([entry], trace_id=...)``, which sends
  the quick append (and ``tracedb_append`` when it writes nothing).
- ``store_quick``: the ``quick`` statement alone, sent through the same pool.

Run: ``python -m bench.write_paths [--url URL] [--calls 3000] [--runs 3] [--json]``. The
benchmark creates a database of its own for each run and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

if not __package__:  # run as ``python bench/write_paths.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_url, make_entry, median, temp_database  # noqa: E402
from bench.ingest import RAW_TABLE, raw_insert  # noqa: E402
from tracedb import AutomationTraceDB  # noqa: E402
from tracedb import queries as q  # noqa: E402
from tracedb.core import Statement, _append_params  # noqa: E402
from tracedb.jsonsafe import PreparedEntries, check_trace_data, prepare_entries  # noqa: E402
from tracedb.store import execute  # noqa: E402

_COLUMNS = (
    "(trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data,"
    " checkpoint_id, model, input_tokens, output_tokens, total_tokens, cost_usd)"
)
_VALUES = (
    "x->>'n', x->>'k', x->>'nm', x->>'s', (x->>'a')::timestamptz, (x->>'b')::timestamptz,"
    " (x->>'ms')::double precision, x->'d', x->>'c', x->>'m', (x->>'it')::integer,"
    " (x->>'ot')::integer, (x->>'tt')::integer, (x->>'usd')::double precision"
)
INSERT = (
    f"INSERT INTO automation_trace_entries {_COLUMNS} SELECT %(t)s, %(s)s, {_VALUES}"
    " FROM (SELECT %(p)s::jsonb -> 0 AS x) j"
)
PATHS = ("raw", "function", "insert", "quick", "store_append", "store_quick")
ANALYZE_AFTER = 50


def one_run(url: str, calls: int, seed: int = 1) -> dict[str, list[float]]:
    """Latencies of each path over ``calls`` interleaved calls, on a database of its own."""
    rng = random.Random(seed)
    entries = [make_entry(i, rng) for i in range(calls)]
    lat: dict[str, list[float]] = {p: [] for p in PATHS}
    with temp_database(url, "paths") as db_url, AutomationTraceDB(db_url) as db:
        ids = {p: db.append_entries([], thread_id=p, user_id="bench").trace_id for p in PATHS}
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            conn.execute(RAW_TABLE)
            raw_id = uuid.uuid4()

            def payload(entry: dict[str, Any]) -> str:
                return prepare_entries([entry]).payload()

            def quick(path: str, i: int, prepared: PreparedEntries, run: Callable[[Statement], Any]) -> None:
                """The quick append of entry ``i``; when it writes nothing (the row is due for
                its once-a-second update, or not pending), the general write, as the store
                does."""
                st = db._quick(ids[path], prepared, i)
                row = run(st) if st is not None else None
                if row is None:
                    params = _append_params(entries=prepared.payload(), trace_id=ids[path])
                    row = run(Statement(q.APPEND, params, fetch="one"))
                db._wrote(row)

            def bare(st: Statement) -> Any:
                return execute(conn, st)

            steps: dict[str, Callable[[int, dict[str, Any]], Any]] = {
                "raw": lambda i, e: raw_insert(conn, raw_id, i, e),
                "function": lambda i, e: conn.execute(
                    q.APPEND, _append_params(entries=payload(e), trace_id=uuid.UUID(ids["function"]))
                ).fetchone(),
                "insert": lambda i, e: conn.execute(
                    INSERT, {"t": uuid.UUID(ids["insert"]), "s": i, "p": payload(e)}
                ),
                "quick": lambda i, e: quick("quick", i, prepare_entries([e]), bare),
                "store_append": lambda i, e: db.append_entries([e], trace_id=ids["store_append"]),
                "store_quick": lambda i, e: quick(
                    "store_quick", i, db._prepare(check_trace_data([e])), db._statement
                ),
            }
            for i, entry in enumerate(entries):
                if i == ANALYZE_AFTER:
                    conn.execute("ANALYZE automation_trace_entries")
                    conn.execute("ANALYZE automation_traces")
                for path, step in steps.items():
                    t0 = time.perf_counter()
                    step(i, entry)
                    lat[path].append(time.perf_counter() - t0)
            counts = conn.execute(
                "SELECT t.id::text AS id, count(e.seq) AS n FROM automation_traces t"
                " LEFT JOIN automation_trace_entries e ON e.trace_id = t.id GROUP BY t.id"
            ).fetchall()
    stored = {row["id"]: row["n"] for row in counts}
    for path in PATHS[1:]:
        if stored.get(ids[path]) != calls:
            raise AssertionError(f"{path}: {stored.get(ids[path])} entries stored of {calls}")
    return lat


def fractions(lat: dict[str, list[float]]) -> dict[str, float]:
    """Each path's rate as a fraction of the raw INSERT's, in the same run."""
    base = sum(lat["raw"])
    return {p: round(base / sum(v), 3) for p, v in lat.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="server URL (default TRACEDB_URL, else the local socket)")
    parser.add_argument("--calls", type=int, default=3000, help="calls of each path per run")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh database")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick check")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    calls, runs = (ANALYZE_AFTER + 10, 1) if args.smoke else (args.calls, args.runs)
    url = admin_url(args.url)
    results = []
    for run in range(runs):
        lat = one_run(url, calls, seed=run + 1)
        results.append(
            {
                "fraction_of_raw_insert": fractions(lat),
                "median_ms": {p: round(median(v) * 1000, 3) for p, v in lat.items()},
            }
        )
    if args.json:
        print(json.dumps({"calls": calls, "runs": results}))
        return 0
    print(f"{calls} calls of one entry per path and run, interleaved; fraction of a raw INSERT (median ms)")
    print(f"{'path':14s} " + " ".join(f"{'run ' + str(i + 1):>16s}" for i in range(runs)))
    for path in PATHS:
        cells = [f"{r['fraction_of_raw_insert'][path]:>7.3f} ({r['median_ms'][path]:.3f})" for r in results]
        print(f"{path:14s} " + " ".join(f"{c:>16s}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
