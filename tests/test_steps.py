"""What the recorder reads from a run besides its entries: running nodes, the checkpoint a
step started from, the graph's structure; on real graphs and a real PostgreSQL."""

from __future__ import annotations

import operator
import threading
import time
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from tracedb import AutomationTraceDB
from tracedb.recorder import TraceRecorder


class State(TypedDict, total=False):
    x: int
    automation_trace: Annotated[list, operator.add]


class SubState(TypedDict, total=False):
    x: int


def _sleeper(name: str, seconds: float):
    def node(state: State) -> dict[str, Any]:
        time.sleep(seconds)
        return {"automation_trace": [{"node": name, "kind": "tool", "name": name}]}

    return node


def _fan_graph(checkpointer: Any = None, pause: float = 0.0):
    """fan -> (left | right, both sleeping ``pause``) -> child (a subgraph whose inner node
    sleeps 0.8 ``pause``)."""
    sub = StateGraph(SubState)
    sub.add_node("inner", lambda s: (time.sleep(0.8 * pause), {"x": s["x"] + 1})[1])
    sub.add_edge(START, "inner")
    g = StateGraph(State)
    g.add_node("fan", lambda s: {"x": 1, "automation_trace": [{"node": "fan"}]})
    g.add_node("left", _sleeper("left", pause))
    g.add_node("right", _sleeper("right", pause))
    g.add_node("child", sub.compile())
    g.add_edge(START, "fan")
    g.add_edge("fan", "left")
    g.add_edge("fan", "right")
    g.add_edge(["left", "right"], "child")
    g.add_edge("child", END)
    return g.compile(checkpointer=checkpointer)


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"steps-{uuid.uuid4().hex[:8]}"}}


def _running(store: AutomationTraceDB, trace_id: str | None) -> list[dict[str, Any]]:
    if trace_id is None:
        return []
    return [r for r in store.get_entries(trace_id) if r["seq"] is None]


def test_running_nodes_are_seen_by_another_store_while_they_run(db, db_url):
    graph = _fan_graph(InMemorySaver(), pause=1.0)
    rec = TraceRecorder(db, "steps")
    done = threading.Event()
    errors: list[BaseException] = []

    def record() -> None:
        try:
            for _ in rec.stream(graph, {"x": 0}, _config()):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    seen: list[list[dict[str, Any]]] = []
    with AutomationTraceDB(db_url) as other:
        worker = threading.Thread(target=record)
        worker.start()
        while not done.is_set():
            seen.append(_running(other, rec.trace_id))
            time.sleep(0.05)
        worker.join()
        assert not errors
        assert _running(other, rec.trace_id) == []
        assert other.get_summary(rec.trace_id).running == []
        stored = other.get_entries(rec.trace_id)
    assert {frozenset(r["node"] for r in rows) for rows in seen} >= {  # parallel, and nested
        frozenset({"left", "right"}),
        frozenset({"child", "inner"}),
    }
    for rows in seen:
        for row in rows:
            assert row["status"] == "running" and row["started_at"] is not None
            assert row["checkpoint_id"]  # the graph has a checkpointer
            if row["node"] == "inner":
                assert row["data"]["namespace"].startswith("child:")
    # the stored trace is the run's entries and nothing else
    nodes = [r["node"] for r in stored]
    assert nodes[0] == "fan" and set(nodes[1:3]) == {"left", "right"} and nodes[3:] == ["inner", "child"]
    assert stored[1]["data"] in (
        {"node": "left", "kind": "tool", "name": "left"},
        {"node": "right", "kind": "tool", "name": "right"},
    )
    assert stored[3]["data"]["namespace"].startswith("child:") and stored[3]["duration_ms"] >= 700


def test_checkpoint_ids_are_those_the_steps_started_from(db):
    class Loop(TypedDict, total=False):
        n: int
        automation_trace: Annotated[list, operator.add]

    g = StateGraph(Loop)
    g.add_node("step", lambda s: {"n": s["n"] + 1, "automation_trace": [{"node": "step", "n": s["n"]}]})
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: END if s["n"] >= 3 else "step")
    graph = g.compile(checkpointer=InMemorySaver())
    config = _config()
    rec = TraceRecorder(db, "steps")
    list(rec.stream(graph, {"n": 0}, config))
    history = list(graph.get_state_history(config))[::-1]
    started_from = [h.config["configurable"]["checkpoint_id"] for h in history if h.next == ("step",)]
    rows = db.get_entries(rec.trace_id)
    assert [r["checkpoint_id"] for r in rows] == started_from
    assert [r["data"] for r in rows] == [{"node": "step", "n": n} for n in range(3)]  # data untouched


def test_no_checkpointer_no_checkpoint_ids(db):
    graph = _fan_graph()
    rec = TraceRecorder(db, "steps")
    list(rec.stream(graph, {"x": 0}, _config()))
    assert {r["checkpoint_id"] for r in db.get_entries(rec.trace_id)} == {None}


def test_resumed_parallel_branch_is_stored_once(db):
    def ask(state: State) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"automation_trace": [{"node": "ask", "answer": answer}]}

    g = StateGraph(State)
    g.add_node("a", lambda s: {"x": 1})
    g.add_node("b", lambda s: {"automation_trace": [{"node": "b"}]})
    g.add_node("ask", ask)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = _config()
    rec = TraceRecorder(db, "steps")
    list(rec.stream(graph, {"x": 0}, config, stream_mode="updates"))
    assert db.get_summary(rec.trace_id).status == "interrupted"
    assert _running(db, rec.trace_id) == []
    # on resume LangGraph repeats b's saved update: it was stored by the first run
    list(rec.stream(graph, Command(resume="yes"), config, stream_mode="updates"))
    data = [r["data"] for r in db.get_entries(rec.trace_id)]
    nodes = [d["node"] for d in data]  # b and the interrupt ran in parallel: either order
    assert nodes[0] == "a" and sorted(nodes[1:3]) == ["__interrupt__", "b"] and nodes[3] == "ask"
    assert data[-1] == {"node": "ask", "answer": "yes"}
    assert db.get_summary(rec.trace_id).status == "completed"


def test_a_failing_node_is_running_until_it_fails(db, db_url):
    def boom(state: State) -> dict[str, Any]:
        time.sleep(0.6)
        raise ValueError("the tool broke")

    g = StateGraph(State)
    g.add_node("first", lambda s: {"automation_trace": [{"node": "first"}]})
    g.add_node("boom", boom)
    g.add_edge(START, "first")
    g.add_edge("first", "boom")
    graph = g.compile(checkpointer=InMemorySaver())
    rec = TraceRecorder(db, "steps")
    seen: list[set[str]] = []
    outcome: list[BaseException] = []

    def record() -> None:
        try:
            list(rec.stream(graph, {"x": 0}, _config()))
        except ValueError as exc:
            outcome.append(exc)

    with AutomationTraceDB(db_url) as other:
        worker = threading.Thread(target=record)
        worker.start()
        while worker.is_alive():
            seen.append({r["node"] for r in _running(other, rec.trace_id)})
            time.sleep(0.05)
        worker.join()
        assert outcome and {"boom"} in seen
        summary = other.get_summary(rec.trace_id)
        rows = other.get_entries(rec.trace_id)
    assert summary.status == "failed" and summary.running == []
    assert [r["node"] for r in rows] == ["first", "boom"]
    assert rows[-1]["status"] == "error" and rows[-1]["checkpoint_id"]


def test_the_graph_is_stored_once_per_trace(db):
    graph = _fan_graph(InMemorySaver())
    rec = TraceRecorder(db, "steps")
    config = _config()
    list(rec.stream(graph, {"x": 0}, config))
    shape = db.get_summary(rec.trace_id).metadata["graph"]
    ids = {n["id"] for n in shape["nodes"]}
    assert {"__start__", "fan", "left", "right", "child:inner", "__end__"} <= ids
    edges = {(e["source"], e["target"]) for e in shape["edges"]}
    assert {("fan", "left"), ("fan", "right"), ("__start__", "fan")} <= edges
    assert shape == {"nodes": shape["nodes"], "edges": shape["edges"]}
    list(rec.stream(graph, {"x": 0}, config))  # a second turn: same trace, same picture
    assert db.get_summary(rec.trace_id).metadata["graph"] == shape


@pytest.mark.parametrize("record_graph", [False])
def test_recording_the_graph_can_be_turned_off(db, record_graph):
    rec = TraceRecorder(db, "steps", record_graph=record_graph, metadata={"purpose": "test"})
    list(rec.stream(_fan_graph(), {"x": 0}, _config()))
    assert db.get_summary(rec.trace_id).metadata == {"purpose": "test"}


def test_tasks_of_one_node_sent_in_parallel_each_show_and_end(db, db_url):
    from langgraph.types import Send

    def work(arg: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.5)
        return {"automation_trace": [{"node": "work", "n": arg["n"]}]}

    g = StateGraph(State)
    g.add_node("work", work)
    g.add_conditional_edges(START, lambda s: [Send("work", {"n": n}) for n in range(3)], ["work"])
    graph = g.compile()
    rec = TraceRecorder(db, "steps")
    worker = threading.Thread(target=lambda: list(rec.stream(graph, {"x": 0}, _config())))
    counts = []
    with AutomationTraceDB(db_url) as other:
        worker.start()
        while worker.is_alive():
            counts.append(sum(r["node"] == "work" for r in _running(other, rec.trace_id)))
            time.sleep(0.05)
        worker.join()
        assert _running(other, rec.trace_id) == []
        assert sorted(r["data"]["n"] for r in other.get_entries(rec.trace_id)) == [0, 1, 2]
    assert max(counts) == 3
