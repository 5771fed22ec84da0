"""dashboard/charts.py: the timeline switches to WebGL for big traces and escapes trace text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go

from dashboard import charts, frames
from dashboard import colours as colours_module

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def timeline(n: int, **overrides: object) -> tuple[pd.DataFrame, str]:
    rows = {name: [] for name in frames.ENTRY_COLUMNS}
    for i in range(n):
        started = T0 + timedelta(seconds=i)
        values = {
            "seq": i,
            "node": ("model", "tools")[i % 2],
            "kind": ("llm", "tool")[i % 2],
            "name": f"step {i}",
            "status": "error" if i % 7 == 0 else "ok",
            "started_at": started,
            "ended_at": started + timedelta(milliseconds=400),
            "duration_ms": 400.0,
            "turn": 1,
        }
        values.update({k: v for k, v in overrides.items() if i == 0})
        for name in frames.ENTRY_COLUMNS:
            rows[name].append(values.get(name))
    return frames.timeline_frame(frames.entries_frame(rows))


def test_small_timelines_are_svg_bars_one_trace_per_colour() -> None:
    tl, axis = timeline(50)
    fig = charts.timeline_figure(tl, axis, "kind")
    assert {t.type for t in fig.data} == {"bar"}
    assert sorted(t.name for t in fig.data) == ["llm", "tool"]
    assert sum(len(t.x) for t in fig.data) == 50
    assert list(fig.layout.yaxis.categoryarray) == ["tools", "model"]


def test_big_timelines_are_webgl_segments_joined_below_a_pixel() -> None:
    tl, axis = timeline(charts.WEBGL_ABOVE + 1)
    fig = charts.timeline_figure(tl, axis, "status")
    assert {t.type for t in fig.data} == {"scattergl"}
    colours = {t.name: t.line.color for t in fig.data}
    assert colours["error"] == charts.STATUS_COLOURS["error"] == colours_module.VERMILLION
    # the rare value is drawn last, on top
    assert fig.data[-1].name == "error"
    # start, end and a gap per bar; a bar holds one step or several that would share a pixel
    bars = sum(len(t.x) for t in fig.data) // 3
    assert bars <= charts.WEBGL_ABOVE + 1
    held = sum(int(str(text).split(" steps")[0]) for t in fig.data for text in t.hovertext[::3])
    assert held == charts.WEBGL_ABOVE + 1


def test_merge_steps_joins_only_close_steps_of_one_row_and_value() -> None:
    tl = pd.DataFrame(
        {
            "seq": [0, 1, 2, 3, 4],
            "lane": ["a", "a", "a", "b", "a"],
            "kind": ["x", "x", "y", "x", "x"],
            "start": [0.0, 1.05, 1.1, 0.0, 5.0],
            "end": [1.0, 2.0, 1.2, 9.0, 6.0],
        }
    )
    bars = frames.merge_steps(tl, "kind", tolerance=0.1)
    assert bars[["lane", "value", "start", "end", "steps", "first_seq", "last_seq"]].values.tolist() == [
        ["a", "x", 0.0, 2.0, 2, 0, 1],
        ["a", "x", 5.0, 6.0, 1, 4, 4],
        ["a", "y", 1.1, 1.2, 1, 2, 2],
        ["b", "x", 0.0, 9.0, 1, 3, 3],
    ]


def test_trace_text_is_escaped_for_plotly() -> None:
    tl, axis = timeline(3, name="<script>alert(1)</script>", node="<b>x</b>")
    fig = charts.timeline_figure(tl, axis, "kind")
    shown = " ".join(str(t.hovertext) + " " + str(list(t.y)) for t in fig.data)
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "<b>x</b>" not in shown and "&lt;b&gt;x&lt;/b&gt;" in shown


def test_quotes_in_names_are_shown_as_typed_not_as_entities() -> None:
    # Plotly decodes &amp; &lt; &gt; but not &quot;: an escaped quote would show as "&quot;".
    tl, axis = timeline(3, name='say "hi" & it\'s <ok>', node='ask "why"')
    for big in (False, True):
        fig = charts.timeline_figure(tl, axis, "node", webgl_above=0 if big else 1000)
        shown = " ".join(str(list(t.hovertext)) + " " + str(t.name) for t in fig.data)
        assert "&quot;" not in shown and "&#x27;" not in shown
        assert 'ask "why"' in shown
        assert "&lt;ok&gt;" in shown or big
    lanes = list(charts.timeline_figure(tl, axis, "kind").layout.yaxis.categoryarray)
    assert 'ask "why"' in lanes


def test_empty_timeline_is_an_empty_figure() -> None:
    tl, axis = timeline(0)
    assert len(charts.timeline_figure(tl, axis).data) == 0


def test_overview_figures_accept_empty_frames() -> None:
    empty_day = frames.per_day_frame([])
    assert len(charts.traces_per_day_figure(empty_day).data) == 0
    charts.errors_per_day_figure(frames.error_rate_frame(empty_day))
    charts.latency_figure(pd.DataFrame(columns=["bucket", "p50_ms", "p95_ms", "n"]), "empty")
    nodes = pd.DataFrame(columns=["node", "entries", "errors", "p50_ms", "p95_ms"])
    charts.node_entries_figure(nodes)
    charts.node_duration_figure(nodes)
    charts.users_figure(pd.DataFrame(columns=["user_id", "traces", "failed"]))


def test_colours_are_the_same_in_every_trace() -> None:
    first = charts.timeline_figure(*timeline(10), "kind")
    second = charts.timeline_figure(*timeline(3, kind="llm"), "kind")
    assert {t.name: t.marker.color for t in first.data} == {
        "llm": colours_module.BLUE,
        "tool": colours_module.ORANGE,
    }
    assert {t.name: t.marker.color for t in second.data}["llm"] == colours_module.BLUE


def test_turns_are_bands_on_the_timeline() -> None:
    rows = {name: [] for name in frames.ENTRY_COLUMNS}
    for i, (turn, start) in enumerate([(1, 0.0), (1, 0.5), (2, 300.0), (2, 300.4)]):
        values = {
            "seq": i,
            "node": "model",
            "kind": "llm",
            "name": f"s{i}",
            "status": "ok",
            "started_at": T0 + timedelta(seconds=start),
            "ended_at": T0 + timedelta(seconds=start + 0.2),
            "duration_ms": 200.0,
            "turn": turn,
        }
        for name in frames.ENTRY_COLUMNS:
            rows[name].append(values.get(name))
    tl, axis = frames.timeline_frame(frames.entries_frame(rows))
    fig = charts.timeline_figure(tl, axis, "kind", bands=frames.turn_bands(tl))
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["turn 1", "turn 2 · 4 min 59 s later"]
    assert [a.yshift for a in fig.layout.annotations] == [0, 0]  # far apart: one line
    assert "pauses between turns cut out" in fig.layout.xaxis.title.text
    assert max(max(t.base + t.x) for t in fig.data) < 2.0  # five minutes of pause are not drawn


def test_labels_of_short_turns_do_not_run_into_each_other() -> None:
    # a 50 ms turn, then a turn of 10 s, then one more: turn 2's label would start where
    # turn 1's is still being written
    bands = pd.DataFrame(
        {
            "turn": [1, 2, 3],
            "start": [0.0, 0.05, 8.0],
            "end": [0.05, 7.9, 10.0],
            "idle_ms": [0.0, 53.0, 2000.0],
        }
    )
    fig = go.Figure()
    charts._turn_bands(fig, bands)
    shifts = {a.text: a.yshift for a in fig.layout.annotations}
    assert shifts == {"turn 1": 0, "turn 2 · 53 ms later": -14, "turn 3 · 2.00 s later": 0}


def test_nodes_without_timings_are_left_out_of_the_duration_chart() -> None:
    nodes = pd.DataFrame(
        {
            "node": ["model", "embed"],
            "entries": [5, 3],
            "errors": [0, 0],
            "p50_ms": [10.0, None],
            "p95_ms": [20.0, None],
        }
    )
    fig = charts.node_duration_figure(nodes)
    assert [list(t.y) for t in fig.data] == [["model"], ["model"]]
