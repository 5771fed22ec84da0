"""UI pieces more than one page uses: tables whose selection means ids, pages of rows,
the rename form."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from tracedb import AutomationTraceDB, TraceSummary


def rows_key(prefix: str, ids: Sequence[Any]) -> str:
    """A widget key for a table showing exactly these rows, in this order.

    A table's selection is a list of row positions, kept by the browser for the widget
    with this key. Keying the table by its rows makes any change of rows (a delete,
    another page, another filter, new data) a new table with nothing ticked, so what is
    ticked is always what is selected.
    """
    digest = hashlib.blake2b("\x1f".join(map(str, ids)).encode("utf-8"), digest_size=8).hexdigest()
    return f"{prefix}_{digest}"


# Streamlit's table: its header and each row, in pixels
TABLE_HEADER_PX = 38
TABLE_ROW_PX = 35


def table_height(rows: int, visible: int) -> int:
    """The height of a table showing ``rows`` rows, up to ``visible`` of them before it
    scrolls (Streamlit's default shows about ten, whatever the page holds)."""
    return TABLE_HEADER_PX + TABLE_ROW_PX * min(max(rows, 1), visible)


def selected_values(event: Any, frame: pd.DataFrame, column: str) -> list[Any]:
    """The ``column`` values of the rows selected in a table event (positions are
    turned into values at once, against the frame that was shown)."""
    rows = event.selection.rows if event is not None else []
    return [frame.iloc[i][column] for i in rows if 0 <= i < len(frame)]


def paged(
    frame: pd.DataFrame, per_page: int, key: str, where: Any, on_change: Callable[[], None] | None = None
) -> tuple[pd.DataFrame, int, int]:
    """The rows of the page chosen in a pagination widget drawn in ``where`` (a container,
    usually placed below the table), kept in the URL under ``key``.

    Returns the rows, the page number and the number of pages. The widget is registered
    before its value is read, so a page number from a shared URL is the page shown; one
    out of range (fewer rows than before, an edited URL) falls back to the first page.
    """
    count = max(1, -(-len(frame) // per_page))
    if count > 1:
        with where:
            st.pagination(count, key=key, max_visible_pages=7, on_change=on_change, bind="query-params")
    number = st.session_state.get(key, 1)
    number = number if isinstance(number, int) and 1 <= number <= count else 1
    return frame.iloc[(number - 1) * per_page : number * per_page], number, count


def rename_form(db: AutomationTraceDB, summary: TraceSummary, key: str, label: str = "Name") -> str | None:
    """A form to rename ``summary``'s trace; returns the message to show after a rename.

    The field starts with the trace's current name, again whenever another trace is shown.
    Shows an error and returns None when the name is empty or the trace is gone.
    """
    owner = f"{key}_for"
    # (the field's value is dropped when another page runs: fill it again then too)
    if st.session_state.get(owner) != summary.id or key not in st.session_state:
        st.session_state[owner] = summary.id
        st.session_state[key] = summary.name or ""
    with st.form(f"{key}_form", border=False):
        field, button = st.columns([5, 1], vertical_alignment="bottom")
        new_name = field.text_input(label, key=key, max_chars=1000, placeholder="Give this trace a name")
        if not button.form_submit_button("Rename", key=f"{key}_submit", width="stretch"):
            return None
    if not new_name.strip():
        st.error("A name cannot be empty.")
        return None
    if not db.rename_trace(summary.id, new_name.strip()):
        st.error("That trace no longer exists.")
        return None
    st.session_state.pop(owner, None)
    return f"Renamed the trace to “{new_name.strip()}”."


def _keep_choice(key: str) -> None:
    st.session_state[key] = st.session_state[f"{key}_widget"]


def id_select(
    label: str,
    labels: dict[str, str],
    key: str,
    *,
    default: str | None = None,
    placeholder: str | None = None,
    **options: Any,
) -> str | None:
    """A selectbox whose value is an id (a key of ``labels``), never the label shown.

    Streamlit sends a selectbox's value to the browser and back as the label of the
    option. A label that changes between two runs (it holds a time, a status, a name)
    would come back as the label's own text instead of the id. So the chosen id lives in
    ``st.session_state[key]``, set from the widget only when the user picks (its callback
    reads the value with the labels the user saw), and the widget is set to it again on
    every run, with that run's labels.
    """
    if key not in st.session_state:
        st.session_state[key] = default
    current = st.session_state[key]
    if current is not None and current not in labels:
        labels = {**labels, current: current}
    st.session_state[f"{key}_widget"] = current
    st.selectbox(
        label,
        list(labels),
        # with a default there is always a choice; without, an empty picker shows its placeholder
        index=0 if default is not None else None,
        key=f"{key}_widget",
        format_func=lambda v: labels.get(v, str(v)),
        placeholder=placeholder,
        on_change=_keep_choice,
        args=(key,),
        **options,
    )
    return st.session_state[key]
