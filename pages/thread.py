"""One trace (``/thread?trace=<id>``): header, timeline, time per node, entries; live while
the run is going on."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import streamlit as st

from dashboard import charts, common, frames
from tracedb import export

REFRESH_S = 2.0
ENTRIES_PER_PAGE = 100
FLASH_KEY = "thread_flash"


@st.cache_data(max_entries=8, ttl=600, show_spinner=False)
def entry_frame(_db: object, trace_id: str, entry_count: int, updated_at: datetime) -> pd.DataFrame:
    """The trace's entry columns; cached per (trace, count, last update)."""
    return frames.entries_frame(_db.entry_columns(trace_id))


def back_to_first_page() -> None:
    st.session_state["entries_page"] = 1
    forget_selection()


def forget_selection() -> None:
    """Selections are row positions: they mean nothing once the rows shown change."""
    st.session_state.pop("entries_table", None)


def whole_trace(trace_id: str) -> str:
    trace = db.load_trace_by_id(trace_id)
    return json.dumps(export.trace_to_dict(trace) if trace else None, ensure_ascii=False, indent=1)


def seconds(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:,.2f} s"


db = common.require_db()
st.title("Thread")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.success(flash)

trace_id = st.query_params.get("trace")
if not trace_id:
    recent = db.list_traces(limit=100).items
    if not recent:
        st.info("No traces are stored yet. Run a chat turn or load demo data with `python -m tracedb demo`.")
        st.stop()
    labels = {s.id: common.trace_label(s) for s in recent}
    picked = st.selectbox(
        "Trace",
        list(labels),
        index=None,
        key="thread_pick",
        format_func=labels.get,
        placeholder="Pick one of the most recent traces",
    )
    if picked is None:
        st.stop()
    st.query_params["trace"] = picked
    trace_id = picked

summary = db.get_summary(trace_id)
if summary is None:
    st.error("No trace has this id:")
    st.code(trace_id, language=None)
    st.stop()

if st.session_state.get("trace_name_for") != summary.id:
    st.session_state["trace_name_for"] = summary.id
    st.session_state["trace_name"] = summary.name or ""
with st.form("trace_name_form", border=False):
    name_col, save_col = st.columns([6, 1], vertical_alignment="bottom")
    new_name = name_col.text_input("Name", key="trace_name", max_chars=1000)
    if save_col.form_submit_button("Save name", key="trace_name_save", width="stretch"):
        if not new_name.strip():
            st.error("A name cannot be empty.")
        elif db.rename_trace(summary.id, new_name.strip()):
            st.session_state[FLASH_KEY] = "Saved the new name."
            st.session_state.pop("trace_name_for", None)
            st.rerun()
        else:
            st.error("This trace no longer exists.")

live = summary.status == "running"


@st.fragment(run_every=REFRESH_S if live else None)
def trace_view() -> None:
    current = db.get_summary(trace_id)
    if current is None:
        st.warning("This trace has just been deleted.")
        return
    if live and current.status != "running":
        st.rerun()  # the run has ended: a full rerun stops the refresh
    cols = st.columns(4)
    cols[0].metric("Status", current.status)
    cols[1].metric("Entries", f"{current.entry_count:,}")
    cols[2].metric("Errors", f"{current.error_count:,}")
    cols[3].metric("Duration", seconds(current.duration_ms))
    st.text(
        f"thread {current.thread_id}   ·   user {current.user_id}   ·   provider "
        f"{current.provider_id or '–'}\ncreated {current.created_at:%Y-%m-%d %H:%M:%S %Z}   ·   "
        f"updated {current.updated_at:%Y-%m-%d %H:%M:%S %Z}   ·   id {current.id}"
    )
    if live:
        st.caption(f"Running: this view refreshes every {REFRESH_S:g} s until the run ends.")

    entries = entry_frame(db, trace_id, current.entry_count, current.updated_at)
    if entries.empty:
        st.info("This trace has no entries yet.")
        return
    timeline, axis = frames.timeline_frame(entries)

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
    st.plotly_chart(
        charts.timeline_figure(drawn, axis, colour_by), key="timeline", config={"displaylogo": False}
    )

    st.subheader("Time per node")
    st.dataframe(
        frames.node_stats(entries),
        key="node_stats",
        hide_index=True,
        width="stretch",
        column_config={
            "share": st.column_config.ProgressColumn(
                "share of time", format="percent", min_value=0, max_value=1, width="large"
            ),
            **{
                c: st.column_config.NumberColumn(c, format="%.1f")
                for c in ("total_ms", "mean_ms", "p50_ms", "p95_ms")
            },
        },
    )

    st.subheader("Entries")
    f1, f2, f3 = st.columns(3)
    nodes = f1.multiselect(
        "Node", frames.choices(entries, "node"), key="entry_nodes", on_change=back_to_first_page
    )
    kinds = f2.multiselect(
        "Kind", frames.choices(entries, "kind"), key="entry_kinds", on_change=back_to_first_page
    )
    statuses = f3.multiselect(
        "Status", frames.choices(entries, "status"), key="entry_statuses", on_change=back_to_first_page
    )
    shown = frames.filter_entries(timeline, nodes, kinds, statuses)
    page_count = max(1, -(-len(shown) // ENTRIES_PER_PAGE))
    number = st.session_state.get("entries_page", 1)
    number = number if isinstance(number, int) and 1 <= number <= page_count else 1
    rows = shown.iloc[(number - 1) * ENTRIES_PER_PAGE : number * ENTRIES_PER_PAGE]
    previews = frames.entry_previews(db.entries_by_seq(trace_id, rows["seq"].tolist()))
    view = rows[["seq", "node", "kind", "name", "status", "start", "duration_ms"]].merge(
        previews, on="seq", how="left"
    )
    picked = st.dataframe(
        view,
        key="entries_table",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        width="stretch",
        column_config={
            "start": st.column_config.NumberColumn("at (s)" if axis == "time" else "step", format="%.3f"),
            "duration_ms": st.column_config.NumberColumn("duration (ms)", format="%.1f"),
        },
    )
    st.caption(f"{len(shown):,} of {len(entries):,} entries · {ENTRIES_PER_PAGE} per page")
    if page_count > 1:
        st.pagination(page_count, key="entries_page", max_visible_pages=9, on_change=forget_selection)

    st.subheader("Entry JSON")
    typed = st.number_input(
        "Entry seq (or select a row above)",
        min_value=0,
        max_value=int(entries["seq"].max()),
        value=None,
        step=1,
        key="entry_seq",
    )
    rows_picked = picked.selection.rows
    seq = int(view.iloc[rows_picked[0]]["seq"]) if rows_picked and rows_picked[0] < len(view) else typed
    if seq is not None:
        entry = db.get_entry(trace_id, int(seq))
        if entry is None:
            st.warning(f"This trace has no entry {int(seq)}.")
        else:
            st.json(entry["data"], expanded=2)


trace_view()

st.download_button(
    "Download the whole trace (JSON)",
    data=lambda: whole_trace(trace_id),
    file_name=f"trace-{trace_id}.json",
    mime="application/json",
    key="trace_download",
    icon=":material/download:",
)
