"""Replay from a step: the agent graph, a PostgreSQL checkpointer and the trace store, all
real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from agent import ForkError, build_graph, fork_from_trace, make_checkpointer, replay, user_input
from tracedb.recorder import TraceRecorder

pytestmark = pytest.mark.usefixtures("notes_file")


@pytest.fixture()
def graph(db_url: str) -> Iterator[Any]:
    with make_checkpointer(db_url) as saver:
        yield build_graph(checkpointer=saver)


def _record(db: Any, graph: Any, text: str) -> tuple[str, dict[str, Any]]:
    config = {"configurable": {"thread_id": f"replay-{uuid.uuid4().hex[:8]}"}}
    rec = TraceRecorder(db, "ana", provider_id="offline", name="sum")
    for _ in rec.stream(graph, user_input(text), config, stream_mode=["messages", "updates"]):
        pass
    assert rec.close().ok
    return rec.trace_id, config


def test_every_step_of_the_agent_carries_its_checkpoint(db, graph):
    trace_id, config = _record(db, graph, "what is 17 * 23?")
    rows = db.get_entries(trace_id)
    assert [r["node"] for r in rows] == ["planner", "model", "tools", "model", "summarise"]
    history = list(graph.get_state_history(config))[::-1]
    started_from = {h.config["configurable"]["checkpoint_id"]: h.next for h in history}
    for row in rows:
        assert started_from[row["checkpoint_id"]] == (row["node"],)


def test_replay_from_a_step_runs_it_again_in_a_new_thread(db, graph):
    trace_id, config = _record(db, graph, "what is 17 * 23?")
    before = graph.get_state(config).values
    result = replay(db, graph, trace_id, 2)  # the calculator step
    assert result.report.ok and result.trace_id != trace_id
    assert result.values["messages"][-1].content == "17 * 23 = 391"
    new = db.get_summary(result.trace_id)
    assert new.metadata["forked_from"] == {"trace_id": trace_id, "seq": 2}
    assert new.thread_id == result.fork.thread_id != config["configurable"]["thread_id"]
    assert new.user_id == "ana" and new.name == "replay of sum" and new.status == "completed"
    assert [r["node"] for r in db.get_entries(result.trace_id)] == ["tools", "model", "summarise"]
    assert "graph" in new.metadata
    # the original conversation is as it was
    after = graph.get_state(config).values
    assert [m.content for m in after["messages"]] == [m.content for m in before["messages"]]
    assert db.get_summary(trace_id).entry_count == 5


def test_replay_with_an_edited_input_for_the_step(db, graph):
    trace_id, config = _record(db, graph, "what is 17 * 23?")
    question = graph.get_state(config).values["messages"][0]
    edited = {"messages": [HumanMessage("what is 6 * 7?", id=question.id)]}
    fork = fork_from_trace(db, graph, trace_id, 1, values=edited)  # the first model step
    rec = TraceRecorder(db, "ana", metadata=fork.metadata)
    answers = []
    for mode, data in rec.stream(graph, None, fork.config, stream_mode=["updates", "messages"]):
        if mode == "updates" and "summarise" in data:
            answers.append(data["summarise"]["automation_trace"][0]["output"]["answer"])
    assert answers == ["6 * 7 = 42"]
    rows = db.get_entries(rec.trace_id)
    assert [r["node"] for r in rows] == ["model", "tools", "model", "summarise"]
    assert rows[1]["data"]["input"] == {"expression": "6 * 7"}
    assert db.get_summary(rec.trace_id).metadata["forked_from"] == {"trace_id": trace_id, "seq": 1}
    # the forked thread goes on as a conversation of its own
    out = graph.invoke(user_input("what did I ask before?"), fork.config)
    assert out["messages"][-1].content == "Earlier in this conversation you said:\n1. what is 6 * 7?"


def test_forking_needs_a_step_with_a_checkpoint(db, graph):
    trace_id, _ = _record(db, graph, "what is 1 + 1?")
    with pytest.raises(ForkError, match="no step"):
        fork_from_trace(db, graph, trace_id, 99)
    with pytest.raises(ForkError, match="no step"):
        fork_from_trace(db, graph, str(uuid.uuid4()), 0)
    plain = db.append_entries([{"node": "x"}], thread_id="no-checkpoints", user_id="ana")
    with pytest.raises(ForkError, match="no checkpoint"):
        fork_from_trace(db, graph, plain.trace_id, 0)
    with pytest.raises(ForkError, match="no checkpointer"):
        fork_from_trace(db, build_graph(), trace_id, 0)
