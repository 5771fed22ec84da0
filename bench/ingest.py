"""Ingest benchmark: the ways to persist a streamed trace, side by side on one server.

Ways, each writing ``--events`` entries of about 400 B to one thread:

- ``seed``: the seed design, one JSONB document per trace, upserted whole on every event.
- ``append``: ``AutomationTraceDB.append_entries([entry], trace_id=...)`` per event.
- ``upsert``: ``AutomationTraceDB.upsert_trace_by_thread(...)`` with the growing complete
  trace per event (the seed-compatible call).
- ``chunked``: ``append_entries`` with 10 entries per call (one round trip per chunk).
- ``raw``: a single-row INSERT per event into a plain table with the entry columns: the
  ceiling for one client writing one row per transaction.
- ``recorder``: ``TraceRecorder`` streaming a real LangGraph graph whose node appends one
  entry per step (when ``tracedb.recorder`` is available).

The light per-event ways (append, upsert, raw) run interleaved, one event of each in turn,
so that load from other processes on the machine hits them alike; the seed's way runs last,
on its own (its WAL volume would slow the others), followed by raw inserts again. A second run of ``--growth-events`` events on the
per-event path checks that the cost per event stays flat as the trace grows, and
``--upsert-events`` seed-style upserts check the same for ``upsert_trace_by_thread``.
Search indexing runs behind the writes (the store's indexer, about once a second): the
bench prints how many entries of the append and upsert traces were not indexed yet,
sampled every 100 events, and how long after the last write all of them were. Last, with
nothing else running, it times indexing ``--events`` entries the way the indexer does (calls
of 256 entries) and prints the cost per entry next to a raw INSERT's.

Run: ``python -m bench.ingest [--url URL] [--events 2000] [--growth-events 5000] [--json]``.
The benchmark creates a database of its own on the server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import operator
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict, TypeVar

import psycopg
from psycopg.types.json import Jsonb

if not __package__:  # run as ``python bench/ingest.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import UNINDEXED, admin_url, make_entry, median, temp_database  # noqa: E402
from tracedb import AutomationTraceDB  # noqa: E402
from tracedb import queries as q  # noqa: E402
from tracedb.core import _append_params  # noqa: E402
from tracedb.indexer import CALL_ENTRIES  # noqa: E402
from tracedb.jsonsafe import prepare_entries  # noqa: E402

SEED_TABLE = """
CREATE TABLE automation_traces_seed (
    id          uuid PRIMARY KEY,
    thread_id   text UNIQUE NOT NULL,
    trace_data  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
)
"""
SEED_UPSERT = """
INSERT INTO automation_traces_seed (id, thread_id, trace_data, updated_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (thread_id) DO UPDATE SET trace_data = excluded.trace_data, updated_at = now()
"""
RAW_TABLE = """
CREATE TABLE raw_entries (
    trace_id    uuid    NOT NULL,
    seq         integer NOT NULL,
    node        text,
    kind        text,
    name        text,
    status      text,
    started_at  timestamptz,
    ended_at    timestamptz,
    duration_ms double precision,
    data        jsonb   NOT NULL,
    PRIMARY KEY (trace_id, seq)
)
"""
RAW_INSERT = """
INSERT INTO raw_entries (trace_id, seq, node, kind, name, status, started_at, ended_at,
                         duration_ms, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
CHUNK = 10
T = TypeVar("T")
EDGE = 100


@dataclass
class Way:
    """Timings of one way of persisting events."""

    name: str
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    wall: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Events written per second of time spent in this way's calls."""
        spent = self.wall or sum(self.latencies)
        return self.events / spent if spent else float("nan")

    def growth(self, edge: int = EDGE) -> float:
        """Median latency of the last ``edge`` calls over that of the first ``edge``."""
        if len(self.latencies) < 2 * edge:
            edge = max(1, len(self.latencies) // 4)
        return median(self.latencies[-edge:]) / median(self.latencies[:edge])

    def summary(self) -> dict[str, Any]:
        """Figures for the table and the JSON line."""
        edge = min(EDGE, max(1, len(self.latencies) // 4))
        return {
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "first_ms": round(median(self.latencies[:edge]) * 1000, 3),
            "last_ms": round(median(self.latencies[-edge:]) * 1000, 3),
            "growth": round(self.growth(), 2),
        }


def timed(way: Way, fn: Callable[[], T], events: int = 1) -> T:
    """Run ``fn``, record its latency against ``way``, return what it returned."""
    t0 = time.perf_counter()
    result = fn()
    way.latencies.append(time.perf_counter() - t0)
    way.events += events
    return result


def make_entries(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` entries of about 400 B each."""
    rng = random.Random(seed)
    return [make_entry(i, rng, size=400) for i in range(n)]


def raw_insert(conn: psycopg.Connection[Any], trace_id: uuid.UUID, seq: int, entry: dict[str, Any]) -> None:
    """One single-row INSERT of ``entry`` into the plain table (autocommit)."""
    conn.execute(
        RAW_INSERT,
        (
            trace_id,
            seq,
            entry["node"],
            entry["kind"],
            entry["name"],
            entry["status"],
            entry["started_at"],
            entry["ended_at"],
            entry["duration_ms"],
            Jsonb(entry),
        ),
    )


@dataclass
class IndexLag:
    """How far search indexing (behind the writes) trailed the per-event writes: the
    entries written but not indexed yet, sampled every LAG_EVERY events of the run, and the
    seconds from the last write until every entry was indexed."""

    backlog: list[int] = field(default_factory=list)
    drain_s: float = float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "backlog_median_entries": median(self.backlog) if self.backlog else None,
            "backlog_max_entries": max(self.backlog) if self.backlog else None,
            "drain_s": round(self.drain_s, 2),
        }


LAG_EVERY = 100


def drain_seconds(conn: psycopg.Connection[Any], ids: list[str], limit_s: float = 60.0) -> float:
    """Seconds until the traces ``ids`` have no entry left to index (their store's indexer at
    work); nan past ``limit_s``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if conn.execute(UNINDEXED, (ids,)).fetchone()[0] == 0:
            return time.perf_counter() - t0
        time.sleep(0.02)
    return float("nan")


def run_interleaved(
    url: str, db: AutomationTraceDB, entries: list[dict[str, Any]]
) -> tuple[dict[str, Way], IndexLag]:
    """Append, upsert and raw, one event of each in turn; then the chunked run."""
    ways = {n: Way(n) for n in ("append", "upsert", "raw", "chunked")}
    lag = IndexLag()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        raw_id = uuid.uuid4()
        first = db.append_entries([], thread_id=f"append-{uuid.uuid4().hex[:8]}", user_id="bench")
        trace_id = first.trace_id
        up_thread = f"upsert-{uuid.uuid4().hex[:8]}"
        up_id = ""
        for i, entry in enumerate(entries):
            doc = entries[: i + 1]
            timed(ways["append"], lambda entry=entry: db.append_entries([entry], trace_id=trace_id))
            up_id = timed(
                ways["upsert"], lambda doc=doc: db.upsert_trace_by_thread("bench", None, up_thread, doc)
            )
            timed(ways["raw"], lambda i=i, entry=entry: raw_insert(conn, raw_id, i, entry))
            if i % LAG_EVERY == LAG_EVERY - 1:  # outside the timed calls
                lag.backlog.append(conn.execute(UNINDEXED, ([trace_id, up_id],)).fetchone()[0])
        lag.drain_s = drain_seconds(conn, [trace_id, up_id])
    chunk_id = db.append_entries([], thread_id=f"chunk-{uuid.uuid4().hex[:8]}", user_id="bench").trace_id
    for start in range(0, len(entries), CHUNK):
        part = entries[start : start + CHUNK]
        timed(ways["chunked"], lambda part=part: db.append_entries(part, trace_id=chunk_id), len(part))
    stored = db.get_summary(trace_id)
    assert stored is not None and stored.entry_count == len(entries), "append lost entries"
    return ways, lag


def run_seed(url: str, entries: list[dict[str, Any]]) -> tuple[Way, Way]:
    """The seed's way on its own, then raw inserts again.

    Run last and not interleaved: rewriting a document of up to ~1 MB per event writes
    hundreds of MB of WAL and forces checkpoints, which would slow whatever runs beside it.
    The raw run after it shows the state the machine was left in.
    """
    seed, raw = Way("seed"), Way("raw-after")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_TABLE)
        seed_id, seed_thread = uuid.uuid4(), f"seed-{uuid.uuid4().hex[:8]}"
        for i in range(len(entries)):
            doc = entries[: i + 1]
            timed(seed, lambda doc=doc: conn.execute(SEED_UPSERT, (seed_id, seed_thread, Jsonb(doc))))
        raw_id = uuid.uuid4()
        for i, entry in enumerate(entries):
            timed(raw, lambda i=i, entry=entry: raw_insert(conn, raw_id, i, entry))
    return seed, raw


def run_index_cost(url: str, entries: list[dict[str, Any]]) -> float:
    """Milliseconds of search indexing per entry: ``entries`` appended to a trace of their
    own on a connection of this bench (no store's indexer knows it), then indexed as the
    indexer does, a call of ``CALL_ENTRIES`` at a time, with nothing else running."""
    with psycopg.connect(url, autocommit=True) as conn:
        thread = f"index-{uuid.uuid4().hex[:8]}"
        params = _append_params(entries=prepare_entries(entries).payload(), thread_id=thread, user_id="bench")
        trace_id = conn.execute(q.APPEND, params).fetchone()[0]
        call = {"ids": [trace_id], "max": CALL_ENTRIES, "live": None}
        t0 = time.perf_counter()
        while conn.execute(q.INDEX_TRACES, call).fetchall():  # still pending: call again
            pass
        return (time.perf_counter() - t0) * 1000 / len(entries)


def run_growth(db: AutomationTraceDB, entries: list[dict[str, Any]]) -> Way:
    """The per-event append path on one thread of ``len(entries)`` events."""
    way = Way("append-growth")
    trace_id = db.append_entries([], thread_id=f"growth-{uuid.uuid4().hex[:8]}", user_id="bench").trace_id
    for entry in entries:
        timed(way, lambda entry=entry: db.append_entries([entry], trace_id=trace_id))
    return way


def run_upsert_growth(db: AutomationTraceDB, entries: list[dict[str, Any]]) -> Way:
    """Seed-style upserts of a growing complete trace through ``upsert_trace_by_thread``."""
    way = Way("upsert-growth")
    thread = f"upsert-growth-{uuid.uuid4().hex[:8]}"
    for i in range(len(entries)):
        doc = entries[: i + 1]
        timed(way, lambda doc=doc: db.upsert_trace_by_thread("bench", None, thread, doc))
    return way


class _State(TypedDict):
    steps: int
    automation_trace: Annotated[list, operator.add]


def build_graph(steps: int, entries: list[dict[str, Any]]) -> Any:
    """A StateGraph whose ``work`` node loops ``steps`` times, appending one entry a step."""
    from langgraph.graph import END, START, StateGraph

    def work(state: _State) -> dict[str, Any]:
        i = state["steps"]
        return {"steps": i + 1, "automation_trace": [entries[i % len(entries)]]}

    def again(state: _State) -> str:
        return "work" if state["steps"] < steps else END

    graph = StateGraph(_State)
    graph.add_node("work", work)
    graph.add_edge(START, "work")
    graph.add_conditional_edges("work", again, ["work", END])
    return graph.compile()


def run_recorder(db: AutomationTraceDB, entries: list[dict[str, Any]]) -> Way | None:
    """TraceRecorder on a real LangGraph graph; None when the recorder is not available."""
    try:
        from tracedb.recorder import TraceRecorder
    except ImportError:
        return None
    steps = len(entries)
    graph = build_graph(steps, entries)
    bare = Way("graph-only")
    t0 = time.perf_counter()
    for _ in graph.stream(
        {"steps": 0, "automation_trace": []}, {"recursion_limit": steps + 10}, stream_mode="updates"
    ):
        pass
    bare.wall = time.perf_counter() - t0
    bare.events = steps
    way = Way("recorder")
    rec = TraceRecorder(db, user_id="bench")
    thread = f"recorder-{uuid.uuid4().hex[:8]}"
    t0 = last = time.perf_counter()
    config = {"configurable": {"thread_id": thread}, "recursion_limit": steps + 10}
    for _ in rec.stream(graph, {"steps": 0, "automation_trace": []}, config, stream_mode="updates"):
        now = time.perf_counter()
        way.latencies.append(now - last)
        last = now
    rec.flush()
    way.wall = time.perf_counter() - t0
    way.events = steps
    stored = db.load_trace_by_thread(thread)
    assert stored is not None and stored.entry_count == steps, "recorder lost entries"
    way.latencies.append(0.0)
    way.graph_only_per_s = bare.events_per_s  # type: ignore[attr-defined]
    return way


def run_writers(args: argparse.Namespace) -> int:
    """The many-writers run alone (see bench.writers)."""
    from bench import writers

    try:
        counts = [int(n) for n in args.writers.split(",") if n.strip()]
    except ValueError:
        print(f"--writers must be numbers, e.g. 1,8,32; got {args.writers!r}", file=sys.stderr)
        return 2
    seconds = 2.0 if args.smoke else args.writer_seconds
    with temp_database(admin_url(args.url), "writers") as url:
        AutomationTraceDB(url).close()  # the schema
        rows = writers.run(url, counts, seconds, args.writer_mode)
    if args.json:
        print(json.dumps({"writers": rows, "writer_seconds": seconds, "writer_mode": args.writer_mode}))
    else:
        writers.print_table(rows, seconds)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or one JSON line with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="server URL (default TRACEDB_URL, else the local socket)")
    parser.add_argument("--events", type=int, default=2000, help="events on one thread per way")
    parser.add_argument("--growth-events", type=int, default=5000, help="events of the growth run")
    parser.add_argument(
        "--upsert-events",
        type=int,
        default=3000,
        help="seed-style upserts of a growing trace for the upsert growth check",
    )
    parser.add_argument(
        "--writers",
        help="only the many-writers run, for these writer counts (comma separated, e.g. 1,8,32)",
    )
    parser.add_argument(
        "--writer-mode",
        choices=["processes", "threads"],
        default="processes",
        help="many writers as a process each, or as threads of one process sharing one store",
    )
    parser.add_argument("--writer-seconds", type=float, default=8.0, help="seconds of each many-writers run")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick check")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    if args.writers:
        return run_writers(args)
    if args.smoke:
        args.events, args.growth_events, args.upsert_events = 200, 400, 400

    entries = make_entries(max(args.events, args.growth_events, args.upsert_events))
    with temp_database(admin_url(args.url), "ingest") as url:
        with AutomationTraceDB(url, max_size=2) as db:
            ways, lag = run_interleaved(url, db, entries[: args.events])
            growth = run_growth(db, entries[: args.growth_events])
            upsert_growth = run_upsert_growth(db, entries[: args.upsert_events])
            recorder = run_recorder(db, entries[: args.events])
            ways["seed"], ways["raw-after"] = run_seed(url, entries[: args.events])
        index_ms = run_index_cost(url, entries[: args.events])

    raw = ways["raw"].events_per_s
    result: dict[str, Any] = {
        "events": args.events,
        "growth_events": args.growth_events,
        "upsert_events": args.upsert_events,
        "speedup_vs_seed": round(ways["append"].events_per_s / ways["seed"].events_per_s, 1),
        "fraction_of_raw_insert": round(ways["append"].events_per_s / raw, 3),
        "chunked_fraction_of_raw_insert": round(ways["chunked"].events_per_s / raw, 3),
        "upsert_fraction_of_raw_insert": round(ways["upsert"].events_per_s / raw, 3),
        "growth_last_first": round(growth.growth(), 2),
        "upsert_growth_last_first": round(upsert_growth.growth(), 2),
        "index_lag": lag.summary(),
        "index_ms_per_entry": round(index_ms, 3),
        # indexing an entry against writing it as a raw single-row INSERT (after the seed's run)
        "index_cost_vs_raw_insert": round(index_ms * ways["raw-after"].events_per_s / 1000, 2),
        "ways": {n: w.summary() for n, w in ways.items()},
        "growth_run": growth.summary(),
        "upsert_growth_run": upsert_growth.summary(),
    }
    for name, way in ways.items():
        result[f"{name}_events_per_s"] = round(way.events_per_s, 1)
    if recorder is not None:
        result["recorder_events_per_s"] = round(recorder.events_per_s, 1)
        result["recorder_fraction_of_raw_insert"] = round(recorder.events_per_s / raw, 3)
        result["graph_only_events_per_s"] = round(recorder.graph_only_per_s, 1)  # type: ignore[attr-defined]
    else:
        result["recorder_events_per_s"] = None
    result["targets_met"] = {
        "speedup_vs_seed>=25": result["speedup_vs_seed"] >= 25,
        "fraction_of_raw_insert>=0.7": result["fraction_of_raw_insert"] >= 0.7,
        "growth_last_first<=1.5": result["growth_last_first"] <= 1.5,
        "upsert_growth_last_first<=1.5": result["upsert_growth_last_first"] <= 1.5,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.events} events of ~400 B on one thread per way; append, upsert and raw interleaved"
        " one event each; seed alone afterwards, then raw again"
    )
    print(f"{'way':<16}{'events/s':>10}{'first 100 ms':>14}{'last 100 ms':>13}{'growth':>8}")
    rows = [(n, w.summary()) for n, w in ways.items()]
    rows += [
        (f"append x{args.growth_events}", growth.summary()),
        (f"upsert x{args.upsert_events}", upsert_growth.summary()),
    ]
    for name, s in rows:
        print(
            f"{name:<16}{s['events_per_s']:>10,.0f}{s['first_ms']:>14.2f}{s['last_ms']:>13.2f}"
            f"{s['growth']:>7.2f}x"
        )
    if recorder is not None:
        print(
            f"{'recorder':<16}{recorder.events_per_s:>10,.0f}   (graph alone: "
            f"{recorder.graph_only_per_s:,.0f} events/s)"
        )  # type: ignore[attr-defined]
    else:
        print("recorder: skipped (tracedb.recorder not available)")
    print(
        f"search indexing behind the append and upsert runs (two traces): not yet indexed, sampled every"
        f" {LAG_EVERY} events: median {result['index_lag']['backlog_median_entries']}, max"
        f" {result['index_lag']['backlog_max_entries']} entries; all indexed {lag.drain_s:.2f} s after"
        " the last write"
    )
    print(
        f"search indexing, alone, in calls of {CALL_ENTRIES} entries: {index_ms:.3f} ms per entry,"
        f" {result['index_cost_vs_raw_insert']}x a raw single-row INSERT"
    )
    print()
    for key in (
        "speedup_vs_seed",
        "fraction_of_raw_insert",
        "chunked_fraction_of_raw_insert",
        "growth_last_first",
        "upsert_growth_last_first",
    ):
        print(f"{key:<34}{result[key]}")
    for target, met in result["targets_met"].items():
        print(f"target {target:<32}{'met' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
