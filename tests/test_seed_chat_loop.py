"""A chat loop written for the seed's asynchronous AutomationTraceDB, run unchanged but for its
import line: a real LangGraph graph streamed with ``astream``, and on every chunk that brings
entries, the complete trace so far upserted by thread, awaited."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

# was: from chatagent.db.automation_trace_db import AutomationTraceDB
from tracedb.aio import AutomationTraceDB


class State(TypedDict):
    question: str
    automation_trace: Annotated[list, operator.add]


def inputer_agent(state: State) -> dict:
    return {
        "automation_trace": [{"node": "inputer_agent", "event": "routing_decision", "q": state["question"]}]
    }


def agent_tool_node(state: State) -> dict:
    return {
        "automation_trace": [
            {"node": "agent_tool_node", "event": "tool_call", "tool": "send_gmail"},
            {"node": "agent_tool_node", "event": "tool_result", "ok": True},
        ]
    }


def final_node(state: State) -> dict:
    return {"automation_trace": [{"node": "final_node", "event": "completion"}]}


def build_graph():
    g = StateGraph(State)
    g.add_node("inputer_agent", inputer_agent)
    g.add_node("agent_tool_node", agent_tool_node)
    g.add_node("final_node", final_node)
    g.add_edge(START, "inputer_agent")
    g.add_edge("inputer_agent", "agent_tool_node")
    g.add_edge("agent_tool_node", "final_node")
    g.add_edge("final_node", END)
    return g.compile(checkpointer=InMemorySaver())


# -- the seed-era code, as it was ---------------------------------------------------------------

automation_trace_db = None


async def chat_turn(graph, chat_id: str, provider_id: str, message: str) -> str | None:
    global automation_trace_db
    if automation_trace_db is None:
        automation_trace_db = AutomationTraceDB()
    config = {"configurable": {"thread_id": chat_id}}
    snapshot = graph.get_state(config)
    trace = list(snapshot.values.get("automation_trace", [])) if snapshot.values else []
    trace_id = None
    async for chunk in graph.astream(
        {"question": message, "automation_trace": []}, config, stream_mode="updates"
    ):
        for _node, update in chunk.items():
            new_entries = (update or {}).get("automation_trace") or []
            if new_entries:
                trace = trace + new_entries
                current_automation_trace = trace
                trace_id = await automation_trace_db.upsert_trace_by_thread(
                    user_id=provider_id,
                    provider_id=provider_id,
                    thread_id=chat_id,
                    trace_data=current_automation_trace,
                    name=None,
                )
    return trace_id


# ------------------------------------------------------------------------------------------------


def test_the_seeds_chat_loop_runs_on_tracedb(db_url, monkeypatch, ids):
    global automation_trace_db
    monkeypatch.setenv("TRACEDB_URL", db_url)
    graph = build_graph()
    chat_id, provider = ids("chat"), ids("provider")

    async def conversation():
        global automation_trace_db
        try:
            first = await chat_turn(graph, chat_id, provider, "send the report")
            second = await chat_turn(graph, chat_id, provider, "and again")
            loaded = await automation_trace_db.load_trace_by_thread(chat_id)
            listed = await automation_trace_db.get_user_traces(user_id=provider, provider_id=provider)
            return first, second, loaded, listed
        finally:
            await automation_trace_db.close()
            automation_trace_db = None

    first, second, loaded, listed = asyncio.run(conversation())
    expected = graph.get_state({"configurable": {"thread_id": chat_id}}).values["automation_trace"]
    assert first == second == loaded["id"]  # one trace for the whole conversation
    assert len(expected) == 8 and loaded["trace_data"] == expected
    assert loaded["thread_id"] == chat_id and loaded["user_id"] == provider
    assert [t["id"] for t in listed] == [first] and listed[0]["entry_count"] == 8
