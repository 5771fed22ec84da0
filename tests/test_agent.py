"""The agent graph end to end with the offline model: answers, trace entries, errors, streaming."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import MemorySaver

from agent import TOOLS, OfflineChatModel, build_graph, user_input
from agent.entries import ENTRY_KEYS

pytestmark = pytest.mark.usefixtures("notes_file")


def _check_entry(entry: dict[str, Any]) -> None:
    assert set(ENTRY_KEYS) <= set(entry)
    started = datetime.fromisoformat(entry["started_at"])
    ended = datetime.fromisoformat(entry["ended_at"])
    assert started.utcoffset() == ended.utcoffset() == UTC.utcoffset(None)
    assert started <= ended
    assert entry["duration_ms"] >= 0
    assert entry["status"] in ("ok", "error")
    assert ("error" in entry) == (entry["status"] == "error")


def test_user_input() -> None:
    data = user_input("hi")
    assert list(data) == ["messages"]
    assert isinstance(data["messages"][0], HumanMessage) and data["messages"][0].content == "hi"


def test_graph_has_the_four_nodes() -> None:
    nodes = set(build_graph().get_graph().nodes)
    assert {"planner", "model", "tools", "summarise"} <= nodes


def test_arithmetic_end_to_end() -> None:
    out = build_graph().invoke(user_input("what is 17 * 23?"))
    assert out["messages"][-1].content == "17 * 23 = 391"
    trace = out["automation_trace"]
    assert [(e["node"], e["kind"]) for e in trace] == [
        ("planner", "plan"),
        ("model", "llm"),
        ("tools", "tool"),
        ("model", "llm"),
        ("summarise", "summary"),
    ]
    for entry in trace:
        _check_entry(entry)
        assert entry["status"] == "ok"
    plan, ask, calc, answer, summary = trace
    assert plan["output"]["tools"] == ["calculator"]
    assert plan["output"]["steps"][0] == "calculator(expression='17 * 23')"
    assert plan["output"]["planned_by"] == "offline request parser"
    assert ask["name"] == "offline" and ask["output"]["tool_calls"][0]["name"] == "calculator"
    assert (calc["name"], calc["input"], calc["output"]) == ("calculator", {"expression": "17 * 23"}, "391")
    assert answer["output"] == {"content": "17 * 23 = 391", "tool_calls": []}
    assert answer["model"] == "offline" and answer["usage"]["output_tokens"] == 5
    assert summary["output"]["answer"] == "17 * 23 = 391"
    assert summary["output"]["tools"] == ["calculator"] and summary["output"]["errors"] == 0
    assert summary["output"]["turn_ms"] >= 0


def test_failing_tool_is_an_error_entry_and_the_turn_carries_on() -> None:
    out = build_graph().invoke(user_input("what is 1 / 0? then what is 2 + 2"))
    tool_entries = [e for e in out["automation_trace"] if e["kind"] == "tool"]
    failed, fine = tool_entries
    _check_entry(failed)
    assert failed["status"] == "error" and failed["error"] == "ValueError: division by zero"
    assert fine["status"] == "ok" and fine["output"] == "4"
    errors = [m for m in out["messages"] if isinstance(m, ToolMessage) and m.status == "error"]
    assert [m.content for m in errors] == ["Error: division by zero"]
    assert out["messages"][-1].content == "The calculator tool failed: division by zero.\n2 + 2 = 4"
    assert out["automation_trace"][-1]["output"]["errors"] == 1


def test_any_exception_from_a_tool_is_caught() -> None:
    @tool("calculator")
    def broken(expression: str) -> str:
        """Always fails."""
        raise RuntimeError("backend offline")

    out = build_graph(tools=[broken]).invoke(user_input("what is 2 + 2"))
    entry = next(e for e in out["automation_trace"] if e["kind"] == "tool")
    assert entry["error"] == "RuntimeError: backend offline"
    assert out["messages"][-1].content == "The calculator tool failed: backend offline."


class _Scripted(OfflineChatModel):
    """Replies with a fixed tool call, or fails, to drive paths the offline model never takes."""

    call: str = "no_such_tool"
    fail: bool = False

    def respond(self, messages: Sequence[BaseMessage], tools: Any = None) -> AIMessage:
        if self.fail:
            raise RuntimeError("quota exceeded")
        if isinstance(messages[-1], ToolMessage) and self.call == "no_such_tool":
            return AIMessage(f"result: {messages[-1].content}")
        n = len(messages)
        return AIMessage("", tool_calls=[{"name": self.call, "args": {"expression": "1+1"}, "id": f"c{n}"}])


def test_unknown_tool_is_an_error_entry() -> None:
    out = build_graph(_Scripted()).invoke(user_input("go"))
    entry = next(e for e in out["automation_trace"] if e["kind"] == "tool")
    assert entry["status"] == "error" and "no tool named 'no_such_tool'" in entry["error"]
    assert out["messages"][-1].content == "result: Error: no tool named 'no_such_tool'"


def test_tool_rounds_are_capped_and_every_call_answered() -> None:
    graph = build_graph(_Scripted(call="calculator"), max_tool_rounds=2)
    out = graph.invoke(user_input("loop"))
    kinds = [e["kind"] for e in out["automation_trace"]]
    assert kinds.count("tool") == 2 and kinds.count("llm") == 3
    *_, skipped, final = out["messages"]
    assert isinstance(skipped, ToolMessage) and skipped.status == "error"
    assert final.content == "I stopped after 2 rounds of tool calls without reaching an answer."
    assert out["automation_trace"][-1]["output"]["answer"] == final.content


def test_model_failure_is_an_error_entry_and_a_reply() -> None:
    out = build_graph(_Scripted(fail=True)).invoke(user_input("hello"))
    llm = next(e for e in out["automation_trace"] if e["kind"] == "llm")
    _check_entry(llm)
    assert llm["status"] == "error" and llm["error"] == "RuntimeError: quota exceeded"
    assert out["messages"][-1].content == "The language model failed: RuntimeError: quota exceeded"
    assert out["automation_trace"][-1]["output"]["errors"] == 1


def test_invalid_tool_calls_and_usage_are_recorded() -> None:
    class Garbled(OfflineChatModel):
        def respond(self, messages: Sequence[BaseMessage], tools: Any = None) -> AIMessage:
            return AIMessage(
                "",
                usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
                invalid_tool_calls=[
                    {
                        "name": "calculator",
                        "args": "{oops",
                        "id": "c1",
                        "error": "bad JSON",
                        "type": "invalid_tool_call",
                    }
                ],
            )

    out = build_graph(Garbled()).invoke(user_input("x"))
    llm = next(e for e in out["automation_trace"] if e["kind"] == "llm")
    assert llm["output"]["invalid_tool_calls"] == [
        {"name": "calculator", "args": "{oops", "error": "bad JSON"}
    ]
    assert llm["usage"]["total_tokens"] == 4 and "usage" not in llm["output"]


def test_messages_stream_yields_tokens_and_whole_tool_calls() -> None:
    graph = build_graph()
    tokens, tool_calls, updates = [], [], []
    for mode, data in graph.stream(user_input("what is 17 * 23?"), stream_mode=["messages", "updates"]):
        if mode == "updates":
            updates.extend(data)
            continue
        chunk, meta = data
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "model":
            tool_calls.extend(chunk.tool_calls)
            if chunk.content:
                tokens.append(chunk.content)
    assert tokens == ["17 ", "* ", "23 ", "= ", "391"]
    assert [c["name"] for c in tool_calls] == ["calculator"]
    assert tool_calls[0]["args"] == {"expression": "17 * 23"}
    assert updates == ["planner", "model", "tools", "model", "summarise"]


def test_memory_saver_keeps_the_thread() -> None:
    graph = build_graph(checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "memory-1"}}
    graph.invoke(user_input("save a note: water the plants"), config)
    out = graph.invoke(user_input("search notes for plants"), config)
    assert out["messages"][-1].content.endswith("water the plants")
    assert len([m for m in out["messages"] if isinstance(m, HumanMessage)]) == 2
    plans = [e for e in out["automation_trace"] if e["kind"] == "plan"]
    assert [p["input"]["request"] for p in plans] == [
        "save a note: water the plants",
        "search notes for plants",
    ]
    # The second summary counts only its own turn.
    assert out["automation_trace"][-1]["output"]["tools"] == ["search_notes"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("convert 5 km to miles", "5 km = 3.10686 mi"),
        ("what day of the week is 2024-07-04?", "2024-07-04 was a Thursday."),
        ("how many days between 2024-01-01 and 2024-03-01?", "From 2024-01-01 to 2024-03-01 is 60 days."),
        ("convert 3 blargs to miles", "The convert_units tool failed: unknown unit 'blargs'."),
        ("tell me a joke", None),
    ],
)
def test_other_requests(text: str, answer: str | None) -> None:
    reply = build_graph(tools=TOOLS).invoke(user_input(text))["messages"][-1].content
    if answer is None:
        assert reply.startswith("I cannot answer that offline.")
    else:
        assert reply == answer


def test_async_stream_matches_the_sync_one() -> None:
    async def collect() -> list[str]:
        tokens = []
        async for mode, data in build_graph().astream(user_input("what is 6 * 7"), stream_mode=["messages"]):
            chunk, meta = data
            if mode == "messages" and meta["langgraph_node"] == "model" and chunk.content:
                tokens.append(chunk.content)
        return tokens

    assert asyncio.run(collect()) == ["6 ", "* ", "7 ", "= ", "42"]


def test_read_page_answer_is_the_page() -> None:
    reply = build_graph().invoke(user_input("read page storage"))["messages"][-1].content
    assert reply.startswith("# Storage and the database schema")


class _Hosted(BaseChatModel):
    """Stands in for a hosted model: it is not the offline model, and reports usage."""

    @property
    def _llm_type(self) -> str:
        return "hosted-stand-in"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any):
        reply = AIMessage(
            "done",
            usage_metadata={"input_tokens": 11, "output_tokens": 2, "total_tokens": 13},
            response_metadata={"model_name": "gpt-4o-mini-2024-07-18"},
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def test_a_real_model_gets_no_plan_it_did_not_make() -> None:
    out = build_graph(_Hosted()).invoke(user_input("what is 17 * 23?"))
    plan, llm, _summary = out["automation_trace"]
    assert plan["input"] == {"request": "what is 17 * 23?"}
    assert plan["output"]["planned_by"] is None and "steps" not in plan["output"]
    assert "calculator" in plan["output"]["tools_available"]
    assert llm["model"] == "gpt-4o-mini-2024-07-18" and llm["usage"]["total_tokens"] == 13
