"""tracedb.frames: the pandas frames the dashboard shows (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from dashboard import frames
from tracedb.models import TraceSummary

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def columns(rows: list[dict]) -> dict[str, list]:
    return {name: [r.get(name) for r in rows] for name in frames.ENTRY_COLUMNS}


def step(
    seq: int,
    node: str,
    start_s: float | None = None,
    ms: float | None = None,
    *,
    end: bool = True,
    **kw: object,
) -> dict:
    started = T0 + timedelta(seconds=start_s) if start_s is not None else None
    ended = started + timedelta(milliseconds=ms) if started is not None and ms is not None and end else None
    return {
        "seq": seq,
        "node": node,
        "kind": kw.get("kind", "llm"),
        "name": kw.get("name", f"s{seq}"),
        "status": kw.get("status", "ok"),
        "started_at": started,
        "ended_at": ended,
        "duration_ms": ms,
    }


def summary(i: int, **kw: object) -> TraceSummary:
    base = dict(
        id=f"00000000-0000-4000-8000-{i:012d}",
        user_id="ana",
        provider_id=None,
        thread_id=f"t{i}",
        name=f"trace {i}",
        status="completed",
        entry_count=3,
        created_at=T0,
        updated_at=T0,
        first_started_at=T0,
        last_ended_at=T0 + timedelta(seconds=2),
    )
    base.update(kw)
    return TraceSummary(**base)  # type: ignore[arg-type]


def test_traces_frame_has_the_table_columns_and_thread_links() -> None:
    frame = frames.traces_frame([summary(1), summary(2, name=None, status="failed", error_count=2)])
    assert list(frame.columns) == [
        "open",
        "name",
        "thread",
        "user",
        "status",
        "entries",
        "errors",
        "duration_s",
        "created",
        "updated",
        "id",
    ]
    assert frame.loc[0, "open"] == "thread?trace=00000000-0000-4000-8000-000000000001"
    assert frame.loc[0, "duration_s"] == pytest.approx(2.0)
    assert frame.loc[1, "name"] == "" and frame.loc[1, "errors"] == 2


def test_traces_frame_of_nothing_is_empty_with_columns() -> None:
    frame = frames.traces_frame([])
    assert frame.empty and "open" in frame.columns


def test_entries_frame_types() -> None:
    frame = frames.entries_frame(columns([step(0, "planner", 0, 100), step(1, "model", None, None)]))
    assert str(frame["started_at"].dtype).startswith("datetime64") and frame["started_at"].dt.tz is not None
    assert frame["duration_ms"].dtype == np.float64
    assert frame["seq"].tolist() == [0, 1]
    assert frames.entries_frame({}).empty


def test_timeline_uses_times_and_places_untimed_steps_after_the_previous_one() -> None:
    rows = [
        step(0, "planner", 0, 500),
        step(1, "model", 1.0, 2000),
        step(2, "tools", None, 300),
        step(3, "tools", None, None),
        step(4, "summarise", 4.0, None, end=False),
    ]
    tl, axis = frames.timeline_frame(frames.entries_frame(columns(rows)))
    assert axis == "time"
    assert tl["start"].tolist() == pytest.approx([0.0, 1.0, 3.0, 3.3, 4.0])
    assert tl["end"].tolist() == pytest.approx([0.5, 3.0, 3.3, 3.3, 4.0])
    assert tl["lane"].tolist() == ["planner", "model", "tools", "tools", "summarise"]


def test_timeline_with_durations_only_is_cumulative() -> None:
    rows = [step(i, "n", None, 1000.0) for i in range(3)]
    tl, axis = frames.timeline_frame(frames.entries_frame(columns(rows)))
    assert axis == "time"
    assert tl["start"].tolist() == pytest.approx([0, 1, 2])


def test_timeline_without_any_timing_is_in_sequence_order() -> None:
    rows = [{"seq": i, "node": None, "kind": None, "name": f"step {i}"} for i in range(4)]
    tl, axis = frames.timeline_frame(frames.entries_frame(columns(rows)))
    assert axis == "step"
    assert tl["start"].tolist() == [0, 1, 2, 3]
    assert tl["lane"].tolist() == ["step 0", "step 1", "step 2", "step 3"]


def test_timeline_of_ten_thousand_steps_is_quick() -> None:
    import time

    rows = [step(i, ("model", "tools")[i % 2], i * 0.1, 80.0) for i in range(10_000)]
    entries = frames.entries_frame(columns(rows))
    began = time.perf_counter()
    tl, _ = frames.timeline_frame(entries)
    frames.node_stats(entries)
    assert time.perf_counter() - began < 0.5
    assert len(tl) == 10_000


def test_node_stats() -> None:
    rows = [
        step(0, "model", 0, 100),
        step(1, "tools", 0.2, 300, status="error"),
        step(2, "model", 1, 300),
        step(3, "tools", 2, None),
    ]
    stats = frames.node_stats(frames.entries_frame(columns(rows))).set_index("node")
    assert stats.loc["model", "steps"] == 2 and stats.loc["model", "total_ms"] == 400
    assert stats.loc["model", "p50_ms"] == pytest.approx(200)
    assert stats.loc["tools", "errors"] == 1
    assert stats["share"].sum() == pytest.approx(1.0)
    assert list(stats.index) == ["model", "tools"]
    assert frames.node_stats(frames.entries_frame({})).empty


def test_filter_entries_and_choices() -> None:
    entries = frames.entries_frame(
        columns(
            [
                step(0, "model", 0, 1),
                step(1, "tools", 1, 1, kind="tool"),
                step(2, "tools", 2, 1, kind="tool", status="error"),
            ]
        )
    )
    assert frames.filter_entries(entries, nodes=["tools"])["seq"].tolist() == [1, 2]
    assert frames.filter_entries(entries, nodes=["tools"], statuses=["ok"])["seq"].tolist() == [1]
    assert len(frames.filter_entries(entries)) == 3
    assert frames.choices(entries, "kind") == ["llm", "tool"]


def test_previews_pick_input_and_output_and_cut_them() -> None:
    rows = [
        {"seq": 0, "data": {"input": {"q": "x"}, "output": "y" * 500}},
        {"seq": 1, "data": {"args": [1, 2], "result": None, "error": "boom"}},
        {"seq": 2, "data": {}},
    ]
    previews = frames.entry_previews(rows)
    assert previews.loc[0, "input"] == '{"q": "x"}'
    assert len(previews.loc[0, "output"]) == frames.PREVIEW_CHARS and previews.loc[0, "output"].endswith("…")
    assert previews.loc[1, "input"] == "[1, 2]" and previews.loc[1, "output"] == "boom"
    assert previews.loc[2, "input"] == "" and previews.loc[2, "output"] == ""


def entry(seq: int, node: str, name: str, inp: object = None, out: object = None, ms: float = 100.0) -> dict:
    return {"seq": seq, "data": {"node": node, "name": name, "input": inp, "output": out, "duration_ms": ms}}


def test_align_traces_marks_equal_changed_and_missing_steps() -> None:
    a = [
        entry(0, "planner", "plan", "q", "p"),
        entry(1, "model", "m", 1, "call calc"),
        entry(2, "tools", "calculator", {"e": "1+1"}, "2"),
        entry(3, "model", "m", 2, "answer"),
    ]
    b = [
        entry(0, "planner", "plan", "q", "p"),
        entry(1, "model", "m", 1, "call calc"),
        entry(2, "tools", "calculator", {"e": "1+2"}, "3", ms=900),
        entry(3, "tools", "search", "x", "y"),
        entry(4, "model", "m", 2, "answer"),
    ]
    aligned = frames.align_traces(a, b)
    assert aligned["op"].tolist() == ["equal", "equal", "changed", "only B", "equal"]
    changed = aligned.iloc[2]
    assert changed["differs"] == "input, output, duration"
    assert changed["delta_ms"] == pytest.approx(800)
    assert pd.isna(aligned.iloc[3]["a_seq"]) and aligned.iloc[3]["b_seq"] == 3
    assert frames.alignment_counts(aligned) == {"equal": 3, "changed": 1, "only A": 0, "only B": 1}


def test_align_traces_pairs_replaced_steps_and_keeps_leftovers() -> None:
    a = [entry(0, "tools", "search"), entry(1, "tools", "fetch")]
    b = [entry(0, "tools", "calculator")]
    aligned = frames.align_traces(a, b)
    assert aligned["op"].tolist() == ["changed", "only A"]
    assert aligned.iloc[0]["differs"].startswith("node")
    assert frames.align_traces([], []).empty


def test_per_day_and_error_rate() -> None:
    day1, day2 = T0, T0 + timedelta(days=1)
    rows = [
        {"day": day1, "status": "completed", "traces": 3, "with_errors": 1, "entries": 30},
        {"day": day1, "status": "failed", "traces": 1, "with_errors": 1, "entries": 4},
        {"day": day2, "status": "completed", "traces": 2, "with_errors": 0, "entries": 9},
    ]
    per_day = frames.per_day_frame(rows)
    daily = frames.error_rate_frame(per_day)
    assert daily["traces"].tolist() == [4, 2]
    assert daily["error_rate"].tolist() == pytest.approx([0.5, 0.0])
    assert frames.error_rate_frame(frames.per_day_frame([])).empty
