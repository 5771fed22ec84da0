"""Stored traces: filter (kept in the URL with the page number), page through, open, compare,
rename, export and delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard import common, downloads, filters, frames, human, navigation, widgets
from dashboard.filters import FilterError, FilterForm
from tracedb import AutomationTraceDB, InvalidTraceData, TraceFilter, TracePage, TraceSummary, export
from tracedb.demo import load_demo
from tracedb.filters import is_empty_filter
from tracedb.models import STATUSES

DEMO_TRACES = 300
DELETE_KEY = "traces_delete"
FLASH_KEY = "traces_flash"
FORM_KEY = "traces_form"
CURSORS_KEY = "traces_cursors"
TABLE_KEY = "traces_table"
OPEN_KEY = "traces_open_click"
OPENING_KEY = "traces_opening"
OPEN_PICK_KEY = "open_pick"
COMPARING_KEY = "traces_comparing"
# How many pages a shared link may ask to be walked through (keyset pages have no offset).
MAX_WALK = 200
VISIBLE_ROWS = 15  # the table scrolls beyond
SHOWN_FIRST = ["name", "status", "entries", "duration", "tokens", "cost", "updated", "user"]


@st.cache_data(ttl=60, show_spinner=False, hash_funcs=common.STORE_HASH)
def filter_choices(db: AutomationTraceDB) -> dict[str, list[str]]:
    return db.filter_choices()


def filter_sidebar(choices: dict[str, list[str]]) -> FilterForm:
    """The filter widgets, bound to the URL; the form they hold."""
    with st.sidebar:
        st.subheader("Filters")
        st.text_input(
            "Search in entries", key="q", bind="query-params", placeholder='words, "a phrase", -not'
        )
        st.selectbox(
            "User",
            [""] + choices["users"],
            key="user",
            bind="query-params",
            accept_new_options=True,
            format_func=lambda v: v or "all users",
        )
        st.text_input("Thread", key="thread", bind="query-params")
        st.text_input("Name starts with", key="name", bind="query-params")
        st.multiselect("Status", list(STATUSES), key="status", bind="query-params")
        st.selectbox(
            "Has a step in node",
            [""] + choices["nodes"],
            key="node",
            bind="query-params",
            accept_new_options=True,
            format_func=lambda v: v or "any node",
        )
        span = st.selectbox("Updated", list(filters.RANGES), key="range", bind="query-params")
        if span == filters.CUSTOM:
            today = datetime.now(UTC).date()
            st.date_input(
                "From / to (UTC)", value=(today - timedelta(days=7), today), key="dates", bind="query-params"
            )
        st.text_input(
            "Entry contains JSON", key="contains", bind="query-params", placeholder='{"node": "tools"}'
        )
        st.selectbox("Rows per page", filters.PAGE_SIZES, index=1, key="size", bind="query-params")
        form = FilterForm.from_state(st.session_state)
        if not form.cleared() == form:
            st.button(
                "Clear filters", key="clear_filters_side", on_click=clear_filters, icon=":material/close:"
            )
    return form


def clear_filters() -> None:
    """Every filter back to its default (the page size stays), from the first page."""
    default = FilterForm()
    for key in FilterForm.keys():
        if key == "size":
            continue
        value: Any = getattr(default, key)
        st.session_state[key] = list(value) if isinstance(value, tuple) else value
    st.session_state.pop("dates", None)
    go_to_page(1)


def go_to_page(number: int) -> None:
    if number > 1:
        st.query_params[filters.PAGE_PARAM] = str(number)
    else:
        st.query_params.pop(filters.PAGE_PARAM, None)


def page_cursor(db: AutomationTraceDB, flt: TraceFilter, size: int, wanted: int) -> tuple[str | None, int]:
    """The keyset cursor of page ``wanted`` and the page it is (fewer when the listing ends
    sooner). Cursors of pages seen are kept; a link to a deeper page walks to it once."""
    cursors: list[str | None] = st.session_state[CURSORS_KEY]
    while len(cursors) < min(wanted, MAX_WALK):
        walked = db.list_traces(flt, limit=size, cursor=cursors[-1])
        if not walked.next_cursor:
            break
        cursors.append(walked.next_cursor)
    number = min(wanted, len(cursors))
    return cursors[number - 1], number


def ask_delete(flt: TraceFilter, count: int | None, scope: str, allow_all: bool = False) -> None:
    st.session_state[DELETE_KEY] = {"filter": flt, "count": count, "scope": scope, "allow_all": allow_all}


def forget_delete() -> None:
    st.session_state.pop(DELETE_KEY, None)


@st.dialog("Delete traces", on_dismiss=forget_delete)
def confirm_delete(db: AutomationTraceDB, request: dict[str, Any]) -> None:
    if request["count"] is None:  # the listing showed an estimate: count exactly before asking
        with st.spinner("Counting the matching traces…"):
            request["count"] = db.count_traces(request["filter"])
    n = request["count"]
    if request["scope"] == "selected":
        st.write(f"Delete the {human.count(n, 'selected trace')} and all their entries?")
    else:
        st.write(f"Delete all {human.count(n, 'trace')} that match the current filters, with their entries?")
    if request["allow_all"]:
        st.warning(
            "No filter is set: this deletes every one of your traces."
            if db.user_scope
            else "No filter is set: this deletes every trace in the database."
        )
    st.caption("This cannot be undone.")
    with st.container(horizontal=True):
        confirm = st.button(f"Delete {n:,}", type="primary", key="delete_confirm")
        cancel = st.button("Cancel", key="delete_cancel")
    if confirm:
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
        st.session_state.pop(CURSORS_KEY, None)
        st.session_state[FLASH_KEY] = f"Deleted {human.count(deleted, 'trace')}."
        st.cache_data.clear()
        st.rerun()
    if cancel:
        forget_delete()
        st.rerun()


def offer_demo(db: AutomationTraceDB) -> None:
    """What an empty database shows: where traces come from, and demo traces on a click
    (for whoever sees every user's traces: the demo's traces belong to several users)."""
    if db.user_scope:
        st.info(
            "You have no traces yet. Chat with the agent on the Chat page, or record a LangGraph run with "
            "TraceRecorder and your API key."
        )
        return
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
        st.session_state[FLASH_KEY] = f"Loaded {human.count(loaded, 'demo trace')}."
        st.cache_data.clear()
        st.rerun()


def no_match(form: FilterForm) -> None:
    """What a listing without results shows: why, and the way back."""
    st.info("No traces match these filters.")
    with st.container(horizontal=True):
        st.button("Clear filters", key="clear_filters", type="primary", on_click=clear_filters)
        if form.range != "any time":
            st.button("Any time", key="any_time", on_click=lambda: st.session_state.update(range="any time"))


def hidden(config: dict[str, Any]) -> dict[str, Any]:
    """A column the table starts without; the table's column menu shows it."""
    return {**config, "hidden": True}


def remember_click(ids: tuple[str, ...]) -> None:
    """A click on a name: the trace of that row as the user saw it (``ids`` are the rows of
    the run that drew the table, so a list that changed since cannot shift the row)."""
    click = st.session_state.get(OPEN_KEY)
    if click is not None and 0 <= click["row"] < len(ids):
        st.session_state[OPENING_KEY] = ids[click["row"]]


def traces_table(page: TracePage, hints: dict[str, str]) -> list[str]:
    """The page's traces, each name a button that opens its trace; the ids of the ticked
    rows."""
    table = frames.traces_frame(page.items, hints)
    ids = tuple(table["id"].tolist())
    table["name"] = table["name"].map(frames.button_label)
    event = st.dataframe(
        table,
        key=widgets.rows_key(TABLE_KEY, ids),
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        width="stretch",
        height=widgets.table_height(len(table), VISIBLE_ROWS),
        placeholder=human.MISSING,
        column_order=SHOWN_FIRST + [c for c in table.columns if c not in SHOWN_FIRST],
        column_config={
            "name": st.column_config.ButtonColumn(
                "name",
                type="tertiary",
                alignment="left",
                width=240,
                help="Click a name to open its trace",
                on_click=remember_click,
                args=(ids,),
                key=OPEN_KEY,
            ),
            "status": st.column_config.TextColumn("status", width=190),
            "entries": st.column_config.NumberColumn("entries", format="localized", width=70),
            "duration": st.column_config.TextColumn(
                "duration", width=75, help="Work for a conversation of several turns, else the span"
            ),
            "updated": st.column_config.DatetimeColumn("updated", format="distance", width=110),
            "user": st.column_config.TextColumn("user", width=90),
            "thread": hidden(st.column_config.TextColumn("thread")),
            "turns": hidden(st.column_config.NumberColumn("turns")),
            "work": hidden(st.column_config.TextColumn("work", help="The steps' durations added up")),
            "span": hidden(st.column_config.TextColumn("span", help="First step's start to last step's end")),
            "errors": hidden(st.column_config.NumberColumn("error steps")),
            "created": hidden(st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss")),
            "provider": hidden(st.column_config.TextColumn("provider")),
            "tokens": st.column_config.NumberColumn(
                "tokens",
                format="localized",
                width=70,
                help="Tokens the trace's models used; — when none reported",
            ),
            "cost": st.column_config.NumberColumn(
                "cost", format="$%.4f", width=70, help="What those tokens cost, from the price table"
            ),
            "lost": hidden(
                st.column_config.NumberColumn(
                    "lost", help="Entries the recorder could not store", format="localized"
                )
            ),
            "id": hidden(st.column_config.TextColumn("id")),
        },
    )
    return [str(v) for v in widgets.selected_values(event, table, "id")]


def open_trace(trace_id: str) -> None:
    st.switch_page("pages/thread.py", query_params={"trace": trace_id})


def pager(page: TracePage, number: int, shown: str) -> None:
    """Previous and next page, and where this page sits."""
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button(
            "Previous",
            key="traces_previous",
            icon=":material/chevron_left:",
            disabled=number == 1,
            on_click=go_to_page,
            args=(number - 1,),
        )
        st.button(
            "Next",
            key="traces_next",
            icon=":material/chevron_right:",
            disabled=not page.next_cursor,
            on_click=go_to_page,
            args=(number + 1,),
        )
        st.caption(shown)


def selection_actions(db: AutomationTraceDB, chosen: list[TraceSummary], page: TracePage) -> None:
    """Open, compare, rename or delete the ticked traces."""
    if not chosen:
        st.caption("Click a name to open its trace. Tick rows to compare, rename, export or delete them.")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(
            "Open a trace",
            [s.id for s in page.items],
            index=None,
            key=OPEN_PICK_KEY,
            format_func={s.id: s.name or s.thread_id for s in page.items}.get,
            placeholder="Choose one of this page…",
            # read in the callback: with the names the user chose from, whatever they are now
            on_change=lambda: st.session_state.update({OPENING_KEY: st.session_state[OPEN_PICK_KEY]}),
            width=260,
        )
        ids = tuple(s.id for s in chosen)  # the ticked traces as the user saw them
        st.button(
            "Open",
            key="open_selected",
            disabled=len(ids) != 1,
            icon=":material/open_in_browser:",
            on_click=lambda: st.session_state.update({OPENING_KEY: ids[0]}),
        )
        st.button(
            "Compare",
            key="compare_selected",
            disabled=len(ids) != 2,
            help="Tick two traces",
            on_click=lambda: st.session_state.update({COMPARING_KEY: ids}),
        )
        st.button(
            f"Delete selected ({len(chosen)})",
            key="delete_selected",
            disabled=not chosen,
            icon=":material/delete:",
            on_click=ask_delete,
            args=(TraceFilter(trace_ids=tuple(s.id for s in chosen)), len(chosen), "selected"),
        )
    if len(chosen) == 1:
        message = widgets.rename_form(db, chosen[0], key="rename_name", label="Name of the selected trace")
        if message:
            st.session_state[FLASH_KEY] = message
            st.rerun()


def export_panel(
    db: AutomationTraceDB, chosen: list[TraceSummary], flt: TraceFilter, total: int, total_text: str
) -> None:
    """A download of the ticked traces, or of every match when none is ticked."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        fmt = (
            st.segmented_control("Export as", list(export.FORMATS), default="jsonl", key="export_format")
            or "jsonl"
        )
        if chosen:
            target, wanted, label = (
                TraceFilter(trace_ids=tuple(s.id for s in chosen)),
                len(chosen),
                f"Download the {human.count(len(chosen), 'selected trace')}",
            )
        else:
            target, wanted, label = (
                flt,
                total,
                f"Download all {total_text} matching {human.plural(total, 'trace')}",
            )
        stamp = datetime.now(UTC)
        st.download_button(
            f"{label} ({fmt.upper()})",
            data=downloads.traces_file(db, target, fmt),
            file_name=f"traces-{stamp:%Y%m%d-%H%M%S}.{fmt}",
            mime=downloads.MIME[fmt],
            key="export_download",
            icon=":material/download:",
            disabled=wanted == 0,
            on_click="ignore",
        )
    if chosen:
        st.caption("Untick every row to export all matching traces instead.")


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
if opening := st.session_state.pop(OPENING_KEY, None):
    open_trace(opening)
if comparing := st.session_state.pop(COMPARING_KEY, None):
    st.switch_page("pages/compare.py", query_params={"a": comparing[0], "b": comparing[1]})
st.title("Traces")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.success(flash)

form = filter_sidebar(filter_choices(db))
try:
    flt = form.to_filter(datetime.now(UTC))
except FilterError as exc:
    st.error(str(exc))
    st.stop()
if st.session_state.get(FORM_KEY) != form or CURSORS_KEY not in st.session_state:
    if FORM_KEY in st.session_state and st.session_state[FORM_KEY] != form:
        go_to_page(1)  # other filters: from the first page again
    st.session_state[FORM_KEY] = form
    st.session_state[CURSORS_KEY] = [None]

try:
    cursor, number = page_cursor(db, flt, form.size, filters.page_from_params(st.query_params.to_dict()))
    page = db.list_traces(flt, limit=form.size, cursor=cursor)
    # Exact within 100 ms, else the planner's estimate, shown as "about N".
    total, exact = db.count_traces_bounded(flt)
except InvalidTraceData as exc:
    st.error(f"These filters cannot be used: {exc}")
    st.stop()
if number > 1 and str(number) != st.query_params.get(filters.PAGE_PARAM):
    go_to_page(number)

if total == 0 and not page.items:
    if is_empty_filter(flt):
        offer_demo(db)
    else:
        no_match(form)
    st.stop()

first = (number - 1) * form.size
total_text = f"{total:,}" if exact else f"about {total:,}"
pages = max(number, -(-total // form.size))
st.caption(
    f"{total_text} {human.plural(total, 'trace')} {'matches' if total == 1 else 'match'} · "
    f"rows {first + 1:,}–{first + len(page.items):,}"
)
ticked = traces_table(page, common.error_hints(page.items))
chosen = [s for s in page.items if s.id in set(ticked)]
pager(page, number, f"page {number:,} of {pages:,}" if exact else f"page {number:,} of about {pages:,}")
selection_actions(db, chosen, page)
export_panel(db, chosen, flt, total, total_text)
st.button(
    f"Delete all {total_text} matching",
    key="delete_matching",
    type="tertiary",
    icon=":material/delete_sweep:",
    on_click=ask_delete,
    args=(flt, total if exact else None, "matching", is_empty_filter(flt)),
)

if request := st.session_state.get(DELETE_KEY):
    confirm_delete(db, request)
