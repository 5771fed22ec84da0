"""pages/chat.py: a conversation with the offline agent, recorded while it streams. Each
test chats as a user of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apptest_support import dashboard_env, open_page, texts

from dashboard import live
from tracedb import TraceFilter


@pytest.fixture()
def user(db_url: str, ids) -> Iterator[str]:
    name = ids("chatter")
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=name, LLM_MODEL=None):
        yield name


def said(at, role: str) -> list[str]:
    return [t.value for m in at.chat_message if m.name == role for t in m.text]


def ask(at, question: str):
    return at.chat_input(key="chat_input").set_value(question).run(timeout=60)


def test_a_turn_streams_the_reply_and_records_the_trace(user, db) -> None:
    at = open_page("chat")
    assert not at.exception
    assert at.selectbox(key="chat_thread_widget").value == "__new__"
    ask(at, "what is 17 * 23?")
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?"]
    assert "17 * 23 = 391" in said(at, "assistant")

    traces = db.list_traces(TraceFilter(user_id=user)).items
    assert len(traces) == 1
    trace = traces[0]
    assert trace.status == "completed" and trace.name == "what is 17 * 23?"
    assert {"planner", "model", "tools", "summarise"} <= set(trace.nodes)
    # the page moved to the new conversation, with its trace beside it
    assert at.session_state["chat_thread"] == trace.thread_id
    assert at.selectbox(key="chat_thread_widget").value == trace.thread_id
    assert any(trace.thread_id in t for t in texts(at))
    steps = at.dataframe[0].value
    assert steps["node"].tolist()[:2] == ["planner", "model"] and set(steps["turn"]) == {1}

    ask(at, "what is 2 + 2?")
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?", "what is 2 + 2?"]
    assert any("2 + 2 = 4" in s for s in said(at, "assistant"))
    again = db.list_traces(TraceFilter(user_id=user)).items
    assert [t.id for t in again] == [trace.id]
    assert again[0].entry_count > trace.entry_count and again[0].turns == 2
    assert set(at.dataframe[0].value["turn"]) == {1, 2}


def test_the_conversation_stays_when_its_label_changes(user, db) -> None:
    at = open_page("chat")
    ask(at, "what is 6 * 7?")
    trace = db.list_traces(TraceFilter(user_id=user)).items[0]
    # what the picker shows of it changes: another name, another minute
    db.rename_trace(trace.id, "renamed meanwhile")
    db.set_trace_times(
        [(trace.id, trace.created_at + timedelta(minutes=1), trace.updated_at + timedelta(minutes=1))]
    )
    ask(at, "what did I ask before?")
    assert not at.exception
    assert said(at, "user") == ["what is 6 * 7?", "what did I ask before?"]
    assert any("what is 6 * 7?" in s for s in said(at, "assistant"))
    assert [t.id for t in db.list_traces(TraceFilter(user_id=user)).items] == [trace.id]


def test_resuming_a_conversation_shows_its_history(user, db) -> None:
    ask(open_page("chat"), "what is 17 * 23?")
    thread = db.list_traces(TraceFilter(user_id=user)).items[0].thread_id
    at = open_page("chat")  # a new session
    assert at.selectbox(key="chat_thread_widget").value == "__new__"
    at.selectbox(key="chat_thread_widget").set_value(thread).run()
    assert not at.exception
    assert said(at, "user") == ["what is 17 * 23?"]
    assert "17 * 23 = 391" in said(at, "assistant")


def test_an_earlier_conversation_not_run_here_shows_what_its_trace_recorded(user, db) -> None:
    entries = [
        {"node": "planner", "kind": "plan", "input": {"request": "weather in Oslo?"}, "output": {}},
        {"node": "model", "kind": "llm", "output": {"content": "", "tool_calls": [{"name": "get_weather"}]}},
        {"node": "tools", "kind": "tool", "name": "get_weather", "output": "cloudy"},
        {"node": "model", "kind": "llm", "output": {"content": "It is cloudy in Oslo.", "tool_calls": []}},
    ]
    db.save_trace(user, None, "imported-1", entries, name="weather in Oslo?")
    at = open_page("chat")
    at.selectbox(key="chat_thread_widget").set_value("imported-1").run()
    assert not at.exception
    assert said(at, "user") == ["weather in Oslo?"]
    assert said(at, "assistant") == ["It is cloudy in Oslo."]
    assert any("Shown from the trace" in c.value for c in at.caption)


def test_a_missing_model_is_a_message(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER="nobody", LLM_MODEL="no-such-provider:model"):
        at = open_page("chat")
    assert not at.exception
    assert any("chat model is not available" in e.value for e in at.error)


class CountingStore:
    """The real store, with the ``after_seq`` of every ``entry_columns`` call written down."""

    def __init__(self, db) -> None:
        self.db, self.after = db, []

    def entry_columns(self, trace_id: str, after_seq: int = -1):
        self.after.append(after_seq)
        return self.db.entry_columns(trace_id, after_seq=after_seq)


def test_the_live_trace_reads_only_the_steps_it_has_not_shown(db, ids) -> None:
    first = db.append_entries([{"node": "n", "i": i} for i in range(100)], thread_id=ids("live"), user_id="x")
    store, kept = CountingStore(db), {}
    steps = live.recent_steps(store, db.get_summary(first.trace_id), kept)
    assert steps["seq"].tolist() == list(range(70, 100)) and store.after == [69]
    db.append_entries([{"node": "n"}] * 5, trace_id=first.trace_id)
    steps = live.recent_steps(store, db.get_summary(first.trace_id), kept)
    assert steps["seq"].tolist() == list(range(75, 105)) and store.after == [69, 99]
    steps = live.recent_steps(store, db.get_summary(first.trace_id), kept)
    assert len(steps) == 30 and store.after[-1] == 104 and list(kept) == [first.trace_id]


def test_the_live_trace_shows_the_steps_running_now(user, db) -> None:
    now = datetime.now(UTC)
    step = {"node": "planner", "started_at": (now - timedelta(seconds=3)).isoformat()}
    db.append_entries(
        [{**step, "ended_at": (now - timedelta(seconds=2)).isoformat()}],
        thread_id="running-chat",
        user_id=user,
        status="running",
        name="still thinking",
        running_start={"task-1": {"node": "model", "started_at": (now - timedelta(seconds=2)).isoformat()}},
    )
    at = open_page("chat")
    at.selectbox(key="chat_thread_widget").set_value("running-chat").run()
    assert not at.exception
    running = [m.value for m in at.markdown if "Running now" in m.value]
    # started 2 s before the page ran; the page may take a moment on a busy machine
    assert running and re.match(
        r":blue\[:material/progress_activity:\] Running now: model for [2-9]", running[0]
    ), running
    steps = at.dataframe[0].value
    assert steps["node"].tolist() == ["planner", "model"]
    assert steps["status"].tolist()[-1] == "running" and re.match(
        r"running [2-9]", steps["took"].tolist()[-1]
    )


def test_the_live_trace_keeps_stored_steps_and_reads_running_ones_afresh(db, ids) -> None:
    first = db.append_entries(
        [{"node": "n"}] * 3,
        thread_id=ids("live"),
        user_id="x",
        status="running",
        running_start={"t1": {"node": "model", "started_at": datetime.now(UTC).isoformat()}},
    )
    kept: dict = {}
    steps = live.recent_steps(db, db.get_summary(first.trace_id), kept)
    assert steps["seq"].tolist()[:3] == [0, 1, 2] and steps["open"].tolist() == [False] * 3 + [True]
    assert kept[first.trace_id]["seq"].tolist() == [0, 1, 2]  # a running step is never kept
    db.append_entries([{"node": "model"}], trace_id=first.trace_id, running_end=["t1"])
    steps = live.recent_steps(db, db.get_summary(first.trace_id), kept)
    assert steps["seq"].tolist() == [0, 1, 2, 3] and not steps["open"].any()
