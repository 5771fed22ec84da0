"""Talk to the agent; the thread's trace grows beside the conversation as it is recorded."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import streamlit as st
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langgraph.errors import InvalidUpdateError

from agent import ForkError, ModelUnavailable, fork_from_trace, user_input
from dashboard import chat_agent, common, frames, human, live, navigation, usage, widgets
from dashboard.chat_agent import FORK_KEY, Agent, ForkRequest, load_agent
from tracedb import AutomationTraceDB, TraceDBError, TraceFilter, TraceSummary
from tracedb.recorder import TraceRecorder

NEW = "__new__"
# How many steps of a trace are read to show a conversation the checkpointer does not hold.
HISTORY_FROM_TRACE = 500
THREAD_KEY = "chat_thread"
NEW_THREAD_KEY = "chat_new_thread"
STEPS_KEY = "chat_steps"
FLASH_KEY = "chat_flash"
# While the model streams, the live trace is redrawn at most this often (seconds).
REDRAW_S = 0.5


def new_thread_id() -> str:
    return f"chat-{uuid.uuid4().hex[:12]}"


def conversations(db: AutomationTraceDB, user: str) -> dict[str, str]:
    """The user's recent conversations by thread id, each with a label that does not change
    while the conversation goes on (its first question, when it began, a short id)."""
    labels: dict[str, str] = {NEW: "New conversation"}
    for s in db.get_user_traces(user, limit=40):
        if s.thread_id not in labels:
            title = (s.name or "untitled")[:60]
            labels[s.thread_id] = f"{title} · {s.created_at:%Y-%m-%d %H:%M} · {s.thread_id[-6:]}"
    return labels


def thread_trace(db: AutomationTraceDB, thread_id: str) -> TraceSummary | None:
    items = db.list_traces(TraceFilter(thread_id=thread_id), limit=1).items
    return items[0] if items else None


def show_trace(db: AutomationTraceDB, summary: TraceSummary | None, kept: dict[str, pd.DataFrame]) -> None:
    """The thread's trace as stored right now: status, counts and its latest steps."""
    if summary is None:
        st.caption("No trace yet: it starts with the first message.")
        return
    common.status_badge(summary.status)
    used = usage.tokens_line(summary)
    st.text(
        f"{human.count(summary.entry_count, 'entry')} · {human.count(summary.error_count, 'error step')}"
        f" · {human.count(summary.turns, 'turn')} · {human.work_and_span(summary)}"
        + (f"\n{used}" if used != human.MISSING else "")
    )
    steps = live.recent_steps(db, summary, kept)
    live.running_line(steps, summary)
    st.dataframe(
        pd.DataFrame(
            {
                "#": steps["seq"],
                "turn": steps["turn"],
                "node": steps["node"],
                "name": steps["name"],
                "status": steps["status"],
                "took": frames.took_text(steps, live.clock(summary)),
            }
        ),
        hide_index=True,
        width="stretch",
        placeholder=human.MISSING,
    )
    st.page_link(
        "pages/thread.py",
        label="Open the thread page",
        icon=":material/timeline:",
        query_params={"trace": summary.id},
    )


def show_live(
    slot: Any, db: AutomationTraceDB, recorder: TraceRecorder, kept: dict[str, pd.DataFrame]
) -> None:
    """Redraw the trace a turn is recording, in ``slot``."""
    with slot.container():
        show_trace(db, db.get_summary(recorder.trace_id) if recorder.trace_id else None, kept)


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


def history_from_trace(db: AutomationTraceDB, summary: TraceSummary) -> list[BaseMessage]:
    """The questions and answers a trace recorded, for a conversation whose messages the
    checkpointer does not hold (run elsewhere, or demo data)."""
    rows = db.get_entries(summary.id, limit=HISTORY_FROM_TRACE)
    return [
        HumanMessage(text) if role == "user" else AIMessage(text)
        for role, text in frames.conversation_from_entries(rows)
    ]


def show_history(agent: Agent, db: AutomationTraceDB, thread_id: str, summary: TraceSummary | None) -> None:
    """The conversation so far: from the checkpointer, else from the trace."""
    try:
        history = agent.graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages", [])
    except psycopg.Error as exc:
        st.error(f"The conversation history cannot be read: {exc}")
        history = []
    if not history and summary is not None and summary.entry_count:
        history = history_from_trace(db, summary)
        if history:
            st.caption(
                "Shown from the trace: the agent's saved messages for this conversation are not in "
                "this database, so a new message starts it afresh on the same thread."
            )
    for message in history:
        show_message(message)
    if not history:
        st.caption(
            "Ask for arithmetic (what is 17 * 23?), a unit conversion (5 km in miles), a date "
            "(what day is 2026-12-24?) or notes; the agent answers with its tools and every step "
            "is recorded on the right."
        )


def start_fork(db: AutomationTraceDB, agent: Agent, request: ForkRequest) -> dict[str, Any] | None:
    """Fork the thread of a recorded run at a step (the thread page's request); the new
    thread becomes the chosen conversation. Returns the fork's config and metadata, or None
    (and says why) when it cannot be forked."""
    try:
        fork = fork_from_trace(db, agent.graph, request.trace_id, request.seq, values=request.values())
    except (ForkError, InvalidUpdateError, psycopg.Error, TraceDBError) as exc:
        st.error(f"This step cannot be replayed: {exc}")
        return None
    st.session_state[THREAD_KEY] = fork.thread_id
    original = db.get_summary(request.trace_id)
    name = f"replay of {original.name or original.thread_id}" if original is not None else "replay"
    return {"config": fork.config, "metadata": fork.metadata, "name": name[:200]}


def reply_tokens(
    recorder: TraceRecorder,
    agent: Agent,
    graph_input: dict[str, Any] | None,
    config: dict[str, Any],
    final: dict[str, str],
    redraw: Any,
) -> Iterator[str]:
    """The model's answer as it streams, escaped; ``redraw`` after every graph step, and
    while a step streams at most every ``REDRAW_S`` (its running step shows growing).
    ``graph_input`` is the user's message, or None to run a forked thread from where it
    stands."""
    stream = recorder.stream(agent.graph, graph_input, config, stream_mode=["messages", "updates"])
    drawn = time.monotonic()
    for mode, data in stream:
        if mode == "messages":
            chunk, meta = data
            if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model" and chunk.text:
                yield common.as_plain_markdown(chunk.text)
            if time.monotonic() - drawn >= REDRAW_S:
                redraw()
                drawn = time.monotonic()
        else:
            for update in data.values():
                replies = [
                    m
                    for m in (update or {}).get("messages", [])
                    if isinstance(m, AIMessage) and not m.tool_calls and m.text
                ]
                if replies:
                    final["text"] = replies[-1].text
            redraw()
            drawn = time.monotonic()


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
user = common.current_user()
st.title("Chat")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.warning(flash)
try:
    agent = load_agent(db.server.url, os.environ.get("LLM_MODEL", ""))
except ModelUnavailable as exc:
    st.error(f"The chat model is not available: {exc}")
    st.stop()
except (psycopg.Error, TraceDBError) as exc:
    st.error(f"The conversation store cannot be opened: {exc}")
    st.stop()

# A replay asked for on the thread page runs here, as a turn without a new message.
request: ForkRequest | None = st.session_state.pop(FORK_KEY, None)
fork = start_fork(db, agent, request) if request is not None else None

st.session_state.setdefault(NEW_THREAD_KEY, new_thread_id())
kept: dict[str, pd.DataFrame] = st.session_state.setdefault(STEPS_KEY, {})
pick = widgets.id_select("Conversation", conversations(db, user), THREAD_KEY, default=NEW, width=520)
thread_id: str = st.session_state[NEW_THREAD_KEY] if pick in (None, NEW) else pick
config = {"configurable": {"thread_id": thread_id}}
st.text(f"user {user}  ·  model {agent.label}  ·  thread {thread_id}")
summary = thread_trace(db, thread_id)
chat_agent.show_origin(db, summary, " at step")

chat_col, trace_col = st.columns([3, 2], gap="large")
with trace_col:
    st.subheader("Live trace")
    slot = st.empty()
with chat_col:
    show_history(agent, db, thread_id, summary)

prompt = st.chat_input("Ask the agent, e.g. what is 17 * 23?", key="chat_input")
if fork is not None:
    recorder = TraceRecorder(db, user, provider_id=agent.label, name=fork["name"], metadata=fork["metadata"])
    graph_input, config = None, fork["config"]
elif prompt:
    recorder = TraceRecorder(db, user, provider_id=agent.label, name=prompt[:80] if summary is None else None)
    graph_input = user_input(prompt)
else:
    with slot.container():
        show_trace(db, summary, kept)
    st.stop()

final: dict[str, str] = {}
with chat_col:
    if graph_input is not None:
        with st.chat_message("user"):
            st.text(prompt)
    with st.chat_message("assistant"):
        try:
            streamed = st.write_stream(
                reply_tokens(
                    recorder, agent, graph_input, config, final, lambda: show_live(slot, db, recorder, kept)
                )
            )
        except (psycopg.Error, TraceDBError) as exc:
            st.session_state[FLASH_KEY] = f"The turn could not finish: {exc}"
            streamed = ""
        if not streamed and final.get("text"):
            st.text(final["text"])

report = recorder.close()
if not report.ok:
    st.session_state[FLASH_KEY] = (
        f"{report.pending + report.dropped} trace entries could not be stored: {'; '.join(report.errors[-3:])}"
    )
if pick in (None, NEW):
    st.session_state[THREAD_KEY] = thread_id  # the new conversation is now an earlier one
    st.session_state[NEW_THREAD_KEY] = new_thread_id()
# Show the turn as stored: the history from the checkpointer and the final trace.
st.rerun()
