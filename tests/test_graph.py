"""dashboard/graph.py: the recorded graph read defensively, laid out in layers, drawn with
what each node did."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard import colours, frames, graph

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AGENT = {
    "nodes": [
        {"id": "__start__", "name": "__start__", "type": "runnable"},
        {"id": "planner", "name": "planner", "type": "runnable"},
        {"id": "model", "name": "model", "type": "runnable"},
        {"id": "tools", "name": "tools", "type": "runnable"},
        {"id": "summarise", "name": "summarise", "type": "runnable"},
        {"id": "__end__", "name": "__end__", "type": None},
    ],
    "edges": [
        {"source": "__start__", "target": "planner"},
        {"source": "model", "target": "summarise", "conditional": True},
        {"source": "model", "target": "tools", "conditional": True},
        {"source": "planner", "target": "model"},
        {"source": "tools", "target": "model"},
        {"source": "summarise", "target": "__end__"},
    ],
}


def entries(rows: list[tuple[str, float | None, str]], running: list[str] = ()) -> object:
    cols = {name: [] for name in frames.ENTRY_COLUMNS}
    for i, (node, ms, status) in enumerate(rows):
        values = {
            "seq": i,
            "node": node,
            "status": status,
            "duration_ms": ms,
            "started_at": T0 + timedelta(seconds=i),
        }
        for name in frames.ENTRY_COLUMNS:
            cols[name].append(values.get(name))
    for node in running:
        values = {"seq": None, "node": node, "status": "running", "started_at": T0 + timedelta(seconds=100)}
        for name in frames.ENTRY_COLUMNS:
            cols[name].append(values.get(name))
    return frames.entries_frame(cols)


def test_the_agent_graph_is_layered_with_its_loop_left_out() -> None:
    drawn = graph.graph_of({"graph": AGENT})
    placed = graph.layers(drawn)
    assert {n: layer for n, (layer, _) in placed.items()} == {
        "__start__": 0,
        "planner": 1,
        "model": 2,
        "tools": 3,
        "summarise": 3,
        "__end__": 4,
    }
    assert graph._back_edges(drawn) == {("tools", "model")}
    lr, tb = graph.positions(drawn, "LR"), graph.positions(drawn, "TB")
    assert lr["planner"] == (1.0, 0.0) and tb["planner"] == (-0.0, -1.0)
    assert {lr["tools"][1], lr["summarise"][1]} == {0.5, -0.5}


def test_the_layout_of_langgraphs_own_json_and_of_a_subgraph() -> None:
    raw = {
        "nodes": [
            {"id": "__start__", "data": {"name": "__start__"}},
            {"id": "outer", "data": {"name": "outer"}},
            {"id": "outer:inner", "data": {"name": "inner"}},
            {"id": "__end__"},
        ],
        "edges": [
            {"source": "__start__", "target": "outer"},
            {"source": "outer", "target": "outer:inner", "data": "go"},
            {"source": "outer:inner", "target": "__end__"},
        ],
    }
    drawn = graph.graph_of({"graph": raw})
    assert drawn.nodes["outer:inner"] == "inner" and drawn.edges[1] == ("outer", "outer:inner", False, "go")
    facts = graph.node_facts(drawn, entries([("inner", 10.0, "ok"), ("inner", 30.0, "error")]), T0)
    inner = facts.set_index("node").loc["outer:inner"]
    assert (
        inner["lane"] == "inner" and inner["steps"] == 2 and inner["errors"] == 1 and inner["p50_ms"] == 20.0
    )


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"graph": "not a graph"},
        {"graph": {"nodes": "x"}},
        {"graph": {"nodes": [1, None, {"no": "id"}]}},
        {"graph": {"nodes": [{"id": str(i)} for i in range(graph.MAX_NODES + 1)]}},
        [1, 2],
    ],
)
def test_metadata_without_a_drawable_graph_gives_none(metadata) -> None:
    assert graph.graph_of(metadata) is None


def test_bad_edges_are_left_out_and_a_cycle_without_start_is_drawn() -> None:
    raw = {
        "nodes": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "b", "target": "a"},
            {"source": "a", "target": "zz"},
            7,
        ],
    }
    drawn = graph.graph_of({"graph": raw})
    assert len(drawn.edges) == 2
    placed = graph.layers(drawn)
    assert placed["a"][0] != placed["b"][0]
    graph.graph_figure(drawn, graph.node_facts(drawn, entries([]), T0))


def test_nodes_carry_their_steps_errors_and_running_time() -> None:
    drawn = graph.graph_of({"graph": AGENT})
    rows = [("planner", 5.0, "ok"), ("model", 100.0, "ok"), ("tools", 50.0, "error"), ("model", 300.0, "ok")]
    facts = graph.node_facts(drawn, entries(rows, running=["model"]), T0 + timedelta(seconds=112))
    by = facts.set_index("node")
    assert by.loc["model", "steps"] == 2 and by.loc["model", "p50_ms"] == 200.0
    assert by.loc["model", "running_ms"] == 12_000.0 and by.loc["tools", "errors"] == 1
    assert by.loc["summarise", "steps"] == 0
    fig = graph.graph_figure(drawn, facts, "LR", chosen="tools")
    nodes = fig.data[-1]
    assert list(nodes.customdata) == list(drawn.nodes)
    outline = dict(zip(nodes.customdata, nodes.marker.line.color, strict=True))
    assert outline["model"] == colours.BLUE and outline["tools"] == colours.VERMILLION
    label = dict(zip(nodes.customdata, nodes.text, strict=True))
    assert label["model"] == "<b>model</b><br>2 steps · p50 200 ms<br>● running 12.0 s"
    assert label["tools"].endswith("1 error")
    # conditional edges are dotted, the others solid
    assert sorted(t.line.dash for t in fig.data[:-1]) == ["dot", "solid"]


def test_names_are_escaped_for_plotly() -> None:
    raw = {
        "nodes": [{"id": "<img src=x onerror=alert(1)>", "name": '<b>"x"</b>'}, {"id": "b"}],
        "edges": [{"source": "<img src=x onerror=alert(1)>", "target": "b", "label": "<script>"}],
    }
    drawn = graph.graph_of({"graph": raw})
    fig = graph.graph_figure(drawn, graph.node_facts(drawn, entries([]), T0))
    figure = fig.to_dict()
    shown = json.dumps(
        [t.get("text") for t in figure["data"]]
        + [t.get("hovertext") for t in figure["data"]]
        + [a.get("text") for a in figure["layout"]["annotations"]]
    )
    assert "<img" not in shown and "<script>" not in shown and '<b>\\"x\\"' not in shown
    assert '&lt;b&gt;\\"x\\"&lt;/b&gt;' in shown
    # the id is data, never shown: it comes back from a click as it is
    assert fig.data[-1].customdata[0] == "<img src=x onerror=alert(1)>"


def test_the_agent_graph_as_the_recorder_stores_it(tmp_path: Path) -> None:
    from agent import build_graph, get_model

    compiled = build_graph(get_model(""), None)
    drawn = graph.graph_of({"graph": compiled.get_graph().to_json()})
    assert set(drawn.nodes) == {"__start__", "planner", "model", "tools", "summarise", "__end__"}
    assert ("model", "tools", True, None) in drawn.edges
