"""A realistic synthetic trace set, loaded with COPY into the product's schema.

Traces: a few hundred users (a few heavy ones), threads that sometimes hold several traces,
names from a fixed set of jobs, mostly completed with some failed/interrupted/running,
created over 90 days in time order. Entries: about 10 a trace, nodes planner/model/tools/
summarise, 200-400 B of JSON whose text is drawn from a Zipf-distributed vocabulary, so that
text search has common, middling and rare words, plus unique order ids.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

NODES = ("planner", "model", "tools", "summarise")
TOOLS = ("web_search", "sql_query", "send_email", "calendar_lookup", "calculator", "fetch_url")
MODELS = ("gpt-4o", "claude-sonnet", "llama-3-70b", "mistral-large")
VERBS = (
    "reconcile",
    "summarise",
    "triage",
    "draft",
    "classify",
    "extract",
    "review",
    "schedule",
    "forecast",
    "translate",
    "escalate",
    "audit",
    "enrich",
    "route",
)
OBJECTS = (
    "invoice",
    "ticket",
    "email",
    "contract",
    "order",
    "report",
    "meeting",
    "lead",
    "refund",
    "claim",
    "shipment",
    "survey",
    "payroll",
    "incident",
    "budget",
)
STATUS_WEIGHTS = (("completed", 0.86), ("failed", 0.07), ("interrupted", 0.04), ("running", 0.03))
SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "be",
    "da",
    "fi",
    "go",
    "ha",
    "ju",
    "ke",
    "la",
    "mo",
    "nu",
    "pa",
    "re",
    "si",
    "to",
    "ve",
    "zo",
    "qu",
    "xi",
)
VOCABULARY_SIZE = 30_000
ZIPF_S = 1.05
DAYS = 90

TRACE_COLUMNS = (
    "id",
    "user_id",
    "provider_id",
    "thread_id",
    "name",
    "status",
    "entry_count",
    "error_count",
    "nodes",
    "first_started_at",
    "last_ended_at",
    "total_duration_ms",
    "metadata",
    "created_at",
    "updated_at",
)
ENTRY_COLUMNS = (
    "trace_id",
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


def vocabulary(size: int = VOCABULARY_SIZE, seed: int = 11) -> list[str]:
    """``size`` distinct made-up words of 2-4 syllables, most frequent first."""
    rng = random.Random(seed)
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass
class Dataset:
    """What was loaded, with what the query benchmark needs to pick realistic parameters."""

    traces: int = 0
    entries: int = 0
    users: list[str] = field(default_factory=list)
    user_counts: dict[str, int] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)
    sample_threads: list[str] = field(default_factory=list)
    order_ids: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    seconds: float = 0.0


def phrase_of(text: str, i: int) -> str:
    """Two adjacent words of ``text`` as a quoted phrase (what someone copies from an entry)."""
    words = text.split()
    k = i % max(len(words) - 1, 1)
    return '"' + " ".join(words[k : k + 2]) + '"'


def _ts(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S.%f+00")


class Generator:
    """Makes the rows of ``n`` traces, in creation order."""

    def __init__(self, n: int, *, users: int = 300, seed: int = 5, end: datetime | None = None) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.words = vocabulary()
        weights = [1.0 / (r + 1) ** ZIPF_S for r in range(len(self.words))]
        total = 0.0
        self.cum: list[float] = []
        for w in weights:
            total += w
            self.cum.append(total)
        self.users = [f"user-{i:04d}" for i in range(users)]
        user_weights = [1.0 / (i + 1) ** 0.8 for i in range(users)]
        self.user_cum = []
        total = 0.0
        for w in user_weights:
            total += w
            self.user_cum.append(total)
        self.names = [f"{v}-{o}" for v in VERBS for o in OBJECTS]
        self.end = end or datetime.now(UTC).replace(microsecond=0)
        self.start = self.end - timedelta(days=DAYS)
        self.step = (self.end - self.start).total_seconds() / max(n, 1)
        self.data = Dataset(traces=n, users=self.users, words=self.words, start=self.start, end=self.end)

    def _text(self, k: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum, k=k))

    def rows(self, first: int, count: int) -> tuple[list[str], list[str]]:
        """COPY text lines for traces ``first .. first+count-1`` and for their entries."""
        rng = self.rng
        trace_lines: list[str] = []
        entry_lines: list[str] = []
        data = self.data
        prev_thread = "th-0"
        for i in range(first, first + count):
            tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            user = rng.choices(self.users, cum_weights=self.user_cum)[0]
            data.user_counts[user] = data.user_counts.get(user, 0) + 1
            thread = prev_thread if rng.random() < 0.2 else f"th-{i}"
            prev_thread = thread
            name = rng.choice(self.names)
            r = rng.random()
            status = "completed"
            acc = 0.0
            for s, w in STATUS_WEIGHTS:
                acc += w
                if r < acc:
                    status = s
                    break
            created = self.start + timedelta(seconds=i * self.step + rng.random() * self.step)
            n_entries = rng.randint(6, 14)
            clock = created
            errors = 0
            total_ms = 0.0
            nodes: set[str] = set()
            for seq in range(n_entries):
                node = (
                    "planner"
                    if seq == 0
                    else "summarise"
                    if seq == n_entries - 1
                    else ("model" if seq % 2 else "tools")
                )
                nodes.add(node)
                kind = "tool" if node == "tools" else "llm" if node == "model" else "step"
                failed = rng.random() < 0.02
                errors += failed
                est = "error" if failed else "ok"
                ms = round(rng.lognormvariate(5.5, 1.0), 1)
                total_ms += ms
                began = clock
                clock = began + timedelta(milliseconds=ms)
                extra = ""
                if node == "tools":
                    tool = rng.choice(TOOLS)
                    extra = f',"tool":"{tool}","input":{{"query":"{self._text(8)}"}}'
                elif node == "model":
                    extra = (
                        f',"model":"{rng.choice(MODELS)}","tokens":{rng.randint(50, 4000)}'
                        f',"input":{{"prompt":"{self._text(10)}"}}'
                    )
                if rng.random() < 0.05:
                    oid = f"ORD-{rng.randint(0, 10**9):09d}"
                    extra += f',"order_id":"{oid}"'
                    if len(data.order_ids) < 200 and rng.random() < 0.05:
                        data.order_ids.append(oid)
                if failed:
                    extra += (
                        f',"error":"{rng.choice(("Timeout", "RateLimit", "ToolError"))}: {self._text(6)}"'
                    )
                ename = f"{node}-{seq}"
                output = self._text(rng.randint(12, 30))
                if len(data.phrases) < 50 and rng.random() < 0.001:
                    data.phrases.append(phrase_of(output, len(data.phrases)))
                doc = (
                    f'{{"node":"{node}","kind":"{kind}","name":"{ename}","status":"{est}",'
                    f'"duration_ms":{ms}{extra},"output":"{output}"}}'
                )
                entry_lines.append(
                    f"{tid}\t{seq}\t{node}\t{kind}\t{ename}\t{'error' if failed else 'ok'}\t"
                    f"{_ts(began)}\t{_ts(clock)}\t{ms}\t{doc}\n"
                )
            total = round(total_ms, 1)
            env = rng.choice(("prod", "prod", "prod", "staging", "dev"))
            meta = f'{{"env":"{env}","app_version":"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"}}'
            updated = clock
            trace_lines.append(
                f"{tid}\t{user}\t{rng.choice(('openai', 'anthropic', 'local'))}\t{thread}\t{name}\t"
                f"{status}\t{n_entries}\t{errors}\t{{{','.join(sorted(nodes))}}}\t{_ts(created)}\t"
                f"{_ts(clock)}\t{total}\t{meta}\t{_ts(created)}\t{_ts(updated)}\n"
            )
            data.entries += n_entries
            if rng.random() < 2000 / max(self.n, 1):
                data.sample_ids.append(tid)
                data.sample_threads.append(thread)
        return trace_lines, entry_lines


def load(
    url: str,
    n: int,
    *,
    batch: int = 5_000,
    seed: int = 5,
    connections: int = 2,
    progress: Callable[[str], None] | None = None,
) -> Dataset:
    """COPY ``n`` traces into the (migrated, empty) database at ``url``, over ``connections``
    connections at once.

    Secondary indexes and foreign keys of the trace tables are dropped during the load and
    then recreated from their own definitions, so the schema afterwards is the product's.
    The search rows of each batch are built by the product's own function.
    """
    gen = Generator(n, seed=seed)
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename LIKE 'automation\\_trace%%'"
            ).fetchall()
        ]
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT LIKE '%%pkey'",
            (tables,),
        ).fetchall()
        fks = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(%s) AND contype = 'f'",
            (tables,),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for table, name, _ in fks:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        # The rows are made here, in order (the samples the queries draw from depend on it);
        # each batch is copied and indexed on one of `connections` connections of its own:
        # building the search rows is the load's bulk, and it runs on one core per connection.
        local = threading.local()
        opened: list[psycopg.Connection[Any]] = []
        opened_lock = threading.Lock()

        def store(trace_lines: list[str], entry_lines: list[str]) -> None:
            worker = getattr(local, "conn", None)
            if worker is None:
                worker = local.conn = psycopg.connect(url, autocommit=True)
                with opened_lock:
                    opened.append(worker)
            with worker.transaction(), worker.cursor() as cur:
                with cur.copy(f"COPY automation_traces ({', '.join(TRACE_COLUMNS)}) FROM STDIN") as cp:
                    cp.write("".join(trace_lines))
                with cur.copy(f"COPY automation_trace_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN") as cp:
                    cp.write("".join(entry_lines))
                # the search rows, as the product's writes make them (behind the writes)
                ids = [line.split("\t", 1)[0] for line in trace_lines]
                cur.execute("SELECT tracedb_rebuild_words(%s::uuid[])", (ids,))

        done = 0
        try:
            with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:
                pending: deque[Future[None]] = deque()
                while done < n:
                    count = min(batch, n - done)
                    pending.append(pool.submit(store, *gen.rows(done, count)))
                    done += count
                    while len(pending) > connections:  # bounded: a batch's lines are ~20 MB
                        pending.popleft().result()
                    if progress and (done % (batch * 20) == 0 or done == n):
                        progress(f"loaded {done:,} traces in {time.perf_counter() - t0:.0f} s")
                while pending:
                    pending.popleft().result()
        finally:
            for worker in opened:
                worker.close()
        for name, definition in indexes:
            t1 = time.perf_counter()
            conn.execute(definition)
            if progress:
                progress(f"index {name}: {time.perf_counter() - t1:.0f} s")
        for table, name, definition in fks:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")
    gen.data.seconds = time.perf_counter() - t0
    if progress:
        progress(f"load done in {gen.data.seconds:.0f} s")
    return gen.data


def describe(data: Dataset) -> dict[str, Any]:
    """A short JSON-ready description of the loaded set."""
    return {
        "traces": data.traces,
        "entries": data.entries,
        "users": len(data.users),
        "load_seconds": round(data.seconds, 1),
    }
