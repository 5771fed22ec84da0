"""tracedb.frames: the pandas frames the dashboard shows (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
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
    base: dict[str, object] = dict(
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
        total_duration_ms=1900.0,
    )
    base.update(kw)
    return TraceSummary(**base)  # type: ignore[arg-type]


def test_traces_frame_leads_with_what_a_person_scans_first() -> None:
    frame = frames.traces_frame(
        [summary(1), summary(2, name=None, status="failed", error_count=2), summary(3, error_count=1)],
        hints={summary(2).id: "TimeoutError: tool did not answer"},
    )
    assert list(frame.columns) == frames.TRACE_COLUMNS
    assert frames.TRACE_COLUMNS[:6] == ["name", "status", "entries", "duration", "updated", "user"]
    assert frame.loc[0, "status"] == "✓ completed" and frame.loc[0, "duration"] == "2.00 s"
    assert frame.loc[1, "name"] == "t2"  # no name: the thread
    assert frame.loc[1, "status"] == "✗ failed: TimeoutError: tool did not answer"
    assert frame.loc[2, "status"] == "⚠ completed, 1 error step"
    assert frame.loc[1, "errors"] == 2


def test_a_conversation_lasts_its_work_not_its_pauses() -> None:
    chat = summary(1, last_ended_at=T0 + timedelta(minutes=2), total_duration_ms=15.0, turns=3)
    row = frames.traces_frame([chat]).iloc[0]
    assert (
        row["duration"] == "15 ms" and row["work"] == "15 ms" and row["span"] == "2 min" and row["turns"] == 3
    )


def test_traces_frame_of_nothing_is_empty_with_columns() -> None:
    frame = frames.traces_frame([])
    assert frame.empty and list(frame.columns) == frames.TRACE_COLUMNS


def test_button_labels_keep_icon_syntax_as_text() -> None:
    assert frames.button_label(":material/delete: x") != ":material/delete: x"
    assert frames.button_label("plain") == "plain"


def test_entries_frame_types() -> None:
    frame = frames.entries_frame(columns([step(0, "planner", 0, 100), step(1, "model", None, None)]))
    assert str(frame["started_at"].dtype).startswith("datetime64") and frame["started_at"].dt.tz is not None
    assert frame["duration_ms"].dtype == np.float64
    assert frame["seq"].tolist() == [0, 1]
    assert frames.entries_frame({}).empty


def test_entries_frame_marks_running_nodes_and_finished_drops_them() -> None:
    running = step(2, "tools", 5, None)
    running["seq"] = None  # a node running right now, as entry_columns lists it
    frame = frames.entries_frame(columns([step(0, "planner", 0, 100), running]))
    assert frame["open"].tolist() == [False, True]
    assert frames.finished(frame)["seq"].tolist() == [0]


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


def test_pauses_between_turns_are_cut_to_a_gap_and_bands_tell_them() -> None:
    rows = [
        dict(step(0, "planner", 0, 100), turn=1),
        dict(step(1, "model", 0.2, 300), turn=1),
        dict(step(2, "planner", 120.0, 100), turn=2),  # two minutes later
        dict(step(3, "model", 120.2, 200), turn=2),
    ]
    tl, axis = frames.timeline_frame(frames.entries_frame(columns(rows)))
    assert axis == "time"
    assert tl["at"].tolist() == pytest.approx([0.0, 0.2, 120.0, 120.2])
    gap = frames.TURN_GAP * (0.5 + 0.4)  # a share of the turns' own spans
    assert tl["start"].tolist() == pytest.approx([0.0, 0.2, 0.5 + gap, 0.7 + gap])
    bands = frames.turn_bands(tl)
    assert bands["turn"].tolist() == [1, 2] and bands["steps"].tolist() == [2, 2]
    assert bands["work_ms"].tolist() == pytest.approx([400, 300])
    assert bands.loc[0, "idle_ms"] != bands.loc[0, "idle_ms"]  # nothing before the first turn
    assert bands.loc[1, "idle_ms"] == pytest.approx(119_500)


def test_entries_without_turns_are_one_turn() -> None:
    tl, _ = frames.timeline_frame(frames.entries_frame(columns([step(0, "a", 0, 10), step(1, "b", 5, 10)])))
    assert tl["turn"].tolist() == [1, 1] and tl["start"].tolist() == pytest.approx([0, 5])
    assert len(frames.turn_bands(tl)) == 1


def test_conversation_from_entries() -> None:
    rows = [
        {"seq": 0, "data": {"kind": "plan", "input": {"request": "what is 2 + 2?"}}},
        {
            "seq": 1,
            "data": {"kind": "llm", "output": {"content": "", "tool_calls": [{"name": "calculator"}]}},
        },
        {"seq": 2, "data": {"kind": "tool", "output": "4"}},
        {"seq": 3, "data": {"kind": "llm", "output": {"content": "2 + 2 = 4", "tool_calls": []}}},
        {"seq": 4, "data": {"kind": "summary", "output": {"answer": "2 + 2 = 4"}}},
    ]
    assert frames.conversation_from_entries(rows) == [("user", "what is 2 + 2?"), ("assistant", "2 + 2 = 4")]


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
