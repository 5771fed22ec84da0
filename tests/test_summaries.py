"""Entries the recorder derives for graphs that keep no trace of their own."""

from __future__ import annotations

from langchain_core.messages import AIMessage, ToolMessage

from tracedb.summaries import derive_entry, error_entry, interrupt_entry, summarize_message


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
