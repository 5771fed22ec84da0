"""Stored traces: filter (kept in the URL), page through, select, delete, rename, export."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboard import common, frames
from tracedb import InvalidTraceData, TraceFilter, export
from tracedb.demo import load_demo
from tracedb.models import STATUSES
from tracedb.queries import is_empty_filter

# Options are their own labels: a bound widget writes the label into the URL.
RANGES = {
    "any time": None,
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
    "between dates": None,
}
CUSTOM = "between dates"
PAGE_SIZES = [25, 50, 100, 200]
MIME = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
TABLE_KEY = "traces_table"
DEMO_TRACES = 300
DELETE_KEY = "traces_delete"
FLASH_KEY = "traces_flash"


@st.cache_data(ttl=60, show_spinner=False)
def filter_choices(_db: object, url: str) -> dict[str, list[str]]:
    return _db.filter_choices()


def reset_view() -> None:
    """Back to the first page, nothing selected."""
    st.session_state["traces_cursors"] = [None]
    st.session_state.pop(TABLE_KEY, None)


def next_page(cursor: str) -> None:
    st.session_state["traces_cursors"].append(cursor)
    st.session_state.pop(TABLE_KEY, None)


def previous_page() -> None:
    if len(st.session_state["traces_cursors"]) > 1:
        st.session_state["traces_cursors"].pop()
    st.session_state.pop(TABLE_KEY, None)


def ask_delete(flt: TraceFilter, count: int | None, scope: str, allow_all: bool = False) -> None:
    st.session_state[DELETE_KEY] = {"filter": flt, "count": count, "scope": scope, "allow_all": allow_all}


def forget_delete() -> None:
    st.session_state.pop(DELETE_KEY, None)


@st.dialog("Delete traces", on_dismiss=forget_delete)
def confirm_delete() -> None:
    request = st.session_state[DELETE_KEY]
    if request["count"] is None:  # the listing showed an estimate: count exactly before asking
        with st.spinner("Counting the matching traces…"):
            request["count"] = db.count_traces(request["filter"])
    n = request["count"]
    if request["scope"] == "selected":
        st.write(f"Delete the {n:,} selected trace{'s' if n != 1 else ''} and all their entries?")
    else:
        st.write(f"Delete all {n:,} traces that match the current filters, with their entries?")
    if request["allow_all"]:
        st.warning("No filter is set: this deletes every trace in the database.")
    st.caption("This cannot be undone.")
    confirm, cancel = st.columns(2)
    if confirm.button(f"Delete {n:,}", type="primary", key="delete_confirm", width="stretch"):
        bar = st.progress(0.0, text="Deleting…")

        def progress(done: int) -> None:
            bar.progress(min(done / max(n, 1), 1.0), text=f"Deleted {done:,} of {n:,}")

        deleted = db.delete_traces(
            request["filter"],
            allow_all=request["allow_all"],
            batch_size=max(50, min(1000, n // 20 or 1)),
            progress=progress,
        )
        forget_delete()
        reset_view()
        st.session_state[FLASH_KEY] = f"Deleted {deleted:,} trace{'s' if deleted != 1 else ''}."
        st.rerun()
    if cancel.button("Cancel", key="delete_cancel", width="stretch"):
        forget_delete()
        st.rerun()


db = common.require_db()
st.title("Traces")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.success(flash)

options = filter_choices(db, db.server.url)
with st.sidebar:
    st.subheader("Filters")
    text = st.text_input(
        "Search in entries", key="q", bind="query-params", placeholder='words, "a phrase", -not'
    )
    user = st.selectbox(
        "User",
        [""] + options["users"],
        key="user",
        bind="query-params",
        accept_new_options=True,
        format_func=lambda v: v or "all users",
    )
    thread = st.text_input("Thread", key="thread", bind="query-params")
    name = st.text_input("Name starts with", key="name", bind="query-params")
    status = st.multiselect("Status", list(STATUSES), key="status", bind="query-params")
    node = st.selectbox(
        "Has a step in node",
        [""] + options["nodes"],
        key="node",
        bind="query-params",
        accept_new_options=True,
        format_func=lambda v: v or "any node",
    )
    span = st.selectbox("Updated", list(RANGES), key="range", bind="query-params")
    days: tuple[date, ...] = ()
    if span == CUSTOM:
        today = datetime.now(UTC).date()
        days = tuple(
            st.date_input(
                "From / to (UTC)", value=(today - timedelta(days=7), today), key="dates", bind="query-params"
            )
        )
    contains_text = st.text_input(
        "Entry contains JSON", key="contains", bind="query-params", placeholder='{"node": "tools"}'
    )
    size = st.selectbox("Rows per page", PAGE_SIZES, index=1, key="size", bind="query-params")

contains = None
if contains_text.strip():
    try:
        contains = json.loads(contains_text)
    except json.JSONDecodeError as exc:
        st.error(
            f"“Entry contains JSON” is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}). "
            'Example: {"node": "tools"}'
        )
        st.stop()
    if not isinstance(contains, (dict, list)):
        st.error('“Entry contains JSON” must be a JSON object or array, e.g. {"node": "tools"}.')
        st.stop()

now = datetime.now(UTC)
since = now - RANGES[span] if RANGES[span] else None
until = None
if span == CUSTOM and len(days) == 2:
    since = datetime.combine(days[0], time.min, UTC)
    until = datetime.combine(days[1] + timedelta(days=1), time.min, UTC)
flt = TraceFilter(
    user_id=user or None,
    thread_id=thread.strip() or None,
    name=name.strip() or None,
    status=tuple(status) or None,
    since=since,
    until=until,
    node=node or None,
    text=text.strip() or None,
    contains=contains,
)

signature = (text, user, thread, name, tuple(status), node, span, days, contains_text, size)
if st.session_state.get("traces_signature") != signature:
    st.session_state["traces_signature"] = signature
    reset_view()
cursors: list[str | None] = st.session_state["traces_cursors"]

try:
    page = db.list_traces(flt, limit=size, cursor=cursors[-1])
    # Exact within 100 ms, else the planner's estimate, shown as "about N".
    total, exact = db.count_traces_bounded(flt)
except InvalidTraceData as exc:
    st.error(f"These filters cannot be used: {exc}")
    st.stop()

if total == 0 and is_empty_filter(flt):
    st.info(
        "No traces are stored yet. Chat with the agent on the Chat page, record a LangGraph run with "
        "TraceRecorder, or load a few hundred realistic demo traces."
    )
    if st.button("Load demo traces", key="load_demo", icon=":material/dataset:"):
        bar = st.progress(0.0, text="Loading demo traces…")
        loaded = load_demo(
            db,
            progress=lambda done: bar.progress(
                done / DEMO_TRACES, text=f"Loaded {done:,} of {DEMO_TRACES:,}"
            ),
            traces=DEMO_TRACES,
        )
        st.session_state[FLASH_KEY] = f"Loaded {loaded:,} demo traces."
        st.cache_data.clear()
        st.rerun()
    st.stop()

first = (len(cursors) - 1) * size
total_text = f"{total:,}" if exact else f"about {total:,}"
st.caption(
    f"{total_text} matching traces · page {len(cursors)} · rows {first + 1 if page.items else 0:,}–"
    f"{first + len(page.items):,}"
)
table = frames.traces_frame(page.items)
event = st.dataframe(
    table,
    key=TABLE_KEY,
    on_select="rerun",
    selection_mode="multi-row",
    hide_index=True,
    width="stretch",
    column_config={
        "open": st.column_config.LinkColumn(
            "open", display_text="open ↗", width="small", help="the trace's thread page"
        ),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.2f"),
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
        "updated": st.column_config.DatetimeColumn("updated", format="YYYY-MM-DD HH:mm:ss"),
    },
)
selected = [str(table.iloc[i]["id"]) for i in event.selection.rows if i < len(table)]

back, forward, _ = st.columns([1, 1, 6])
back.button(
    "← Previous", key="traces_previous", disabled=len(cursors) == 1, on_click=previous_page, width="stretch"
)
forward.button(
    "Next →",
    key="traces_next",
    disabled=not page.next_cursor,
    on_click=next_page,
    args=(page.next_cursor,),
    width="stretch",
)

delete_col, rename_col, export_col = st.columns(3, border=True)
with delete_col:
    st.subheader("Delete")
    st.button(
        f"Delete selected ({len(selected)})",
        key="delete_selected",
        disabled=not selected,
        on_click=ask_delete,
        args=(TraceFilter(trace_ids=tuple(selected)), len(selected), "selected"),
    )
    st.button(
        f"Delete all {total_text} matching",
        key="delete_matching",
        disabled=total == 0,
        on_click=ask_delete,
        args=(flt, total if exact else None, "matching", is_empty_filter(flt)),
    )

with rename_col:
    st.subheader("Rename")
    if len(selected) != 1:
        st.caption("Select exactly one trace to rename it.")
    else:
        chosen = next(s for s in page.items if s.id == selected[0])
        if st.session_state.get("rename_for") != chosen.id:
            st.session_state["rename_for"] = chosen.id
            st.session_state["rename_name"] = chosen.name or ""
        with st.form("rename_form", border=False):
            new_name = st.text_input("New name", key="rename_name", max_chars=1000)
            if st.form_submit_button("Rename", key="rename_submit"):
                if not new_name.strip():
                    st.error("A name cannot be empty.")
                elif db.rename_trace(chosen.id, new_name.strip()):
                    st.session_state[FLASH_KEY] = "Renamed the trace."
                    st.session_state.pop("rename_for", None)
                    st.rerun()
                else:
                    st.error("That trace no longer exists.")

with export_col:
    st.subheader("Export")
    fmt = st.segmented_control("Format", list(export.FORMATS), default="jsonl", key="export_format")
    scope = st.radio(
        "Traces",
        ["selected", "matching"],
        key="export_scope",
        horizontal=True,
        index=0 if selected else 1,
        format_func=lambda s: (
            f"selected ({len(selected)})" if s == "selected" else f"all matching ({total_text})"
        ),
    )
    wanted = len(selected) if scope == "selected" else total
    export_signature = (fmt, scope, tuple(selected) if scope == "selected" else signature)
    if st.button(
        f"Prepare {fmt or ''} export of {wanted:,}", key="export_prepare", disabled=not (fmt and wanted)
    ):
        bar = st.progress(0.0, text="Exporting…")

        def exported(done: int) -> None:
            bar.progress(min(done / max(wanted, 1), 1.0), text=f"Exported {done:,} of {wanted:,}")

        buffer = io.StringIO()
        target = TraceFilter(trace_ids=tuple(selected)) if scope == "selected" else flt
        count = export.write_traces(db, target, fmt or "jsonl", buffer, progress=exported)
        st.session_state["traces_export"] = {
            "data": buffer.getvalue().encode("utf-8"),
            "count": count,
            "signature": export_signature,
            "file": f"traces-{now:%Y%m%d-%H%M%S}.{fmt}",
            "mime": MIME[fmt or "jsonl"],
        }
    prepared = st.session_state.get("traces_export")
    if prepared and prepared["signature"] == export_signature:
        st.download_button(
            f"Download {prepared['count']:,} traces ({len(prepared['data']) / 1024:,.0f} KiB)",
            data=prepared["data"],
            file_name=prepared["file"],
            mime=prepared["mime"],
            key="export_download",
            icon=":material/download:",
        )

if st.session_state.get(DELETE_KEY):
    confirm_delete()
