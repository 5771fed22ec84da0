"""TraceRecorder with real LangGraph graphs on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import operator
import re
import time
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from tracedb import TraceFilter
from tracedb.recorder import TraceRecorder


class LoopState(TypedDict, total=False):
    n: int
    limit: int
    automation_trace: Annotated[list, operator.add]


def _loop_graph(delay: float = 0.0):
    def step(state: LoopState) -> dict[str, Any]:
        if delay:
            time.sleep(delay)
        n = state["n"]
        return {
            "n": n + 1,
            "automation_trace": [{"node": "step", "kind": "tool", "name": f"s{n}", "i": n, "status": "ok"}],
        }

    g = StateGraph(LoopState)
    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: END if s["n"] >= s["limit"] else "step")
    return g.compile()


def _config(**extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"rec-{uuid.uuid4().hex[:8]}"}, "recursion_limit": 10_000, **extra}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stream_mode": "updates"},
        {"stream_mode": "values"},
        {"stream_mode": ["values", "custom"]},
        {"stream_mode": ["updates", "values"], "subgraphs": True},
        {"stream_mode": "updates", "version": "v2"},
    ],
)
def test_yields_exactly_what_graph_stream_yields(db, kwargs):
    graph = _loop_graph()
    inputs = {"n": 0, "limit": 5}
    expected = list(graph.stream(inputs, _config(), **kwargs))
    rec = TraceRecorder(db, "rec-user")
    got = list(rec.stream(graph, inputs, _config(), **kwargs))
    assert got == expected
    trace = db.load_trace_by_id(rec.trace_id)
    assert [e["i"] for e in trace.trace_data] == list(range(5))
    assert trace.status == "completed"


def test_two_hundred_steps_recorded_in_order(db):
    graph = _loop_graph()
    rec = TraceRecorder(db, "rec-user", provider_id="offline", name="long run")
    config = _config()
    for _ in rec.stream(graph, {"n": 0, "limit": 200}, config, stream_mode="updates"):
        pass
    report = rec.flush()
    assert report.ok and report.written == 200
    trace = db.load_trace_by_thread(config["configurable"]["thread_id"])
    assert trace.id == rec.trace_id and trace.name == "long run" and trace.provider_id == "offline"
    assert [e["i"] for e in trace.trace_data] == list(range(200))


def test_every_turn_of_a_thread_goes_into_one_trace(db):
    graph = _loop_graph()
    rec = TraceRecorder(db, "rec-user")
    config = _config()
    list(rec.stream(graph, {"n": 0, "limit": 3}, config))
    first = rec.trace_id
    list(TraceRecorder(db, "rec-user").stream(graph, {"n": 10, "limit": 12}, config))
    assert db.count_traces(TraceFilter(thread_id=config["configurable"]["thread_id"])) == 1
    trace = db.load_trace_by_id(first)
    assert [e["i"] for e in trace.trace_data] == [0, 1, 2, 10, 11]


def test_thread_id_is_generated_when_absent(db):
    rec = TraceRecorder(db, "rec-user")
    list(rec.stream(_loop_graph(), {"n": 0, "limit": 2}, {}))
    assert rec.thread_id and db.load_trace_by_thread(rec.thread_id).entry_count == 2


class MsgState(TypedDict, total=False):
    messages: Annotated[list, operator.add]
    a: str
    b: str


def test_graph_without_trace_key_gets_derived_entries_with_parallel_branches_and_subgraph(db):
    sub = StateGraph(MsgState)
    sub.add_node("inner", lambda s: {"b": "inner done"})
    sub.add_edge(START, "inner")
    subgraph = sub.compile()

    g = StateGraph(MsgState)
    g.add_node("fan", lambda s: {"a": "fanned"})
    g.add_node("left", lambda s: {"messages": ["left"]})
    g.add_node("right", lambda s: {"messages": ["right"]})
    g.add_node("child", subgraph)
    g.add_edge(START, "fan")
    g.add_edge("fan", "left")
    g.add_edge("fan", "right")
    g.add_edge(["left", "right"], "child")
    graph = g.compile()

    rec = TraceRecorder(db, "rec-user")
    chunks = list(rec.stream(graph, {"messages": []}, _config(), stream_mode="updates"))
    assert all(not isinstance(c, tuple) for c in chunks)  # caller did not ask for subgraphs
    trace = db.load_trace_by_id(rec.trace_id)
    nodes = [e["node"] for e in trace.trace_data]
    assert nodes[0] == "fan" and set(nodes[1:3]) == {"left", "right"}
    assert "inner" in nodes and nodes[-1] == "child"
    inner = trace.trace_data[nodes.index("inner")]
    assert inner["namespace"].startswith("child:")
    for e in trace.trace_data:
        assert {"started_at", "ended_at", "duration_ms", "changed_keys", "status"} <= e.keys()
    assert trace.trace_data[0]["changed_keys"] == ["a"]


class TracedSub(TypedDict, total=False):
    x: int
    automation_trace: Annotated[list, operator.add]


def test_subgraph_entries_are_stored_once(db):
    sub = StateGraph(TracedSub)
    sub.add_node("inner", lambda s: {"automation_trace": [{"node": "inner", "v": 1}]})
    sub.add_edge(START, "inner")

    def call_sub(state: TracedSub) -> dict[str, Any]:
        out = sub.compile().invoke({"x": 1, "automation_trace": []})
        return {"automation_trace": out["automation_trace"] + [{"node": "outer", "v": 2}]}

    g = StateGraph(TracedSub)
    g.add_node("outer", call_sub)
    g.add_edge(START, "outer")
    rec = TraceRecorder(db, "rec-user")
    list(rec.stream(g.compile(), {"x": 0}, _config()))
    data = db.load_trace_by_id(rec.trace_id).trace_data
    assert [(e["node"], e["v"]) for e in data] == [("inner", 1), ("outer", 2)]


def test_interrupt_and_resume_continue_the_same_trace(db):
    def ask(state: LoopState) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"automation_trace": [{"node": "ask", "answer": answer}]}

    g = StateGraph(LoopState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = _config()
    rec = TraceRecorder(db, "rec-user")
    list(rec.stream(graph, {"n": 0}, config, stream_mode="updates"))
    assert rec.status == "interrupted"
    trace = db.load_trace_by_id(rec.trace_id)
    assert trace.status == "interrupted" and trace.trace_data[-1]["kind"] == "interrupt"
    assert trace.trace_data[-1]["output"] == ["approve?"]
    list(rec.stream(graph, Command(resume="yes"), config, stream_mode="updates"))
    trace = db.load_trace_by_id(rec.trace_id)
    assert trace.status == "completed"
    assert trace.trace_data[-1] == {"node": "ask", "answer": "yes"}


def test_node_that_raises_is_stored_and_reraised(db):
    def boom(state: LoopState) -> dict[str, Any]:
        raise ValueError("the tool broke")

    g = StateGraph(LoopState)
    g.add_node("first", lambda s: {"automation_trace": [{"node": "first"}]})
    g.add_node("boom", boom)
    g.add_edge(START, "first")
    g.add_edge("first", "boom")
    rec = TraceRecorder(db, "rec-user")
    with pytest.raises(ValueError, match="the tool broke"):
        list(rec.stream(g.compile(), {"n": 0}, _config()))
    trace = db.load_trace_by_id(rec.trace_id)
    assert trace.status == "failed" and trace.error_count == 1
    last = trace.trace_data[-1]
    assert last["status"] == "error" and "the tool broke" in last["error"]
    assert "Traceback" in last["traceback"]


def test_astream_records_like_stream(db):
    graph = _loop_graph()
    inputs = {"n": 0, "limit": 4}

    async def run() -> tuple[list, list, TraceRecorder]:
        expected = [c async for c in graph.astream(inputs, _config(), stream_mode="updates")]
        rec = TraceRecorder(db, "rec-user")
        got = [c async for c in rec.astream(graph, inputs, _config(), stream_mode="updates")]
        return expected, got, rec

    expected, got, rec = asyncio.run(run())
    assert got == expected
    assert [e["i"] for e in db.load_trace_by_id(rec.trace_id).trace_data] == [0, 1, 2, 3]


def test_caller_stopping_early_marks_interrupted(db):
    rec = TraceRecorder(db, "rec-user")
    for i, _ in enumerate(rec.stream(_loop_graph(), {"n": 0, "limit": 50}, _config())):
        if i == 3:
            break
    rec.flush()
    assert db.get_summary(rec.trace_id).status == "interrupted"


def test_create_agent_graph_is_recorded_with_derived_entries(db):
    from langchain.agents import create_agent

    from agent import TOOLS, OfflineChatModel

    graph = create_agent(OfflineChatModel(), TOOLS)
    rec = TraceRecorder(db, "rec-user", provider_id="offline")
    config = _config()
    tokens = []
    for mode, data in rec.stream(
        graph, {"messages": [("user", "what is 17 * 23?")]}, config, stream_mode=["messages", "updates"]
    ):
        if mode == "messages":
            tokens.append(data[0].content)
    assert "391" in "".join(tokens)
    trace = db.load_trace_by_thread(config["configurable"]["thread_id"])
    assert [e["node"] for e in trace.trace_data] == ["model", "tools", "model"]
    model, tool, final = trace.trace_data
    assert model["kind"] == "llm" and model["output"]["messages"][0]["tool_calls"][0]["name"] == "calculator"
    assert tool["kind"] == "tool" and tool["output"]["messages"][0]["content"] == "391"
    assert "391" in final["output"]["messages"][0]["content"]
    assert trace.status == "completed" and trace.provider_id == "offline"


def test_each_run_of_a_thread_is_a_turn(db, ids) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    graph = _turn_graph(InMemorySaver())
    rec = TraceRecorder(db, "ana")
    config = {"configurable": {"thread_id": ids("turns")}}
    for _ in range(2):
        list(rec.stream(graph, {"automation_trace": []}, config))
    rows = db.get_entries(rec.trace_id)
    assert [r["turn"] for r in rows] == [1, 2]
    assert db.get_summary(rec.trace_id).turns == 2


def _turn_graph(checkpointer):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        automation_trace: Annotated[list, operator.add]

    def step(state: State) -> dict:
        return {"automation_trace": [{"node": "step", "n": len(state["automation_trace"])}]}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=checkpointer)


# -- the caller gets exactly what it asked for -----------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?")


def _normalized(chunks: list[Any]) -> str:
    """The chunks' text with ids (each replaced in order of first appearance) and times
    masked: two runs of one graph on two checkpointers then read the same."""
    names: dict[str, str] = {}
    text = _UUID.sub(lambda m: names.setdefault(m.group(), f"<id{len(names)}>"), repr(chunks))
    return _TIME.sub("<time>", text)


class TalkState(TypedDict, total=False):
    x: int
    automation_trace: Annotated[list, operator.add]


def _talking_graph():
    from langchain_core.messages import HumanMessage
    from langgraph.config import get_stream_writer

    from agent import OfflineChatModel

    def talk(state: TalkState) -> dict[str, Any]:
        get_stream_writer()({"said": "hello"})
        reply = OfflineChatModel().invoke([HumanMessage("hello")])
        return {"x": len(reply.text), "automation_trace": [{"node": "talk", "said": reply.text[:10]}]}

    class SubState(TypedDict):
        x: int

    sub = StateGraph(SubState)
    sub.add_node("inner", lambda s: (get_stream_writer()({"inner": True}), {"x": s["x"] + 1})[1])
    sub.add_edge(START, "inner")
    g = StateGraph(TalkState)
    g.add_node("talk", talk)
    g.add_node("child", sub.compile())
    g.add_edge(START, "talk")
    g.add_edge("talk", "child")
    return g.compile(checkpointer=InMemorySaver())


_MODES = ["values", "updates", "messages", "custom", "debug", "tasks", "checkpoints"]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize(
    "stream_mode",
    [None, *_MODES, ["updates", "messages"], ["values", "custom", "tasks"], ["debug", "checkpoints"], _MODES],
)
def test_every_combination_of_modes_yields_what_graph_stream_yields(db, stream_mode, subgraphs, version):
    kwargs: dict[str, Any] = {"subgraphs": subgraphs, "version": version}
    if stream_mode is not None:
        kwargs["stream_mode"] = stream_mode
    thread = {"configurable": {"thread_id": f"modes-{uuid.uuid4().hex[:8]}"}}
    expected = list(_talking_graph().stream({"x": 0}, thread, **kwargs))
    rec = TraceRecorder(db, "rec-user")
    got = list(rec.stream(_talking_graph(), {"x": 0}, thread, **kwargs))
    assert _normalized(got) == _normalized(expected)
    assert [r["node"] for r in db.get_entries(rec.trace_id)] == ["talk", "inner", "child"]


# -- tokens and cost -------------------------------------------------------------------


@pytest.mark.parametrize("stream_mode", ["updates", ["messages", "updates"]])
def test_create_agent_run_has_exact_token_totals(db, stream_mode):
    from langchain.agents import create_agent

    from agent import TOOLS, OfflineChatModel
    from tracedb.usage import price_of

    graph = create_agent(OfflineChatModel(model_name="gpt-4o-mini"), TOOLS)
    rec = TraceRecorder(db, "rec-user")
    config = _config()
    for _ in rec.stream(graph, {"messages": [("user", "what is 17 * 23?")]}, config, stream_mode=stream_mode):
        pass
    state = graph.invoke({"messages": [("user", "what is 17 * 23?")]})
    replies = [m for m in state["messages"] if m.type == "ai"]
    want_in = sum(m.usage_metadata["input_tokens"] for m in replies)
    want_out = sum(m.usage_metadata["output_tokens"] for m in replies)
    assert len(replies) == 2 and want_in > 0 and want_out > 0
    summary = db.get_summary(rec.trace_id)
    assert (summary.input_tokens, summary.output_tokens, summary.total_tokens) == (
        want_in,
        want_out,
        want_in + want_out,
    )
    price = price_of("gpt-4o-mini")
    assert price is not None
    assert summary.cost_usd == pytest.approx((want_in * price.input + want_out * price.output) / 1e6)
    rows = [r for r in db.get_entries(rec.trace_id) if r["kind"] == "llm"]
    assert [r["model"] for r in rows] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [r["input_tokens"] for r in rows] == [m.usage_metadata["input_tokens"] for m in replies]
    assert rows[0]["data"]["usage"]["total_tokens"] == replies[0].usage_metadata["total_tokens"]


def test_the_agent_graph_records_its_tokens(db, notes_file):
    from agent import build_graph, user_input

    graph = build_graph()
    rec = TraceRecorder(db, "rec-user")
    out_tokens = 0
    for mode, data in rec.stream(
        graph, user_input("what is 17 * 23?"), _config(), stream_mode=["messages", "updates"]
    ):
        if mode == "updates" and "model" in data:
            out_tokens += data["model"]["messages"][-1].usage_metadata["output_tokens"]
    summary = db.get_summary(rec.trace_id)
    assert summary.output_tokens == out_tokens > 0 and summary.cost_usd == 0.0  # the offline model is free
