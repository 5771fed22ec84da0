"""Realistic demo traces: several users, a month of history, agent runs that succeed, fail,
or wait for a human, a graph without timings, and one very long trace."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

USERS = ("ana", "ben", "chen", "dara", "eli", "local")
PROVIDERS = ("openai:gpt-4.1-mini", "anthropic:claude-sonnet-4", "offline:rules")
CHUNK = 1000
BIG_TRACE_ENTRIES = 5000

CITIES = ("Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Toronto", "Krakow")
SEARCHES = (
    "postgres jsonb gin index size",
    "langgraph checkpoint postgres",
    "best hiking near Oslo",
    "vat rate portugal 2026",
    "python 3.13 free threading",
    "streamlit fragment run_every",
)
TABLES = ("orders", "invoices", "customers", "shipments")
FILES = ("reports/q3.md", "notes/standup.txt", "docs/onboarding.md", "data/prices.csv")
# Web results are untrusted: some carry markup that a viewer must show as text.
HOSTILE_SNIPPETS = (
    '<script>alert("pwned")</script> Click to continue',
    "[Claim your prize](javascript:alert(1)) **limited offer**",
    '<img src=x onerror="alert(document.cookie)"> results below',
)


class _Clock:
    """Builds entries one after another, advancing a wall clock."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.now = start
        self.entries: list[dict[str, Any]] = []

    def step(
        self,
        node: str,
        kind: str,
        name: str,
        ms: float,
        input: Any,
        output: Any,
        status: str = "ok",
        **extra: Any,
    ) -> None:
        self.now += timedelta(milliseconds=self.rng.uniform(2, 40))
        started = self.now
        self.now += timedelta(milliseconds=ms)
        entry = {
            "node": node,
            "kind": kind,
            "name": name,
            "input": input,
            "output": output,
            "status": status,
            "started_at": started.isoformat(),
            "ended_at": self.now.isoformat(),
            "duration_ms": round(ms, 1),
        }
        entry.update(extra)
        self.entries.append(entry)


def _tool_call(rng: random.Random) -> tuple[str, dict[str, Any], Any, str]:
    """A tool, its arguments, its output and the question that leads to it."""
    tool = rng.choice(("calculator", "web_search", "get_weather", "sql_query", "read_file"))
    if tool == "calculator":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice(("*", "+", "-"))
        value = {"*": a * b, "+": a + b, "-": a - b}[op]
        return tool, {"expression": f"{a} {op} {b}"}, str(value), f"what is {a} {op} {b}?"
    if tool == "web_search":
        query = rng.choice(SEARCHES)
        results = [
            {
                "title": f"{query.title()} - result {i + 1}",
                "url": f"https://example.org/{query.replace(' ', '-')}/{i}",
                "snippet": rng.choice(HOSTILE_SNIPPETS)
                if rng.random() < 0.15
                else f"Notes about {query}, part {i + 1}.",
            }
            for i in range(3)
        ]
        return tool, {"query": query, "max_results": 3}, results, f"search the web: {query}"
    if tool == "get_weather":
        city = rng.choice(CITIES)
        out = {
            "city": city,
            "temp_c": rng.randint(-5, 31),
            "conditions": rng.choice(("sunny", "cloudy", "rain", "snow", "windy")),
        }
        return tool, {"city": city}, out, f"what's the weather in {city}?"
    if tool == "sql_query":
        table = rng.choice(TABLES)
        sql = f"SELECT count(*) FROM {table} WHERE created_at > now() - interval '7 days'"
        return tool, {"sql": sql}, {"rows": [[rng.randint(10, 9000)]]}, f"how many {table} this week?"
    path = rng.choice(FILES)
    return (
        tool,
        {"path": path},
        f"# {path}\n\n" + "Lorem ipsum dolor sit amet. " * rng.randint(2, 8),
        f"summarise {path}",
    )


def _model_step(
    c: _Clock, provider: str, turn: int, tool_calls: list[dict[str, Any]], answer: str | None
) -> None:
    rng = c.rng
    usage = {
        "input_tokens": 200 + 150 * turn + rng.randint(0, 300),
        "output_tokens": rng.randint(12, 60) if tool_calls else rng.randint(40, 400),
    }
    c.step(
        "model",
        "llm",
        provider,
        rng.lognormvariate(6.6, 0.5),
        {"message_count": 2 + 2 * turn},
        {"content": answer or "", "tool_calls": tool_calls, "usage": usage},
    )


def _agent_run(
    rng: random.Random, start: datetime, provider: str, outcome: str
) -> tuple[str, list[dict[str, Any]]]:
    """One agent run: plan, model/tool rounds, answer, summary. Returns (name, entries)."""
    c = _Clock(rng, start)
    calls = [_tool_call(rng) for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4)))]
    question = (
        " Also, ".join(dict.fromkeys(q for *_, q in calls))
        if calls
        else rng.choice(("hello!", "tell me a joke", "what can you do?"))
    )
    c.step(
        "planner",
        "plan",
        "planner",
        rng.uniform(80, 600),
        {"request": question},
        {
            "steps": [f"{tool}({args})" for tool, args, *_ in calls] or ["answer directly"],
            "tools": [tool for tool, *_ in calls],
        },
    )
    for turn, (tool, args, out, _) in enumerate(calls):
        call_id = f"call_{rng.getrandbits(40):010x}"
        _model_step(c, provider, turn, [{"name": tool, "args": args, "id": call_id}], None)
        last = turn == len(calls) - 1
        if outcome == "failed" and last:
            c.step(
                "tools",
                "tool",
                tool,
                rng.uniform(2000, 30000),
                args,
                None,
                status="error",
                error=rng.choice(
                    (
                        "TimeoutError: tool did not answer within 30 s",
                        "ConnectionError: upstream returned 503",
                        "ValueError: could not parse arguments",
                    )
                ),
            )
            return question, c.entries
        if outcome == "interrupted" and last:
            c.step(
                "human_review",
                "interrupt",
                "approve_tool_call",
                rng.uniform(5, 20),
                {"tool": tool, "args": args},
                {"waiting_for": "approval"},
                status="interrupted",
            )
            return question, c.entries
        c.step("tools", "tool", tool, rng.lognormvariate(5.0, 1.0), args, out, tool_call_id=call_id)
    answer = f"Here is what I found about '{question}'."
    _model_step(c, provider, len(calls), [], answer)
    c.step(
        "summarise",
        "summary",
        "summarise",
        rng.uniform(300, 2000),
        {"entries": len(c.entries)},
        {"answer": answer, "tools": [tool for tool, *_ in calls], "errors": 0},
    )
    return question, c.entries


def _ingest_run(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """A document pipeline that records no timings: drawn in sequence order."""
    doc = rng.choice(FILES)
    entries = [
        {
            "node": "fetch",
            "name": "fetch",
            "input": {"path": doc},
            "output": {"bytes": rng.randint(900, 90000)},
        },
        {"node": "parse", "name": "markdown", "output": {"sections": rng.randint(2, 20)}},
    ]
    for i in range(rng.randint(2, 12)):
        entries.append({"node": "embed", "name": f"chunk-{i}", "output": {"dims": 768}})
    entries.append({"node": "store", "name": "upsert", "output": {"rows": len(entries) - 2}})
    return f"ingest {doc}", entries


def _big_run(rng: random.Random, start: datetime, provider: str, n: int) -> tuple[str, list[dict[str, Any]]]:
    """A long batch run of about ``n`` entries."""
    c = _Clock(rng, start)
    c.step(
        "planner",
        "plan",
        "planner",
        420.0,
        {"request": "reconcile every open invoice"},
        {"steps": ["list invoices", "check each against payments"], "tools": ["sql_query"]},
    )
    turn = 0
    while len(c.entries) < n - 2:
        tool, args, out, _ = _tool_call(rng)
        _model_step(c, provider, turn % 5, [{"name": tool, "args": args, "id": f"call_{turn}"}], None)
        failed = rng.random() < 0.01
        c.step(
            "tools",
            "tool",
            tool,
            rng.lognormvariate(4.5, 0.8),
            args,
            None if failed else out,
            status="error" if failed else "ok",
            **({"error": "ConnectionError: upstream returned 503"} if failed else {}),
        )
        turn += 1
    c.step(
        "summarise",
        "summary",
        "summarise",
        1800.0,
        {"entries": len(c.entries)},
        {"answer": f"{turn} invoices checked", "errors": sum(e["status"] == "error" for e in c.entries)},
    )
    return f"nightly invoice reconciliation ({len(c.entries):,} steps)", c.entries


def _start_time(rng: random.Random, now: datetime) -> datetime:
    """Mostly recent, mostly working hours; always within the last 30 days (the overview's
    default range), whatever the time of day: moving a time to another hour of its day can
    take it half a day further back."""
    days = min(rng.expovariate(1 / 9), 29.5)
    day = (now - timedelta(days=days)).replace(
        hour=rng.choice(range(7, 20)), minute=rng.randint(0, 59), second=rng.randint(0, 59)
    )
    return min(max(day, now - timedelta(days=29.5)), now - timedelta(minutes=10))


def _write(db: Any, entries: list[dict[str, Any]], **trace: Any) -> str:
    trace_id = str(uuid.uuid4())
    first = db.append_entries(entries[:CHUNK], new_trace_id=trace_id, **trace)
    for i in range(CHUNK, len(entries), CHUNK):
        db.append_entries(entries[i : i + CHUNK], trace_id=first.trace_id)
    return first.trace_id


def load_demo(
    db: Any, traces: int = 300, seed: int = 7, progress: Callable[[int], None] | None = None
) -> int:
    """Load ``traces`` demo traces (the last one long, 5,000 entries) and return how many.

    ``progress`` is called with the number written so far after each trace.
    """
    if traces < 1:
        return 0
    rng = random.Random(seed)
    now = datetime.now(UTC)
    times: list[tuple[str, datetime, datetime]] = []
    for i in range(traces):
        user = rng.choice(USERS)
        provider = rng.choice(PROVIDERS)
        thread = f"demo-{uuid.uuid4().hex[:12]}"
        if i == traces - 1 and traces > 1:
            start = now - timedelta(hours=rng.uniform(2, 20))
            name, entries = _big_run(rng, start, provider, BIG_TRACE_ENTRIES)
            status = "completed"
        elif rng.random() < 0.1:
            start = _start_time(rng, now)
            name, entries = _ingest_run(rng)
            status, provider = "completed", None
        else:
            outcome = rng.choices(("completed", "failed", "interrupted"), (80, 13, 7))[0]
            start = _start_time(rng, now)
            name, entries = _agent_run(rng, start, provider or "offline:rules", outcome)
            status = outcome
        trace_id = _write(
            db, entries, thread_id=thread, user_id=user, provider_id=provider, name=name, status=status
        )
        last = entries[-1].get("ended_at") or entries[-1].get("started_at")
        end = datetime.fromisoformat(last) if last else start + timedelta(seconds=len(entries))
        times.append((trace_id, start, max(end, start)))
        if progress:
            progress(i + 1)
    db.set_trace_times(times)
    return traces
