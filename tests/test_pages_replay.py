"""Replay from here: a step of a chat run, picked on pages/thread.py, runs again on
pages/chat.py as a new conversation and a new trace; the two traces link to each other. The
offline agent, its PostgreSQL checkpointer and the store are all real; each test chats as a
user of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from apptest_support import dashboard_env, open_page, texts

from agent import build_graph, make_checkpointer
from tracedb import TraceFilter, TraceSummary


@pytest.fixture()
def user(db_url: str, ids) -> Iterator[str]:
    name = ids("replayer")
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=name, LLM_MODEL=None):
        yield name


@pytest.fixture()
def graph(db_url: str) -> Iterator[Any]:
    """The agent's graph on the page's checkpointer, to read the threads the pages made."""
    with make_checkpointer(db_url) as saver:
        yield build_graph(checkpointer=saver)


def said(at, role: str) -> list[str]:
    return [t.value for m in at.chat_message if m.name == role for t in m.text]


def chat_run(db, user: str, question: str) -> TraceSummary:
    """A conversation of one question on the chat page, and its trace."""
    at = open_page("chat")
    at.chat_input(key="chat_input").set_value(question).run(timeout=60)
    assert not at.exception
    (trace,) = db.list_traces(TraceFilter(user_id=user)).items
    return trace


def links(at) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """The page links on the page: label as shown (Markdown escapes undone) -> (page's URL
    path, query parameters)."""
    return {
        re.sub(r"\\(.)", r"\1", e.proto.label): (e.proto.page, parse_qs(e.proto.query_string))
        for e in at.get("page_link")
    }


def pick_step(at, seq: int):
    return at.number_input(key="entry_seq").set_value(seq).run()


def replay_from(trace_id: str, seq: int, text: str | None = None):
    """Open the trace's page, pick step ``seq``, change the message if asked, press
    Replay from here: the app moves to the chat page, which runs the replay."""
    at = pick_step(open_page("thread", trace=trace_id), seq)
    assert not at.exception
    button = at.button(key="replay_from_here")
    assert not button.disabled
    if text is not None:
        at.text_area[0].set_value(text)
    return button.click().run(timeout=60)


def forks_of(db, user: str, original: str) -> list[TraceSummary]:
    return [t for t in db.list_traces(TraceFilter(user_id=user)).items if t.id != original]


def test_a_step_recorded_without_a_checkpointer_cannot_be_replayed(user, db) -> None:
    trace_id = db.save_trace(user, None, "no-checkpoints", [{"node": "model", "output": "x"}], name="plain")
    at = pick_step(open_page("thread", trace=trace_id), 0)
    assert not at.exception
    button = at.button(key="replay_from_here")
    assert button.disabled and button.help == "recorded without a checkpointer"
    assert any("not available: recorded without a checkpointer" in t for t in texts(at))
    assert not at.text_area


def test_a_step_whose_checkpoint_is_not_here_cannot_be_replayed(user, db) -> None:
    trace_id = db.append_entries(
        [{"node": "model", "output": "x"}],
        thread_id="elsewhere",
        user_id=user,
        name="recorded elsewhere",
        checkpoint_ids=["1f000000-0000-6000-8000-000000000000"],
    ).trace_id
    at = pick_step(open_page("thread", trace=trace_id), 0)
    assert not at.exception
    assert db.get_entry(trace_id, 0)["checkpoint_id"]
    button = at.button(key="replay_from_here")
    assert button.disabled and "not in this dashboard's database" in button.help


def test_replay_from_a_step_runs_it_again_in_a_new_conversation(user, db, graph) -> None:
    original = chat_run(db, user, "what is 17 * 23?")
    rows = db.get_entries(original.id)
    assert [r["node"] for r in rows] == ["planner", "model", "tools", "model", "summarise"]

    at = replay_from(original.id, 2)  # the calculator step
    assert not at.exception
    (fork,) = forks_of(db, user, original.id)
    assert fork.metadata["forked_from"] == {"trace_id": original.id, "seq": 2}
    assert fork.status == "completed" and fork.thread_id != original.thread_id
    assert fork.name == "replay of what is 17 * 23?" and fork.user_id == user
    # the chat page ran it: the fork is the chosen conversation, with its answer and origin
    assert at.session_state["chat_thread"] == fork.thread_id
    assert any(fork.thread_id in t for t in texts(at))
    assert said(at, "user") == ["what is 17 * 23?"] and "17 * 23 = 391" in said(at, "assistant")
    label = f"Forked from “what is 17 * 23?” ({original.id[:8]}) at step 2"
    assert links(at).get(label) == ("thread", {"trace": [original.id]}), links(at)

    # the steps before the fork point were not run again: the fork starts from their state
    replayed = db.get_entries(fork.id)
    assert [r["node"] for r in replayed] == ["tools", "model", "summarise"]
    assert replayed[0]["data"]["input"] == rows[2]["data"]["input"] == {"expression": "17 * 23"}
    # it ran from the original's checkpoint, copied into the new thread
    assert replayed[0]["checkpoint_id"] == rows[2]["checkpoint_id"]
    copied = {"thread_id": fork.thread_id, "checkpoint_ns": "", "checkpoint_id": rows[2]["checkpoint_id"]}
    assert graph.checkpointer.get_tuple({"configurable": copied}).metadata["source"] == "fork"
    before = graph.get_state(
        {"configurable": {"thread_id": original.thread_id, "checkpoint_id": rows[2]["checkpoint_id"]}}
    ).values["messages"]
    after = graph.get_state({"configurable": {"thread_id": fork.thread_id}}).values["messages"]
    assert [(m.id, m.content) for m in after[: len(before)]] == [(m.id, m.content) for m in before]
    assert after[-1].content == "17 * 23 = 391"
    # the original is as it was
    assert db.get_summary(original.id).entry_count == 5


def test_replay_with_a_changed_message(user, db) -> None:
    original = chat_run(db, user, "what is 17 * 23?")
    at = pick_step(open_page("thread", trace=original.id), 1)  # the first model step
    assert at.text_area[0].value == "what is 17 * 23?"
    at = replay_from(original.id, 1, text="what is 6 * 7?")
    assert not at.exception
    assert said(at, "user") == ["what is 6 * 7?"] and "6 * 7 = 42" in said(at, "assistant")
    (fork,) = forks_of(db, user, original.id)
    replayed = db.get_entries(fork.id)
    assert [r["node"] for r in replayed] == ["model", "tools", "model", "summarise"]
    assert replayed[1]["data"]["input"] == {"expression": "6 * 7"}
    # the replay is a conversation of its own, which goes on (here in a new session)
    at = open_page("chat")
    at.selectbox(key="chat_thread_widget").set_value(fork.thread_id).run()
    assert said(at, "user") == ["what is 6 * 7?"]
    at.chat_input(key="chat_input").set_value("what did I ask before?").run(timeout=60)
    assert not at.exception
    assert any("1. what is 6 * 7?" in s for s in said(at, "assistant"))
    assert [t.id for t in forks_of(db, user, original.id)] == [fork.id]


def test_a_replay_and_its_original_link_to_each_other(user, db) -> None:
    original = chat_run(db, user, "what is 2 + 2?")
    replay_from(original.id, 2)
    (fork,) = forks_of(db, user, original.id)

    at = open_page("thread", trace=fork.id)
    assert not at.exception
    found = links(at)
    assert found[f"Forked from “what is 2 + 2?” ({original.id[:8]}), step 2"] == (
        "thread",
        {"trace": [original.id]},
    )
    assert found["Compare with the original"] == ("compare", {"a": [original.id], "b": [fork.id]})

    at = open_page("thread", trace=original.id)
    assert not at.exception
    assert any(m.value == "Replayed as:" for m in at.markdown)
    found = links(at)
    assert found[f"“replay of what is 2 + 2?” ({fork.id[:8]}) from step 2"] == (
        "thread",
        {"trace": [fork.id]},
    )
    assert not any(label.startswith("Forked from") for label in found)

    compare = open_page("compare", a=original.id, b=fork.id)
    assert not compare.exception
    metrics = {m.label: m.value for m in compare.metric}
    # aligned at the fork: the planner and model steps before it were not run again
    assert metrics["Before the fork"] == "2" and metrics["Only in A"] == "0"
    assert any("was run again from step #2 of A" in c.value for c in compare.caption)
