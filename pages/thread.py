"""One trace (``/thread?trace=<id>``): header, timeline with its turns and the steps running
now, time per node, entries with their tokens and cost; live while the run is going on. A
step of a chat run can be replayed (on the chat page); a replay links to its original and
the original to its replays."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
import streamlit as st

from agent import ModelUnavailable
from dashboard import charts, chat_agent, common, downloads, frames, graph, human, live, navigation, widgets
from tracedb import AutomationTraceDB, TraceDBError, TraceSummary

REFRESH_S = 2.0
ENTRIES_PER_PAGE = 100
FLASH_KEY = "thread_flash"
PAGE_KEY = "entries_page"
SEQ_KEY = "entry_seq"
TABLE_KEY = "entries_table"
TICKED_KEY = "entries_ticked"
NODES_KEY = "entry_nodes"
GRAPH_KEY = "graph_chart"
GRAPH_SEEN_KEY = "graph_seen"
REPLAY_KEY = "replay_from_here"
# How many of the runs replayed from a trace its page links to.
MAX_FORKS = 20
ENTRY_COLUMNS = {
    "seq": st.column_config.NumberColumn("#", width=55),
    "turn": st.column_config.NumberColumn("turn", width=50),
    "node": st.column_config.TextColumn("node", width=90),
    "kind": st.column_config.TextColumn("kind", width=70),
    "name": st.column_config.TextColumn("name", width=120),
    "status": st.column_config.TextColumn("status", width=60),
    "started": st.column_config.TextColumn("started", width=80, help="Time since the trace's first step"),
    "took": st.column_config.TextColumn("took", width=95),
    "model": st.column_config.TextColumn("model", width=100),
    "tokens": st.column_config.NumberColumn(
        "tokens", format="localized", width=70, help="Tokens the step's model used (input + output)"
    ),
    "cost": st.column_config.TextColumn("cost", width=70),
    "input": st.column_config.TextColumn("input", width=220),
    "output": st.column_config.TextColumn("output", width=260),
}


@st.cache_data(max_entries=8, ttl=600, show_spinner=False, hash_funcs=common.STORE_HASH)
def entry_frame(
    db: AutomationTraceDB, trace_id: str, entry_count: int, updated_at: datetime, running: str
) -> pd.DataFrame:
    """The trace's entry columns, the steps running now last; cached per store view and
    trace state (its count, last update and running steps)."""
    return frames.entries_frame(db.entry_columns(trace_id))


def running_key(summary: TraceSummary) -> str:
    """What tells the running steps of a trace apart from earlier ones, for the cache."""
    return "|".join(f"{m.get('task_id')}@{m.get('started_at')}" for m in summary.running) + summary.status


def pick_recent(db: AutomationTraceDB) -> str | None:
    """A picker of the most recent traces, for a visit without ``?trace=``."""
    recent = db.list_traces(limit=100).items
    if not recent:
        st.info("No traces are stored yet.")
        st.page_link(
            "pages/traces.py", label="Go to the traces page to load demo traces", icon=":material/table_rows:"
        )
        st.page_link("pages/chat.py", label="Or chat with the agent", icon=":material/chat:")
        return None
    labels = {s.id: common.trace_label(s) for s in recent}
    return widgets.id_select("Trace", labels, "thread_pick", placeholder="Pick one of the most recent traces")


def header(current: TraceSummary, entries: pd.DataFrame, refreshing: bool) -> None:
    """Status, what is running, counts, how long it took, what it used, and where it comes
    from."""
    common.status_badge(current.status)
    if current.status == "failed":
        st.caption(f"Error: {common.as_plain_markdown(common.error_hint(current) or '')}")
    elif current.status == "abandoned":
        st.caption(
            "Its writer has not been heard from for a while: the run's process stopped or lost the database. "
            "This view no longer refreshes; if the run comes back, reload the page."
        )
    live.running_line(entries, current)
    if current.dropped_count:
        st.warning(
            f"{human.count(current.dropped_count, 'entry')} of this run could not be recorded: the recorder "
            "dropped them (its buffer was full while the database could not be reached). Each gap is a step "
            "of kind “gap” in the timeline and the entries.",
            icon=":material/report:",
        )
    with st.container(horizontal=True, gap="large"):
        st.metric("Entries", f"{current.entry_count:,}", width="content")
        st.metric("Error steps", f"{current.error_count:,}", width="content")
        if current.turns:
            st.metric("Turns", f"{current.turns:,}", width="content")
        st.metric(
            "Work", human.duration(current.work_ms), help="The steps' durations added up", width="content"
        )
        st.metric(
            "Span",
            human.duration(current.duration_ms),
            help="From the first step's start to the last step's end, pauses between turns included",
            width="content",
        )
        if current.total_tokens is not None:
            st.metric(
                "Tokens",
                human.tokens(current.total_tokens),
                help=f"{human.number(current.input_tokens)} input, {human.number(current.output_tokens)} output",
                width="content",
            )
        if current.cost_usd is not None:
            st.metric("Cost", human.cost(current.cost_usd), width="content")
    st.text(
        f"thread {current.thread_id}  ·  user {current.user_id}  ·  provider {current.provider_id or human.MISSING}\n"
        f"created {human.when(current.created_at)}  ·  updated {human.when(current.updated_at)}\nid {current.id}"
    )
    if refreshing:
        st.caption(f"Running: this view refreshes every {REFRESH_S:g} s until the run ends.")


def lineage(db: AutomationTraceDB, current: TraceSummary) -> None:
    """Where a replayed run comes from (with a comparison to it), and the runs replayed from
    this one."""
    if current.forked_from is not None:
        with st.container(horizontal=True, gap="medium"):
            original = chat_agent.show_origin(db, current, ", step")
            if original is not None:
                st.page_link(
                    "pages/compare.py",
                    label="Compare with the original",
                    icon=":material/compare_arrows:",
                    query_params={"a": original.id, "b": current.id},
                )
    forks = db.get_forks(current.id, limit=MAX_FORKS)
    if forks:
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.markdown("Replayed as:", width="content")
            for fork in forks:
                step = (fork.forked_from or ("", None))[1]
                st.page_link(
                    "pages/thread.py",
                    label=f"{chat_agent.short_label(fork)} from step {step}",
                    icon=":material/replay:",
                    query_params={"trace": fork.id},
                )


def replay_agent(
    db: AutomationTraceDB, current: TraceSummary, entry: dict[str, Any]
) -> tuple[chat_agent.Agent | None, str | None]:
    """The chat agent that can run this step again, or why none can."""
    if not entry.get("checkpoint_id"):
        return None, "recorded without a checkpointer"
    if current.status == "running":
        return None, "the run is still going"
    try:
        agent = chat_agent.load_agent(db.server.url, os.environ.get("LLM_MODEL", ""))
    except ModelUnavailable as exc:
        return None, f"the chat model is not available: {exc}"
    except (psycopg.Error, TraceDBError) as exc:
        return None, f"the agent's checkpoints cannot be opened: {exc}"
    reason = chat_agent.replay_blocker(agent, current, entry)
    return (None, reason) if reason else (agent, None)


def replay_control(db: AutomationTraceDB, current: TraceSummary, entry: dict[str, Any]) -> None:
    """Run the chat agent again from this step, in a new conversation on the chat page,
    recorded as a trace of its own; the user's message the step saw can be changed first."""
    agent, reason = replay_agent(db, current, entry)
    if agent is None:
        st.button("Replay from here", key=REPLAY_KEY, icon=":material/replay:", disabled=True, help=reason)
        st.caption(f"Replay from here is not available: {reason}.")
        return
    message = chat_agent.last_user_message(agent, current.thread_id, entry["checkpoint_id"])
    text = None
    if message is not None:
        text = st.text_area(
            "The user's message this step saw (change it to replay with another)",
            value=message.text,
            key=f"replay_text_{current.id}_{entry['seq']}",
            height=80,
        )
    clicked = st.button(
        "Replay from here",
        key=REPLAY_KEY,
        icon=":material/replay:",
        type="primary",
        help="Run the agent again from this step in a new conversation on the chat page; "
        "the new run is recorded as a trace of its own",
    )
    if not clicked:
        return
    if text is not None and not text.strip():
        st.error("The message cannot be empty.")
        return
    edited = message is not None and text is not None and text != message.text
    st.session_state[chat_agent.FORK_KEY] = chat_agent.ForkRequest(
        current.id,
        int(entry["seq"]),
        message_id=message.id if edited and message is not None else None,
        text=text if edited else None,
    )
    st.switch_page("pages/chat.py")


def graph_section(current: TraceSummary, entries: pd.DataFrame) -> None:
    """The agent's graph, when the trace recorded it: each node with what its steps did, the
    running one outlined. Clicking a node shows its steps in the entries below."""
    drawn = graph.graph_of(current.metadata)
    if drawn is None:
        return
    st.subheader("Graph")
    direction = (
        st.segmented_control("Layout", list(graph.DIRECTIONS), default="left to right", key="graph_direction")
        or "left to right"
    )
    facts = graph.node_facts(drawn, entries, live.clock(current))
    lanes = dict(zip(facts["node"], facts["lane"], strict=True))
    # A click is a new selection of the chart (sent before this run): it filters the entries
    # once, and the filter can then be changed by hand. Read before the chart is drawn, so
    # the chart rings the node it filters by.
    selection = st.session_state.get(GRAPH_KEY) or {}
    points = selection.get("selection", {}).get("points", [])
    picked = next((p.get("customdata") for p in points if p.get("customdata") in lanes), None)
    if picked != st.session_state.get(GRAPH_SEEN_KEY):
        st.session_state[GRAPH_SEEN_KEY] = picked
        if picked is not None and lanes[picked] in frames.choices(entries, "node"):
            st.session_state[NODES_KEY] = [lanes[picked]]
            first_page()
        elif picked is not None:
            st.info(f"{common.as_plain_markdown(drawn.nodes[picked])} has no steps in this trace.")
    filtered = st.session_state.get(NODES_KEY) or []
    chosen = next((n for n, lane in lanes.items() if [lane] == filtered), None)
    st.plotly_chart(
        graph.graph_figure(drawn, facts, graph.DIRECTIONS[direction], chosen),
        key=GRAPH_KEY,
        on_select="rerun",
        selection_mode="points",
        config={"displaylogo": False, "displayModeBar": False},
    )
    st.caption(
        "Dotted: an edge a condition chooses. Outlined in blue: running now; in red: with errors. "
        "Click a node to see its steps in the entries below."
    )


def timeline_section(timeline: pd.DataFrame, axis: str) -> None:
    st.subheader("Timeline")
    colour_by = (
        st.segmented_control("Colour by", ["kind", "status", "node"], default="kind", key="colour_by")
        or "kind"
    )
    drawn = timeline
    if len(timeline) > charts.WEBGL_ABOVE:
        end = float(timeline["end"].max()) or 1.0
        low, high = st.slider(
            "Window" + (" (s)" if axis == "time" else " (steps)"), 0.0, end, (0.0, end), key="timeline_window"
        )
        drawn = timeline[(timeline["end"] >= low) & (timeline["start"] <= high)]
        if len(drawn) > charts.WEBGL_ABOVE:
            st.caption(
                f"{len(drawn):,} steps in the window, drawn with WebGL: steps of a row that would share a "
                "pixel are joined into one bar. Narrow the window to see single steps."
            )
    bands = frames.turn_bands(drawn)
    st.plotly_chart(
        charts.timeline_figure(drawn, axis, colour_by, bands=bands),
        key="timeline",
        config={"displaylogo": False},
    )


def node_section(entries: pd.DataFrame) -> None:
    st.subheader("Time per node")
    st.dataframe(
        frames.readable_node_stats(frames.node_stats(entries)),
        key="node_stats",
        hide_index=True,
        width="stretch",
        placeholder=human.MISSING,
        column_config={
            "share of time": st.column_config.ProgressColumn(
                "share of time", format="percent", min_value=0, max_value=1, width="medium"
            ),
        },
    )


def first_page() -> None:
    """Other filters, other rows: back to the first page of them."""
    st.session_state[PAGE_KEY] = 1


def forget_selection(table_key: str) -> None:
    """A typed entry number wins over a ticked row: untick it, in the browser too."""
    st.session_state[table_key] = {"selection": {"rows": [], "columns": [], "cells": []}}
    st.session_state[TICKED_KEY] = None


def entries_section(
    db: AutomationTraceDB, current: TraceSummary, entries: pd.DataFrame, timeline: pd.DataFrame
) -> None:
    """Filters, one page of entries with previews of their data, and the JSON of one, with
    the control to replay the run from it."""
    trace_id = current.id
    st.subheader("Entries")
    with st.container(horizontal=True):
        chosen = {
            column: st.multiselect(
                column.capitalize(),
                frames.choices(entries, column),
                key=key,
                on_change=first_page,
                width=220,
            )
            for column, key in (
                ("node", NODES_KEY),
                ("kind", "entry_kinds"),
                ("status", "entry_statuses"),
            )
        }
    shown = frames.filter_entries(timeline, chosen["node"], chosen["kind"], chosen["status"])
    table_box = st.container()
    rows, _, _ = widgets.paged(shown, ENTRIES_PER_PAGE, PAGE_KEY, where=st.container())
    stored = [int(v) for v in rows["seq"].dropna()]
    previews = frames.entry_previews(db.entries_by_seq(trace_id, stored))
    view = frames.entries_view(rows).merge(previews.astype({"seq": "Int64"}), on="seq", how="left")
    # The model, tokens and cost columns only for a trace whose steps reported usage.
    shown_columns = [c for c in ENTRY_COLUMNS if frames.has_usage(entries) or c not in frames.USAGE_VIEW]
    table_key = widgets.rows_key(TABLE_KEY, view["seq"].tolist())
    with table_box:
        event = st.dataframe(
            view,
            key=table_key,
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            width="stretch",
            placeholder=human.MISSING,
            column_config=ENTRY_COLUMNS,
            column_order=shown_columns,
        )
        st.caption(
            f"{len(shown):,} of {human.count(len(entries), 'entry')} · {ENTRIES_PER_PAGE} per page · "
            "tick a row to see its JSON"
        )

    # A newly ticked row puts its number in the field; typing a number unticks the row. A
    # step running now has no number (and no JSON) yet.
    ticked = [v for v in widgets.selected_values(event, view, "seq") if pd.notna(v)]
    if ticked and int(ticked[0]) != st.session_state.get(TICKED_KEY):
        st.session_state[SEQ_KEY] = int(ticked[0])
    st.session_state[TICKED_KEY] = int(ticked[0]) if ticked else None

    last = frames.finished(entries)["seq"].max()
    if pd.isna(last):
        return
    st.subheader("Entry JSON")
    seq = st.number_input(
        "Entry number (#)",
        min_value=0,
        max_value=int(last),
        value=None,
        step=1,
        key=SEQ_KEY,
        on_change=forget_selection,
        args=(table_key,),
        width=220,
    )
    if seq is None:
        return
    entry = db.get_entry(trace_id, int(seq))
    if entry is None:
        st.warning(f"This trace has no entry {int(seq)}.")
        return
    facts = [f"Entry #{entry['seq']}", entry.get("node"), entry.get("kind"), entry.get("name")]
    if entry.get("turn"):
        facts.append(f"turn {entry['turn']}")
    facts += [entry.get("status"), f"took {human.duration(entry.get('duration_ms'))}"]
    st.caption(" · ".join(str(f) for f in facts if f))
    replay_control(db, current, entry)
    common.show_json(entry["data"], expanded=2)


def trace_view(db: AutomationTraceDB, trace_id: str, refreshing: bool) -> None:
    """Everything that changes while a run goes on; a fragment reruns it alone."""
    current = db.get_summary(trace_id)
    if current is None:
        st.warning("This trace has just been deleted.")
        return
    if refreshing and current.status != "running":
        st.rerun()  # the run has ended: a full rerun stops the refresh
    entries = entry_frame(db, trace_id, current.entry_count, current.updated_at, running_key(current))
    header(current, entries, refreshing)
    graph_section(current, entries)
    if entries.empty:
        st.info("This trace has no entries yet.")
        return
    timeline, axis = frames.timeline_frame(entries, live.clock(current))
    timeline_section(timeline, axis)
    node_section(entries)
    entries_section(db, current, entries, timeline)


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
st.title("Thread")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.success(flash)

trace_id = st.query_params.get("trace") or pick_recent(db)
if not trace_id:
    st.stop()
st.query_params["trace"] = trace_id
summary = db.get_summary(trace_id)
if summary is None:
    st.error("No trace has this id:")
    st.code(trace_id, language=None)
    st.page_link("pages/traces.py", label="Back to the traces", icon=":material/arrow_back:")
    st.stop()

if message := widgets.rename_form(db, summary, key="trace_name"):
    st.session_state[FLASH_KEY] = message
    st.rerun()

lineage(db, summary)

if summary.status == "running":
    st.fragment(run_every=REFRESH_S)(trace_view)(db, trace_id, True)
else:
    trace_view(db, trace_id, False)

st.download_button(
    "Download the whole trace (JSON)",
    data=downloads.trace_file(db, trace_id),
    file_name=f"trace-{trace_id}.json",
    mime="application/json",
    key="trace_download",
    icon=":material/download:",
    on_click="ignore",
)
