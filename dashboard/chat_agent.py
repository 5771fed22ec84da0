"""The chat agent the dashboard runs (its graph with a PostgreSQL checkpointer, one per
process and model), and what a replay of a recorded step needs: whether the step can be run
again here, the user's message it saw, and the request the thread page hands to the chat
page."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import streamlit as st
from langchain_core.messages import HumanMessage

from agent import build_graph, get_model, make_checkpointer, model_label
from dashboard import common
from tracedb import AutomationTraceDB, TraceSummary

# Where the thread page leaves a replay for the chat page to run.
FORK_KEY = "chat_fork_request"


@dataclass
class Agent:
    graph: Any
    label: str
    resources: ExitStack


@st.cache_resource(show_spinner="Starting the agent…", on_release=lambda agent: agent.resources.close())
def load_agent(url: str, model_spec: str) -> Agent:
    """The compiled graph with its PostgreSQL checkpointer, one per process and model.

    Raises:
        ModelUnavailable: the model cannot be used here.
    """
    model = get_model(model_spec)
    resources = ExitStack()
    saver = resources.enter_context(make_checkpointer(url, max_size=4))
    return Agent(build_graph(model, saver), model_label(model), resources)


@dataclass(frozen=True)
class ForkRequest:
    """A replay asked for on the thread page: run trace ``trace_id`` again from step ``seq``,
    with the user's last message (``message_id``) changed to ``text`` when ``text`` is set."""

    trace_id: str
    seq: int
    message_id: str | None = None
    text: str | None = None

    def values(self) -> dict[str, Any] | None:
        """The change to the state before the step runs (``fork_from_trace(values=)``): a
        message with the id of an existing one replaces it."""
        if self.message_id is None or self.text is None:
            return None
        return {"messages": [HumanMessage(self.text, id=self.message_id)]}


def _checkpoint_config(thread_id: str, checkpoint_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}


def replay_blocker(agent: Agent, summary: TraceSummary, entry: dict[str, Any]) -> str | None:
    """Why this step (recorded with a ``checkpoint_id``) cannot be run again by the chat
    agent here, or None when it can."""
    checkpoint_id = entry["checkpoint_id"]
    if entry.get("node") not in agent.graph.nodes:
        return f"the chat agent has no node {entry.get('node')!r}: another graph recorded it"
    try:
        saved = agent.graph.checkpointer.get_tuple(_checkpoint_config(summary.thread_id, checkpoint_id))
    except psycopg.Error as exc:
        return f"its checkpoint cannot be read: {exc}"
    if saved is None:
        return "its checkpoint is not in this dashboard's database (the run was recorded elsewhere)"
    return None


def last_user_message(agent: Agent, thread_id: str, checkpoint_id: str) -> HumanMessage | None:
    """The last user message in the state a step started from, or None."""
    state = agent.graph.get_state(_checkpoint_config(thread_id, checkpoint_id))
    messages = state.values.get("messages", []) if isinstance(state.values, dict) else []
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def show_origin(db: AutomationTraceDB, summary: TraceSummary | None, step_words: str) -> TraceSummary | None:
    """A link to the run this one was replayed from ("Forked from “name” (id)" then
    ``step_words`` and the step), or a caption when that run is gone; returns the original
    (None when this is no replay or the original is gone)."""
    found = summary.forked_from if summary is not None else None
    if found is None:
        return None
    trace_id, seq = found
    original = db.get_summary(trace_id)
    if original is None:
        st.caption(f"Forked at step {seq} of a trace that no longer exists.")
        return None
    st.page_link(
        "pages/thread.py",
        label=f"Forked from {short_label(original)}{step_words} {seq}",
        icon=":material/call_split:",
        query_params={"trace": original.id},
    )
    return original


def short_label(summary: TraceSummary) -> str:
    """A trace in a sentence: its name (or thread) and a short id, escaped for Markdown."""
    return common.as_plain_markdown(f"“{(summary.name or summary.thread_id)[:60]}” ({summary.id[:8]})")
