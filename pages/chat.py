"""Talk to the agent; the thread's trace grows beside the conversation as it is recorded."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import streamlit as st
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage

from agent import ModelUnavailable, build_graph, get_model, make_checkpointer, model_label, user_input
from dashboard import common, frames
from tracedb import TraceDBError, TraceFilter, TraceSummary
from tracedb.recorder import TraceRecorder

NEW = "__new__"
LIVE_ROWS = 30


@dataclass
class Agent:
    graph: Any
    label: str
    resources: ExitStack


@st.cache_resource(show_spinner="Starting the agent…", on_release=lambda agent: agent.resources.close())
def load_agent(url: str, model_spec: str) -> Agent:
    """The compiled graph with its PostgreSQL checkpointer, one per process and model."""
    model = get_model(model_spec)
    resources = ExitStack()
    saver = resources.enter_context(make_checkpointer(url, max_size=4))
    return Agent(build_graph(model, saver), model_label(model), resources)


def new_conversation() -> None:
    st.session_state["chat_new_thread"] = f"chat-{uuid.uuid4().hex[:12]}"


def thread_trace(thread_id: str) -> TraceSummary | None:
    items = db.list_traces(TraceFilter(thread_id=thread_id), limit=1).items
    return items[0] if items else None


def show_trace(thread_id: str, trace_id: str | None = None) -> None:
    """The thread's trace as stored right now: status, counts and its latest entries."""
    summary = db.get_summary(trace_id) if trace_id else thread_trace(thread_id)
    if summary is None:
        st.caption("No trace yet: it starts with the first message.")
        return
    common.status_badge(summary.status)
    st.text(f"{summary.entry_count:,} entries   ·   {summary.error_count:,} errors")
    entries = frames.entries_frame(db.entry_columns(summary.id))
    recent = entries.tail(LIVE_ROWS)[["seq", "node", "name", "status", "duration_ms"]]
    st.dataframe(
        recent,
        hide_index=True,
        width="stretch",
        column_config={"duration_ms": st.column_config.NumberColumn("ms", format="%.1f")},
    )
    st.page_link(
        "pages/thread.py",
        label="Open the thread page",
        icon=":material/timeline:",
        query_params={"trace": summary.id},
    )


def show_message(message: BaseMessage) -> None:
    if isinstance(message, HumanMessage):
        with st.chat_message("user"):
            st.text(message.text)
    elif isinstance(message, AIMessage):
        with st.chat_message("assistant"):
            if message.text:
                st.text(message.text)
            if message.tool_calls:
                st.caption("Tool calls")
                st.code(
                    "\n".join(
                        f"{c['name']}({json.dumps(c['args'], ensure_ascii=False)})"
                        for c in message.tool_calls
                    ),
                    language=None,
                    wrap_lines=True,
                )
    elif isinstance(message, ToolMessage):
        with st.chat_message("assistant", avatar=":material/build:"):
            st.caption("Tool result")
            st.code(message.text[:2000], language=None, wrap_lines=True)


db = common.require_db()
user = common.current_user()
st.title("Chat")
if flash := st.session_state.pop("chat_flash", None):
    st.warning(flash)
try:
    agent = load_agent(db.server.url, os.environ.get("LLM_MODEL", ""))
except ModelUnavailable as exc:
    st.error(f"The chat model is not available: {exc}")
    st.stop()
except (psycopg.Error, TraceDBError) as exc:
    st.error(f"The conversation store cannot be opened: {exc}")
    st.stop()

if "chat_new_thread" not in st.session_state:
    new_conversation()
if pending := st.session_state.pop("chat_pending_pick", None):
    st.session_state["chat_pick"] = pending
threads: dict[str, str] = {}
for s in db.get_user_traces(user, limit=40):
    threads.setdefault(s.thread_id, f"{(s.name or s.thread_id)[:70]} · {s.updated_at:%Y-%m-%d %H:%M}")
picked = st.session_state.get("chat_pick")
if picked not in (None, NEW) and picked not in threads:
    threads[picked] = picked
pick = st.selectbox(
    "Conversation",
    [NEW, *threads],
    key="chat_pick",
    on_change=new_conversation,
    format_func=lambda v: "New conversation" if v == NEW else threads[v],
)
thread_id: str = st.session_state["chat_new_thread"] if pick == NEW else pick
config = {"configurable": {"thread_id": thread_id}}
st.text(f"user {user}   ·   model {agent.label}   ·   thread {thread_id}")

chat_col, trace_col = st.columns([3, 2], gap="large")
with trace_col:
    st.subheader("Live trace")
    live = st.empty()
with chat_col:
    try:
        history = agent.graph.get_state(config).values.get("messages", [])
    except psycopg.Error as exc:
        st.error(f"The conversation history cannot be read: {exc}")
        history = []
    for message in history:
        show_message(message)
    if not history:
        st.caption(
            "Ask for arithmetic (what is 17 * 23?), a unit conversion (5 km in miles), a date "
            "(what day is 2026-12-24?) or notes; the agent answers with its tools and every step "
            "is recorded on the right."
        )

prompt = st.chat_input("Ask the agent, e.g. what is 17 * 23?", key="chat_input")
if not prompt:
    with live.container():
        show_trace(thread_id)
    st.stop()

recorder = TraceRecorder(db, user, provider_id=agent.label, name=prompt[:80] if not history else None)
final: dict[str, str] = {}


def reply_tokens() -> Iterator[str]:
    """The model's answer as it streams, escaped; the live trace redrawn after every step."""
    stream = recorder.stream(agent.graph, user_input(prompt), config, stream_mode=["messages", "updates"])
    for mode, data in stream:
        if mode == "messages":
            chunk, meta = data
            if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model" and chunk.text:
                yield common.as_plain_markdown(chunk.text)
        else:
            for update in data.values():
                replies = [
                    m
                    for m in (update or {}).get("messages", [])
                    if isinstance(m, AIMessage) and not m.tool_calls and m.text
                ]
                if replies:
                    final["text"] = replies[-1].text
            with live.container():
                show_trace(thread_id, recorder.trace_id)


with chat_col:
    with st.chat_message("user"):
        st.text(prompt)
    with st.chat_message("assistant"):
        try:
            streamed = st.write_stream(reply_tokens())
        except (psycopg.Error, TraceDBError) as exc:
            st.session_state["chat_flash"] = f"The turn could not finish: {exc}"
            streamed = ""
        if not streamed and final.get("text"):
            st.text(final["text"])

report = recorder.close()
if not report.ok:
    st.session_state["chat_flash"] = (
        f"{report.pending + report.dropped} trace entries could not be stored: "
        f"{'; '.join(report.errors[-3:])}"
    )
if pick == NEW:
    st.session_state["chat_pending_pick"] = thread_id
    new_conversation()
# Show the turn as stored: the history from the checkpointer and the final trace.
st.rerun()
