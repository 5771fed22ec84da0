"""pages/chat.py: a conversation with the offline agent, recorded while it streams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apptest_support import dashboard_env, open_page, texts

from tracedb import TraceFilter

USER = "chat-tester"


@pytest.fixture(scope="module")
def chat_env(db_url: str) -> Iterator[None]:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=USER, LLM_MODEL=None):
        yield


def said(at, role: str) -> list[str]:
    return [t.value for m in at.chat_message if m.name == role for t in m.text]


def test_a_turn_streams_the_reply_and_records_the_trace(chat_env, db) -> None:
    at = open_page("chat")
    assert not at.exception
    assert at.selectbox(key="chat_pick").value == "__new__"
    at.chat_input(key="chat_input").set_value("what is 17 * 23?").run(timeout=60)
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?"]
    assert "17 * 23 = 391" in said(at, "assistant")

    traces = db.list_traces(TraceFilter(user_id=USER)).items
    assert len(traces) == 1
    trace = traces[0]
    assert trace.status == "completed" and trace.name == "what is 17 * 23?"
    assert {"planner", "model", "tools", "summarise"} <= set(trace.nodes)
    # the page moved to the new conversation, with its trace beside it
    assert at.selectbox(key="chat_pick").value == trace.thread_id
    assert any(trace.thread_id in t for t in texts(at))
    assert at.dataframe and at.dataframe[0].value["node"].tolist()[:2] == ["planner", "model"]

    at.chat_input(key="chat_input").set_value("what is 2 + 2?").run(timeout=60)
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?", "what is 2 + 2?"]
    assert any("2 + 2 = 4" in s for s in said(at, "assistant"))
    again = db.list_traces(TraceFilter(user_id=USER)).items
    assert [t.id for t in again] == [trace.id]
    assert again[0].entry_count > trace.entry_count


def test_resuming_a_thread_shows_its_history(chat_env, db) -> None:
    thread = db.list_traces(TraceFilter(user_id=USER)).items[0].thread_id
    at = open_page("chat")
    at.selectbox(key="chat_pick").set_value(thread).run()
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?", "what is 2 + 2?"]


def test_a_missing_model_is_a_message(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=USER, LLM_MODEL="no-such-provider:model"):
        at = open_page("chat")
    assert not at.exception
    assert any("chat model is not available" in e.value for e in at.error)
