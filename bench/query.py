"""Query benchmark: the dashboard's queries on a large trace set, through the product's code.

Loads ``--traces`` traces of about 10 entries each with COPY (see ``bench.dataset``), then
times what the pages ask for via ``AutomationTraceDB`` (list_traces, count_traces,
load_trace_by_id, load_trace_by_thread, delete_traces with a TraceFilter), repeating each
query with varied parameters, and prints p50/p95 per query. Each query's plan is checked
with EXPLAIN, built by the same query builders: the indexes it uses are printed and a
sequential scan of a big table is flagged.

Run: ``python -m bench.query [--url URL] [--traces 10000] [--json]``; the full run is
``--traces 1000000`` (10M entries). The benchmark creates a database of its own on the
server and drops it afterwards (``--keep`` leaves it; ``--reuse NAME`` skips the load).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

if not __package__:  # run as ``python bench/query.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dataset  # noqa: E402
from bench.common import admin_url, percentile, temp_database  # noqa: E402
from tracedb import AutomationTraceDB, TraceFilter  # noqa: E402
from tracedb import filters as filter_sql  # noqa: E402
from tracedb import queries as q  # noqa: E402

BIG_TABLES = ("automation_traces", "automation_trace_entries")
LIST_P95_MS = 50.0
COUNT_P95_MS = 200.0
COUNT_BUDGET_MS = 100
PAGE = 50


@dataclass
class Result:
    """Timings and plan of one query kind."""

    name: str
    kind: str  # "list", "load", "count" or "delete"
    times: list[float] = field(default_factory=list)
    plan: str = ""
    seq_scan: bool = False
    rows: list[int] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.times, 50) * 1000

    @property
    def p95(self) -> float:
        return percentile(self.times, 95) * 1000

    @property
    def cold_max(self) -> float:
        """Slowest run of the first pass (parameters not seen before), ms."""
        return max(self.cold) * 1000 if self.cold else float("nan")

    @property
    def target_ms(self) -> float | None:
        return {"list": LIST_P95_MS, "load": LIST_P95_MS, "count": COUNT_P95_MS}.get(self.kind)

    @property
    def met(self) -> bool | None:
        target = self.target_ms
        return None if target is None else self.p95 < target

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "kind": self.kind,
            "n": len(self.times),
            "p50_ms": round(self.p50, 2),
            "p95_ms": round(self.p95, 2),
            "first_pass_max_ms": round(self.cold_max, 2),
            "target_ms": self.target_ms,
            "met": self.met,
            "plan": self.plan,
            "seq_scan": self.seq_scan,
            "rows_median": sorted(self.rows)[len(self.rows) // 2] if self.rows else None,
        }


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(plan_nodes(child))
    return out


def explain(
    conn: psycopg.Connection[Any], query: sql.Composable, params: Mapping[str, Any]
) -> tuple[str, bool]:
    """A one-line summary of the plan (top node, indexes used) and whether a big table is
    read by a sequential scan."""
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, params).fetchone()
    assert row is not None
    root = row[0][0]["Plan"]
    nodes = plan_nodes(root)
    used = []
    seq = False
    for node in nodes:
        if node.get("Index Name"):
            used.append(node["Index Name"])
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
            seq = True
            used.append(f"SEQ SCAN {node['Relation Name']}")
    seen: list[str] = []
    for name in used:
        if name not in seen:
            seen.append(name)
    return f"{root['Node Type']}: {', '.join(seen) or 'no index'}", seq


class Bench:
    """Runs the query kinds against one loaded database."""

    def __init__(
        self,
        db: AutomationTraceDB,
        conn: psycopg.Connection[Any],
        data: dataset.Dataset,
        repeat: int,
        seed: int = 3,
    ) -> None:
        self.db = db
        self.conn = conn
        self.data = data
        self.repeat = repeat
        self.rng = random.Random(seed)
        self.results: list[Result] = []
        self.exact: dict[str, int] = {}

    def timed(self, result: Result, fn: Callable[[], int], *, cold: bool = False) -> None:
        t0 = time.perf_counter()
        n = fn()
        elapsed = time.perf_counter() - t0
        if cold:
            result.cold.append(elapsed)
            return
        result.times.append(elapsed)
        result.rows.append(n)

    def list_kind(self, name: str, filters: Callable[[int], TraceFilter]) -> Result:
        """Time ``list_traces`` (first page) for ``repeat`` filters made by ``filters``."""
        res = Result(name, "list")
        flts = [filters(i) for i in range(self.repeat)]
        # the plan the store runs: for several terms in one entry it may start from the index
        estimate = filter_sql.candidate_estimate(flts[0])
        first = estimate is not None and estimate.starts_from_index(
            self.conn.execute(estimate.query, estimate.params).fetchone(),
            self.conn.execute(estimate.every).fetchone(),
        )
        query, params = filter_sql.list_query(flts[0], PAGE, None, index_first=first)
        res.plan, res.seq_scan = explain(self.conn, query, params)
        for cold in (True, False):
            for flt in flts:
                self.timed(res, lambda flt=flt: len(self.db.list_traces(flt, limit=PAGE).items), cold=cold)
        self.results.append(res)
        return res

    def count_kind(
        self, name: str, filters: Callable[[int], TraceFilter], repeat: int | None = None
    ) -> Result:
        """Time ``count_traces`` for ``repeat`` filters made by ``filters``.

        With ``repeat`` given (for counts known to take seconds), one pass only."""
        res = Result(name, "count")
        flts = [filters(i) for i in range(repeat or self.repeat)]
        query, params = filter_sql.count_query(flts[0])
        res.plan, res.seq_scan = explain(self.conn, query, params)
        for cold in (False,) if repeat else (True, False):
            for flt in flts:
                self.timed(res, lambda flt=flt: self.db.count_traces(flt), cold=cold)
        for flt, n in zip(flts, res.rows, strict=False):
            self.exact[repr(flt)] = n
        self.results.append(res)
        return res

    def bounded_count_kind(self, name: str, filters: Callable[[int], TraceFilter]) -> Result:
        """Time ``AutomationTraceDB.count_traces_bounded`` for ``repeat`` filters made by ``filters``."""
        res = Result(name, "count")
        flts = [filters(i) for i in range(self.repeat)]
        query, params = filter_sql.count_estimate_query(flts[0])
        res.plan = "exact within the budget, else the plan's estimate"
        estimated = 0
        ratios: list[float] = []
        for cold in (True, False):
            for flt in flts:
                t0 = time.perf_counter()
                n, exact = self.db.count_traces_bounded(flt, budget_ms=COUNT_BUDGET_MS)
                elapsed = time.perf_counter() - t0
                if cold:
                    res.cold.append(elapsed)
                    continue
                res.times.append(elapsed)
                estimated += not exact
                truth = self.exact.get(repr(flt))
                if not exact and truth:
                    ratios.append(n / truth)
        res.plan += f" ({estimated} of {len(flts)} estimated"
        if ratios:
            res.plan += f"; estimate/exact {min(ratios):.2f}-{max(ratios):.2f} on {len(ratios)}"
        res.plan += ")"
        self.results.append(res)
        return res

    def deep_page(self, page: int) -> Result:
        """Walk the newest-first listing by cursor to ``page``; time the last fetches."""
        res = Result(f"page {page:,} by keyset", "list")
        cursor: str | None = None
        cursors: list[str] = []
        reached = 0
        for _ in range(page - 1):
            nxt = self.db.list_traces(limit=PAGE, cursor=cursor).next_cursor
            if nxt is None:
                break
            cursor = nxt
            cursors.append(nxt)
            reached += 1
        res.name = f"page {reached + 1:,} by keyset"
        tail = cursors[-5:] or [None]
        query, params = filter_sql.list_query(None, PAGE, tail[-1])
        res.plan, res.seq_scan = explain(self.conn, query, params)
        for cold in (True, False):
            for i in range(self.repeat):
                cur = tail[i % len(tail)]
                self.timed(
                    res, lambda cur=cur: len(self.db.list_traces(limit=PAGE, cursor=cur).items), cold=cold
                )
        self.results.append(res)
        return res

    def loads(self) -> None:
        """Time ``load_trace_by_id`` and ``load_trace_by_thread`` on sampled traces."""
        ids, threads = self.data.sample_ids, self.data.sample_threads
        by_id = Result("load by id", "load")
        by_thread = Result("load by thread", "load")
        by_id.plan, by_id.seq_scan = explain(
            self.conn, q.LOAD_BY_ID, {"id": ids[0], "scope": None, "abandon_after": 120.0}
        )
        by_thread.plan, by_thread.seq_scan = explain(
            self.conn, q.LOAD_BY_THREAD, {"thread_id": threads[0], "scope": None, "abandon_after": 120.0}
        )
        picks = [
            (ids[self.rng.randrange(len(ids))], threads[self.rng.randrange(len(threads))])
            for _ in range(self.repeat)
        ]
        for cold in (True, False):
            for tid, thread in picks:
                self.timed(
                    by_id,
                    lambda tid=tid: len(self.db.load_trace_by_id(tid).trace_data),  # type: ignore[union-attr]
                    cold=cold,
                )
                self.timed(
                    by_thread,
                    lambda th=thread: len(self.db.load_trace_by_thread(th).trace_data),  # type: ignore[union-attr]
                    cold=cold,
                )
        self.results += [by_id, by_thread]

    def delete_tenth(self) -> Result:
        """Delete the oldest 10% of traces by filter (as a retention job would); time it once."""
        res = Result("delete 10% by filter", "delete")
        cutoff = self.data.start + (self.data.end - self.data.start) / 10
        flt = TraceFilter(until=cutoff)
        query, params = filter_sql.delete_batch_query(flt, 1000)
        res.plan, res.seq_scan = explain(self.conn, query, params)
        self.timed(res, lambda: self.db.delete_traces(flt))
        self.results.append(res)
        return res

    def run(self, deep: int) -> None:
        """Every query kind, in the order the pages use them."""
        d, rng = self.data, self.rng
        heavy = sorted(d.user_counts, key=d.user_counts.__getitem__, reverse=True)
        users = heavy[:10] + rng.sample(heavy, min(len(heavy), 20))
        span = (d.end - d.start).total_seconds()
        words = d.words

        def when(i: int) -> tuple[Any, Any]:
            since = d.start + timedelta(seconds=rng.random() * span * 0.95)
            return since, since + timedelta(days=1)

        prefixes = [v for v in dataset.VERBS] + [
            f"{v}-{o[:3]}" for v in dataset.VERBS[:5] for o in dataset.OBJECTS[:4]
        ]
        self.list_kind("newest first (no filter)", lambda i: TraceFilter())
        self.list_kind("user's first page", lambda i: TraceFilter(user_id=users[i % len(users)]))
        self.deep_page(deep)
        self.list_kind(
            "time range (1 day) + status",
            lambda i: TraceFilter(
                since=when(i)[0], until=when(i)[1], status=("failed", "interrupted")[i % 2]
            ),
        )
        self.list_kind("status failed", lambda i: TraceFilter(status="failed"))
        self.list_kind("name prefix", lambda i: TraceFilter(name=prefixes[i % len(prefixes)]))
        self.list_kind(
            "user + name prefix",
            lambda i: TraceFilter(user_id=users[i % len(users)], name=prefixes[i % len(prefixes)]),
        )
        self.list_kind("node filter", lambda i: TraceFilter(node=dataset.NODES[i % 4]))
        self.list_kind("text: common word", lambda i: TraceFilter(text=words[i % 20]))
        self.list_kind("text: middling word", lambda i: TraceFilter(text=words[200 + 37 * i]))
        self.list_kind("text: rare word", lambda i: TraceFilter(text=words[8000 + 613 * i % 20000]))
        self.list_kind("text: order id", lambda i: TraceFilter(text=d.order_ids[i % len(d.order_ids)]))
        self.list_kind("text: two words", lambda i: TraceFilter(text=f"{words[50 + i]} {words[300 + 7 * i]}"))
        if d.phrases:
            self.list_kind(
                "text: phrase from an entry", lambda i: TraceFilter(text=d.phrases[i % len(d.phrases)])
            )
        self.list_kind(
            "text + user", lambda i: TraceFilter(text=words[100 + 11 * i], user_id=users[i % len(users)])
        )
        self.list_kind("contains: common", lambda i: TraceFilter(contains={"node": dataset.NODES[i % 4]}))
        self.list_kind(
            "contains: tool + error",
            lambda i: TraceFilter(
                contains={"tool": dataset.TOOLS[i % len(dataset.TOOLS)], "status": "error"}
            ),
        )
        self.list_kind(
            "contains: model",
            lambda i: TraceFilter(contains={"model": dataset.MODELS[i % len(dataset.MODELS)]}),
        )
        self.list_kind(
            "contains: order id",
            lambda i: TraceFilter(contains={"order_id": d.order_ids[i % len(d.order_ids)]}),
        )
        self.loads()
        self.count_kind("count: all", lambda i: TraceFilter())
        self.count_kind("count: user", lambda i: TraceFilter(user_id=users[i % len(users)]))
        self.count_kind("count: status", lambda i: TraceFilter(status=("failed", "running")[i % 2]))
        self.count_kind(
            "count: time range (1 day) + status",
            lambda i: TraceFilter(since=when(i)[0], until=when(i)[1], status="failed"),
        )
        self.count_kind("count: name prefix", lambda i: TraceFilter(name=prefixes[i % len(prefixes)]))
        self.count_kind("count: text rare word", lambda i: TraceFilter(text=words[8000 + 613 * i % 20000]))
        self.count_kind(
            "count: text middling word", lambda i: TraceFilter(text=words[200 + 37 * i]), repeat=5
        )
        self.count_kind(
            "count: contains tool + error",
            lambda i: TraceFilter(
                contains={"tool": dataset.TOOLS[i % len(dataset.TOOLS)], "status": "error"}
            ),
            repeat=6,
        )
        # Exact counts of a large share of the traces: every candidate is confirmed against its
        # entries, which takes seconds at 1M traces; a page shows the bounded count below.
        self.count_kind("count: text common word", lambda i: TraceFilter(text=words[i % 20]), repeat=3)
        self.count_kind(
            "count: contains common", lambda i: TraceFilter(contains={"node": dataset.NODES[i % 4]}), repeat=3
        )
        self.bounded_count_kind(
            "count or estimate: text common word", lambda i: TraceFilter(text=words[i % 20])
        )
        self.bounded_count_kind(
            "count or estimate: text middling", lambda i: TraceFilter(text=words[200 + 37 * i])
        )
        self.bounded_count_kind(
            "count or estimate: contains common",
            lambda i: TraceFilter(contains={"node": dataset.NODES[i % 4]}),
        )
        self.bounded_count_kind("count or estimate: all", lambda i: TraceFilter())
        self.delete_tenth()


def reuse_dataset(url: str, traces: int) -> dataset.Dataset:
    """Rebuild the parameter samples of an already loaded database (``--reuse``): the same
    samples on every rerun while the database does not change (REPEATABLE)."""
    gen = dataset.Generator(0)
    data = gen.data
    with psycopg.connect(url) as conn:
        data.traces = conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0]  # type: ignore[index]
        data.entries = conn.execute("SELECT count(*) FROM automation_trace_entries").fetchone()[0]  # type: ignore[index]
        data.start, data.end = conn.execute(
            "SELECT min(updated_at), max(updated_at) FROM automation_traces"
        ).fetchone()  # type: ignore[misc]
        data.user_counts = dict(
            conn.execute("SELECT user_id, count(*) FROM automation_traces GROUP BY 1").fetchall()
        )
        data.users = list(data.user_counts)
        rows = conn.execute(
            "SELECT id::text, thread_id FROM automation_traces TABLESAMPLE SYSTEM (1) REPEATABLE (7) LIMIT 2000"
        ).fetchall()
        data.sample_ids = [r[0] for r in rows]
        data.sample_threads = [r[1] for r in rows]
        outputs = [
            r[0]
            for r in conn.execute(
                "SELECT data->>'output' FROM automation_trace_entries TABLESAMPLE SYSTEM (0.01) REPEATABLE (7) LIMIT 50"
            ).fetchall()
            if r[0]
        ]
        data.phrases = [dataset.phrase_of(text, i) for i, text in enumerate(outputs)]
        data.order_ids = [
            r[0]
            for r in conn.execute(
                "SELECT data->>'order_id' FROM automation_trace_entries TABLESAMPLE SYSTEM (0.1) REPEATABLE (7) "
                "WHERE data ? 'order_id' LIMIT 200"
            ).fetchall()
        ]
    return data


def report(results: list[Result], data: dataset.Dataset) -> None:
    """Print the table of figures."""
    print(
        f"{data.traces:,} traces, {data.entries:,} entries"
        + (f", loaded in {data.seconds:.0f} s" if data.seconds else "")
    )
    print(f"{'query':<40}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'1st max':>9}{'target':>8}  {'':5}plan")
    for r in results:
        target = f"<{r.target_ms:.0f}" if r.target_ms else ""
        met = "" if r.met is None else ("ok" if r.met else "SLOW")
        flag = " <-- seq scan" if r.seq_scan else ""
        print(
            f"{r.name:<40}{len(r.times):>4}{r.p50:>9.1f}{r.p95:>9.1f}{r.cold_max:>9.1f}{target:>8}"
            f"  {met:<5}{r.plan}{flag}"
        )
    print("p50/p95: second pass over the same parameters; 1st max: slowest run of the first pass")


def log(msg: str) -> None:
    """Progress to stderr."""
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Load, run, print."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.query",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="server URL (default TRACEDB_URL, else the local socket)")
    parser.add_argument("--traces", type=int, default=10_000, help="traces to load (~10 entries each)")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query, varied parameters")
    parser.add_argument("--deep-page", type=int, default=1000, help="page reached by keyset")
    parser.add_argument("--no-delete", action="store_true", help="skip the delete of 10%%")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its name)")
    parser.add_argument("--reuse", metavar="DBNAME", help="use this loaded database; no load, no drop")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick check")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    if args.smoke:
        args.traces, args.repeat, args.deep_page = 2_000, 5, 20
    server = admin_url(args.url)

    def bench(url: str, data: dataset.Dataset) -> None:
        with AutomationTraceDB(url, max_size=2) as db, psycopg.connect(url, autocommit=True) as conn:
            bench = Bench(db, conn, data, args.repeat)
            if args.no_delete:
                bench.delete_tenth = lambda: Result("delete", "delete")  # type: ignore[method-assign]
            try:
                bench.run(args.deep_page)
            finally:
                if sys.exc_info()[0] is not None:
                    report(bench.results, data)  # what was measured before the failure
        results = bench.results
        if args.json:
            print(
                json.dumps(
                    {
                        "dataset": dataset.describe(data),
                        "queries": {r.name: r.summary() for r in results},
                        "all_targets_met": all(r.met is not False for r in results),
                    }
                )
            )
        else:
            report(results, data)

    if args.reuse:
        url = make_conninfo(server, dbname=args.reuse)
        bench(url, reuse_dataset(url, args.traces))
        return 0
    with temp_database(server, "query", keep=args.keep) as url:
        if args.keep:
            log(f"database kept: {url}")
        AutomationTraceDB(url).close()  # apply the migrations
        data = dataset.load(url, args.traces, progress=log)
        bench(url, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
