"""What sending reads to a replica costs per read (``TRACEDB_READ_URL``, tracedb.routing).

Times ``get_summary`` of one trace (a primary-key read, where any overhead shows most) in
four ways, each ``--reads`` times:

- ``primary``: a store without a replica.
- ``replica``: a store that only reads, with a replica (the dashboard's case): no statement
  is added, the replica's last known position is compared in Python.
- ``write+read, primary``: each read follows a write of the same store, no replica.
- ``write+read, replica``: the same with a replica: the read first learns the primary's WAL
  position and, when the replica's last known one is older, the replica's (the write's own
  time is not counted).

Needs a streaming replica of ``--url``: ``--read-url`` names its server (a database of the
same name is read there). As root on a machine with Debian's PostgreSQL 15, one is started
for the run by

    python tests/pg_support.py replica python -m bench.routing --url postgresql:///postgres --read-url {}
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from tracedb import AutomationTraceDB

from .common import admin_url, median, percentile, temp_database


def wait_for_replica(url: str, read_url: str, timeout: float = 120) -> None:
    with psycopg.connect(url) as conn:
        target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(read_url) as conn:
                if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    raise SystemExit("the replica did not catch up")


def timed_reads(db: AutomationTraceDB, trace_id: str, n: int, write_first: bool) -> list[float]:
    out = []
    for i in range(n):
        if write_first:
            db.append_entries([{"node": "bench", "i": i}], trace_id=trace_id)
        t0 = time.perf_counter()
        db.get_summary(trace_id)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="the primary (default TRACEDB_URL, else the local socket)")
    parser.add_argument("--read-url", required=True, help="the replica's server (any database name)")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    ways: dict[str, list[float]] = {}
    stats: dict[str, Any] = {}
    with temp_database(admin_url(args.url), "routing") as url:
        read_url = make_conninfo(args.read_url, dbname=psycopg.conninfo.conninfo_to_dict(url)["dbname"])
        with AutomationTraceDB(url, max_size=2) as db:
            tid = db.save_trace("bench", None, "routing", [{"node": "n", "i": i} for i in range(50)])
        wait_for_replica(url, read_url)
        with AutomationTraceDB(url, max_size=2) as db:
            timed_reads(db, tid, 100, False)  # warm up
            ways["primary"] = timed_reads(db, tid, args.reads, False)
            ways["write+read, primary"] = timed_reads(db, tid, args.reads, True)
        with AutomationTraceDB(url, max_size=2, read_url=read_url) as db:
            timed_reads(db, tid, 100, False)
            ways["replica"] = timed_reads(db, tid, args.reads, False)
            stats["replica"] = dict(db.routing.stats)
            db.routing.stats.clear()
            ways["write+read, replica"] = timed_reads(db, tid, args.reads, True)
            stats["write+read, replica"] = dict(db.routing.stats)

    result = {
        "reads": args.reads,
        "ways": {
            name: {"p50_ms": round(median(v), 3), "p95_ms": round(percentile(v, 95), 3)}
            for name, v in ways.items()
        },
        "routing": stats,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"get_summary, {args.reads} reads per way")
    print(f"{'way':<24} {'p50 ms':>8} {'p95 ms':>8}")
    for name, v in result["ways"].items():
        print(f"{name:<24} {v['p50_ms']:>8.3f} {v['p95_ms']:>8.3f}")
    for name, counts in stats.items():
        print(f"{name}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
