"""Many writers at once: concurrent recorders, each on its own thread of conversation, next
to the same number of clients doing single-row INSERTs (the pgbench-style ceiling), in one run.

Each writer is a process with its own store and connection (``--writer-mode processes``),
or a thread of one process whose store has a connection per writer (``--writer-mode
threads``: a server process running many agents' conversations at once; the INSERT clients
are then threads of one process too, as pgbench's clients are). A writer is shaped like the
recorder's writer: it sends what has accumulated since its last call in one ``append_entries`` call
with a batch id. Flat out, entries are always waiting (up to FLAT_BATCH per call: what a
fast graph accumulates during one round trip); paced, a producer makes one entry every
STEP_S (a busy agent) and the writer thread sends them as they come. Entries are about
400 B. Write latency is the time of each call. The INSERT clients write one row per
transaction into a plain table, flat out. When a writer stops, it reads how many of its
entries its store has not indexed for search yet (indexing runs behind the writes). After
each run the bench indexes what is left before the next starts (no run shares the machine
with the indexing of the one before) and prints how long that took after the flat-out run.

Run: ``python -m bench.ingest --writers 1,8,32 [--writer-mode threads] [--writer-seconds 8] [--json]``.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.common import UNINDEXED, make_entry, percentile

RAW_TABLE = """
CREATE TABLE IF NOT EXISTS raw_writers (
    trace_id uuid NOT NULL, seq integer NOT NULL, node text, kind text, name text, status text,
    started_at timestamptz, ended_at timestamptz, duration_ms double precision, data jsonb NOT NULL,
    PRIMARY KEY (trace_id, seq)
)
"""
RAW_INSERT = """
INSERT INTO raw_writers (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
# A realistic agent step rate per writer: a step every 40 ms (model and tool calls are slower;
# this is a busy agent).
STEP_S = 0.04
FLAT_BATCH = 16


@dataclass
class Result:
    """What one kind of run of n writers did."""

    writers: int
    entries: int
    seconds: float
    latencies: list[float]
    # entries not indexed for search yet when each writer stopped (of ``entries``): how far
    # the indexers, which run behind the writes, trailed; None for INSERT clients
    unindexed: int | None = None

    @property
    def per_s(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0

    def ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000 if self.latencies else float("nan")


def _write(
    db: Any, seconds: float, step_s: float, seed: int, start: Any
) -> tuple[int, float, list[float], int]:
    """One recorder on its own thread of conversation: entries written, seconds, latencies,
    entries not indexed yet when it stopped."""
    rng = random.Random(seed)
    entries = [make_entry(i, rng, size=400) for i in range(256)]
    latencies: list[float] = []
    pending: list[dict[str, Any]] = []
    cond = threading.Condition()
    done = threading.Event()
    written = 0
    trace_id = db.append_entries(
        [], thread_id=f"writer-{uuid.uuid4().hex[:8]}", user_id="bench", status="running"
    ).trace_id

    def write() -> None:
        nonlocal written
        while True:
            with cond:
                while not pending and not done.is_set():
                    cond.wait(0.05)
                if not pending and done.is_set():
                    return
                batch = pending[:]
                pending.clear()
            t0 = time.perf_counter()
            db.append_entries(batch, trace_id=trace_id, batch_id=str(uuid.uuid4()))
            latencies.append(time.perf_counter() - t0)
            written += len(batch)

    start.wait()
    t0 = time.perf_counter()
    if not step_s:  # flat out: a batch is always waiting
        i = 0
        while time.perf_counter() - t0 < seconds:
            batch = [entries[(i + k) % len(entries)] for k in range(FLAT_BATCH)]
            t1 = time.perf_counter()
            db.append_entries(batch, trace_id=trace_id, batch_id=str(uuid.uuid4()))
            latencies.append(time.perf_counter() - t1)
            written += len(batch)
            i += FLAT_BATCH
    else:
        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        # each agent's steps at its own phase: writers started at one instant and stepping
        # in lockstep would all call at the same moments, which agents of separate
        # conversations do not
        time.sleep(rng.uniform(0, step_s))
        i = 0
        while time.perf_counter() - t0 < seconds:
            with cond:
                pending.append(entries[i % len(entries)])
                cond.notify()
            i += 1
            time.sleep(step_s)
        done.set()
        thread.join()
    elapsed = time.perf_counter() - t0
    with db.pool.connection() as conn:  # how far this store's indexer trailed this writer
        unindexed = conn.execute(UNINDEXED, ([trace_id],)).fetchone()["n"]
    db.append_entries([], trace_id=trace_id, status="completed")
    return written, elapsed, latencies, unindexed


def _recorder_process(url: str, seconds: float, step_s: float, seed: int, out: Any, start: Any) -> None:
    """A writer process of its own, with its own store."""
    from tracedb import AutomationTraceDB

    with AutomationTraceDB(url, min_size=1, max_size=1) as db:
        out.put(_write(db, seconds, step_s, seed, start))


def _recorder_threads(url: str, seconds: float, step_s: float, n: int, out: Any, start: Any) -> None:
    """``n`` writers as threads of one process sharing one store with a connection each: a
    server process that runs many agents' threads of conversation at once."""
    from tracedb import AutomationTraceDB

    with AutomationTraceDB(url, min_size=n, max_size=n) as db:
        _in_threads([lambda w=w: _write(db, seconds, step_s, w, start) for w in range(n)], out)


def _insert_rows(
    conn: psycopg.Connection[Any], seconds: float, seed: int, start: Any
) -> tuple[int, float, list[float]]:
    """Single-row INSERTs flat out on one connection: rows, seconds, latencies."""
    rng = random.Random(seed)
    entries = [make_entry(i, rng, size=400) for i in range(256)]
    trace_id = uuid.uuid4()
    latencies: list[float] = []
    start.wait()
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        e = entries[i % len(entries)]
        t1 = time.perf_counter()
        conn.execute(
            RAW_INSERT,
            (
                trace_id,
                i,
                e["node"],
                e["kind"],
                e["name"],
                e["status"],
                e["started_at"],
                e["ended_at"],
                e["duration_ms"],
                Jsonb(e),
            ),
        )
        latencies.append(time.perf_counter() - t1)
        i += 1
    return i, time.perf_counter() - t0, latencies


def _insert_process(url: str, seconds: float, seed: int, out: Any, start: Any) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        out.put(_insert_rows(conn, seconds, seed, start))


def _insert_threads(url: str, seconds: float, n: int, out: Any, start: Any) -> None:
    """``n`` INSERT clients as threads of one process, a connection each (as pgbench -c n)."""
    conns = [psycopg.connect(url, autocommit=True) for _ in range(n)]
    try:
        _in_threads([lambda c=c, w=w: _insert_rows(c, seconds, w, start) for w, c in enumerate(conns)], out)
    finally:
        for c in conns:
            c.close()


def _in_threads(writers: list[Callable[[], tuple[Any, ...]]], out: Any) -> None:
    """Run each writer in a thread of its own; put each one's result once all are done."""
    results: list[tuple[Any, ...]] = []
    threads = [threading.Thread(target=lambda w=w: results.append(w())) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        out.put(r)


def _run(target: Any, n: int, args: tuple[Any, ...], threads: bool = False) -> Result:
    """Run ``n`` writers of ``target``: as ``n`` processes, or (``threads``) as one process
    whose target runs ``n`` threads; each writer puts one result."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Event()
    if threads:
        procs = [ctx.Process(target=target, args=(*args, n, out, start))]
    else:
        procs = [ctx.Process(target=target, args=(*args, w, out, start)) for w in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.05 * n)  # every process connected and ready
    start.set()
    results = [out.get(timeout=600) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    entries = sum(r[0] for r in results)
    seconds = max(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    unindexed = sum(r[3] for r in results) if all(len(r) > 3 for r in results) else None
    return Result(n, entries, seconds, latencies, unindexed)


def _drain(url: str) -> float:
    """Index what the writers of a run left pending (a store indexes for at most a round when
    it closes) before the next run starts, so that no run shares the machine with the
    indexing of the one before; returns the seconds it took."""
    from tracedb import AutomationTraceDB

    t0 = time.perf_counter()
    with AutomationTraceDB(url, apply_migrations=False) as db:
        while db.index_pending():
            pass
    return time.perf_counter() - t0


def run(url: str, counts: list[int], seconds: float, mode: str = "processes") -> list[dict[str, Any]]:
    """For each writer count: INSERT clients flat out, recorders flat out, recorders at a
    realistic step rate; ``mode`` "processes" (a process and a store per writer) or "threads"
    (one process, one store, a thread and a connection per writer). One dict per count."""
    threads = mode == "threads"
    insert_target = _insert_threads if threads else _insert_process
    recorder_target = _recorder_threads if threads else _recorder_process
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    rows = []
    _drain(url)
    for n in counts:
        insert = _run(insert_target, n, (url, seconds), threads)
        flat = _run(recorder_target, n, (url, seconds, 0.0), threads)
        flat_drain = _drain(url)
        paced = _run(recorder_target, n, (url, seconds, STEP_S), threads)
        _drain(url)
        rows.append(
            {
                "writers": n,
                "mode": mode,
                "entries_per_s": round(flat.per_s, 1),
                "insert_per_s": round(insert.per_s, 1),
                "ratio": round(flat.per_s / insert.per_s, 2) if insert.per_s else None,
                "p50_ms": round(flat.ms(50), 2),
                "p99_ms": round(flat.ms(99), 2),
                "insert_p99_ms": round(insert.ms(99), 2),
                "paced_entries_per_s": round(paced.per_s, 1),
                "paced_p50_ms": round(paced.ms(50), 2),
                "paced_p99_ms": round(paced.ms(99), 2),
                "entries_per_call": round(flat.entries / max(len(flat.latencies), 1), 1),
                "unindexed_at_end": flat.unindexed,
                "written_at_end": flat.entries,
                "drain_s": round(flat_drain, 1),
                "paced_unindexed_at_end": paced.unindexed,
                "paced_written_at_end": paced.entries,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]], seconds: float) -> None:
    mode = rows[0]["mode"] if rows else "processes"
    print(
        f"\nmany writers as {mode}, {seconds:g} s per run: recorders (flat out, and one step every "
        f"{STEP_S * 1000:.0f} ms) vs single-row INSERT clients (flat out)"
    )
    print(
        f"{'writers':>7} {'INSERT/s':>9} {'entries/s':>10} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'per call':>8} {'paced/s':>8} {'paced p50':>9} {'paced p99':>9}"
    )
    for r in rows:
        print(
            f"{r['writers']:>7} {r['insert_per_s']:>9,.0f} {r['entries_per_s']:>10,.0f} {r['ratio']:>6} "
            f"{r['p50_ms']:>7} {r['p99_ms']:>7} {r['entries_per_call']:>8} {r['paced_entries_per_s']:>8,.0f} "
            f"{r['paced_p50_ms']:>9} {r['paced_p99_ms']:>9}"
        )
    print("\nsearch indexing behind the writes: entries not indexed yet when the writing stopped")
    for r in rows:
        print(
            f"{r['writers']:>7} writers: flat out {r['unindexed_at_end']:,} of {r['written_at_end']:,};"
            f" (indexed {r['drain_s']} s after the run);"
            f" paced {r['paced_unindexed_at_end']:,} of {r['paced_written_at_end']:,}"
        )
