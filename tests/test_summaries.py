"""Entries the recorder derives for graphs that keep no trace of their own."""

from __future__ import annotations

from langchain_core.messages import AIMessage, ToolMessage

from tracedb.summaries import (
    derive_entry,
    error_entry,
    gap_entry,
    graph_structure,
    interrupt_entry,
    refused_entry,
    summarize_message,
)


def test_derived_entry_summarises_messages_and_tool_calls():
    call = AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": "2+2"}, "id": "c1"}])
    e = derive_entry(("sub:1",), "model", {"messages": [call]}, 100.0, 100.25, 3)
    assert e["node"] == "model" and e["kind"] == "llm" and e["step"] == 3
    assert e["namespace"] == "sub:1" and e["duration_ms"] == 250.0
    assert e["output"]["messages"][0]["tool_calls"] == [{"name": "calculator", "args": {"expression": "2+2"}}]
    assert e["changed_keys"] == ["messages"] and e["status"] == "ok"


def test_failed_tool_message_marks_the_entry_as_error():
    msg = ToolMessage("boom", tool_call_id="c1", status="error", name="calculator")
    e = derive_entry((), "tools", {"messages": [msg]}, 0.0, 0.0, 1)
    assert e["kind"] == "tool" and e["status"] == "error" and e["error"] == "boom"


def test_long_content_is_cut():
    s = summarize_message(AIMessage("x" * 5000))
    assert len(s["content"]) == 500 and s["content"].endswith("…")


def test_non_message_values_are_short():
    e = derive_entry((), "n", {"blob": list(range(10_000)), "flag": True}, 0.0, 1.0, 1)
    assert len(e["output"]["blob"]) <= 500 and e["output"]["flag"] is True


def test_error_and_interrupt_entries():
    try:
        raise RuntimeError("bad")
    except RuntimeError as exc:
        e = error_entry("tools", exc)
    assert e["status"] == "error" and "RuntimeError: bad" in e["error"] and "Traceback" in e["traceback"]
    i = interrupt_entry((), ["approve?"], 0.0)
    assert i["kind"] == "interrupt" and i["output"] == ["approve?"]


def test_model_steps_carry_usage_added_up_and_the_model():
    first = AIMessage(
        "",
        usage_metadata={
            "input_tokens": 10,
            "output_tokens": 2,
            "total_tokens": 12,
            "input_token_details": {"cache_read": 4},
            "output_token_details": {"reasoning": 1},
        },
        response_metadata={"model_name": "gpt-4o-mini"},
    )
    second = AIMessage("done", usage_metadata={"input_tokens": 5, "output_tokens": 3, "total_tokens": 8})
    e = derive_entry((), "model", [{"messages": [first]}, {"messages": [second]}], 0.0, 1.0, 1)
    assert e["kind"] == "llm" and e["model"] == "gpt-4o-mini"
    assert e["usage"] == {
        "input_tokens": 15,
        "output_tokens": 5,
        "total_tokens": 20,
        "input_token_details": {"cache_read": 4},
        "output_token_details": {"reasoning": 1},
    }
    assert "usage" not in derive_entry(
        (), "tools", {"messages": [ToolMessage("4", tool_call_id="c")]}, 0, 0, 1
    )


def test_values_whose_repr_fails_are_named_not_raised():
    class Odd:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    e = derive_entry((), "n", {"odd": Odd()}, 0.0, 1.0, 1)
    assert e["output"]["odd"] == "<unconvertible: RuntimeError no (Odd)>"

    class Mute(Exception):
        def __str__(self) -> str:
            raise ValueError("mute")

    assert error_entry("n", Mute())["error"] == "Mute"


def test_gap_and_refused_entries():
    gap = gap_entry(12, 100.0, 104.5, {"buffer full": 12})
    assert gap["kind"] == "gap" and gap["dropped"] == 12 and gap["status"] == "gap"
    assert gap["first_dropped_at"].startswith("1970-01-01T00:01:40") and gap["duration_ms"] == 0.0
    refused = refused_entry({"node": "n" * 500, "kind": "tool", 3: "x"}, ValueError("too big"), 7)
    assert refused["node"] == "n" * 100 and refused["status"] == "error"
    assert refused["refused"] == {
        "node": "n" * 100,
        "kind": "tool",
        "keys": ["<int>", "kind", "node"],
        "index": 7,
    }
    assert refused["error"] == "the database refused this entry: ValueError: too big"


def test_graph_structure():
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict):
        x: int

    g = StateGraph(S)
    g.add_node("a", lambda s: s)
    g.add_edge(START, "a")
    shape = graph_structure(g.compile())
    assert [n["id"] for n in shape["nodes"]] == ["__start__", "a", "__end__"]
    assert {"source": "__start__", "target": "a"} in shape["edges"]
    assert graph_structure(object()) is None

    class Broken:
        def get_graph(self, xray: bool = False):
            raise RuntimeError("cannot draw")

    assert graph_structure(Broken()) is None
