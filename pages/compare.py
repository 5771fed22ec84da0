"""Two traces side by side (``/compare?a=<id>&b=<id>``), aligned step by step."""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common, frames

MAX_STEPS = 5000
ROWS_PER_PAGE = 200
OP_COLOURS = {
    "changed": "rgba(255, 193, 7, 0.18)",
    "only A": "rgba(214, 39, 40, 0.14)",
    "only B": "rgba(44, 160, 44, 0.16)",
    "equal": "",
}
DIFF_CELLS = {
    "node": ("a_node", "b_node", "a_name", "b_name"),
    "input": ("a_input", "b_input"),
    "output": ("a_output", "b_output"),
    "duration": ("a_ms", "b_ms", "delta_ms"),
}
HIGHLIGHT = "background-color: rgba(255, 152, 0, 0.35)"
TEXT_COLUMNS = {"a_seq": "{}", "b_seq": "{}", "a_ms": "{:,.1f}", "b_ms": "{:,.1f}", "delta_ms": "{:+,.1f}"}


@st.cache_data(max_entries=6, ttl=600, show_spinner="Loading entries…")
def load_entries(_db: Any, trace_id: str, entry_count: int, updated_at: datetime) -> list[dict[str, Any]]:
    return _db.get_entries(trace_id, limit=MAX_STEPS)


def style_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Cell styles: the row's colour by op, stronger where the matched steps differ."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, row in frame.iterrows():
        styles.loc[i, :] = f"background-color: {OP_COLOURS[row['op']]}" if OP_COLOURS[row["op"]] else ""
        for what in filter(None, row["differs"].split(", ")):
            for col in DIFF_CELLS.get(what, ()):
                styles.loc[i, col] = HIGHLIGHT
    return styles


def pretty(entry: dict[str, Any] | None) -> list[str]:
    if entry is None:
        return []
    return json.dumps(entry["data"], indent=2, ensure_ascii=False, sort_keys=True, default=str).splitlines()


def forget_selection() -> None:
    """Selections are row positions: they mean nothing once the rows shown change."""
    st.session_state.pop("compare_table", None)


def sync_url() -> None:
    for side in ("a", "b"):
        value = st.session_state.get(f"compare_{side}")
        if value:
            st.query_params[side] = value
        else:
            st.query_params.pop(side, None)


db = common.require_db()
st.title("Compare")

recent = db.list_traces(limit=200).items
labels = {s.id: common.trace_label(s) for s in recent}
for side in ("a", "b"):
    wanted = st.query_params.get(side)
    if wanted and wanted not in labels and (found := db.get_summary(wanted)) is not None:
        labels[found.id] = common.trace_label(found)
ids = list(labels)

left, right = st.columns(2)
picked: dict[str, str | None] = {}
for side, col in (("a", left), ("b", right)):
    wanted = st.query_params.get(side)
    picked[side] = col.selectbox(
        f"Trace {side.upper()}",
        ids,
        key=f"compare_{side}",
        format_func=labels.get,
        index=ids.index(wanted) if wanted in labels else None,
        placeholder="Pick a trace",
        on_change=forget_selection,
    )
a_id, b_id = picked["a"], picked["b"]
sync_url()
if not a_id or not b_id:
    st.info("Pick two traces to compare, or open /compare?a=<trace id>&b=<trace id>.")
    st.stop()

summaries = {side: db.get_summary(tid) for side, tid in (("a", a_id), ("b", b_id))}
if any(s is None for s in summaries.values()):
    st.error("One of these traces no longer exists.")
    st.stop()
sa, sb = summaries["a"], summaries["b"]
assert sa is not None and sb is not None
rows_a = load_entries(db, sa.id, sa.entry_count, sa.updated_at)
rows_b = load_entries(db, sb.id, sb.entry_count, sb.updated_at)
if max(sa.entry_count, sb.entry_count) > MAX_STEPS:
    st.warning(f"Comparing the first {MAX_STEPS:,} steps of each trace.")
aligned = frames.align_traces(rows_a, rows_b)
counts = frames.alignment_counts(aligned)

for col, s, other in ((left, sa, None), (right, sb, sa)):
    with col:
        common.status_badge(s.status)
        m1, m2, m3 = st.columns(3)
        duration = (s.duration_ms or 0) / 1000
        steps_delta = s.entry_count - other.entry_count if other else 0
        time_delta = duration - (other.duration_ms or 0) / 1000 if other else 0.0
        errors_delta = s.error_count - other.error_count if other else 0
        m1.metric(
            "Steps",
            f"{s.entry_count:,}",
            delta=f"{steps_delta:+,} vs A" if steps_delta else None,
            delta_color="off",
        )
        m2.metric(
            "Duration",
            f"{duration:,.2f} s",
            delta=f"{time_delta:+,.2f} s vs A" if time_delta else None,
            delta_color="inverse",
        )
        m3.metric(
            "Errors",
            f"{s.error_count:,}",
            delta=f"{errors_delta:+,} vs A" if errors_delta else None,
            delta_color="inverse",
        )

c1, c2, c3, c4 = st.columns(4)
c1.metric("Same steps", counts["equal"])
c2.metric("Changed", counts["changed"])
c3.metric("Only in A", counts["only A"])
c4.metric("Only in B", counts["only B"])

only_diff = st.toggle("Only steps that differ", key="compare_only_diff", on_change=forget_selection)
shown = aligned[aligned["op"] != "equal"] if only_diff else aligned
pages = max(1, -(-len(shown) // ROWS_PER_PAGE))
number = st.session_state.get("compare_page", 1)
number = number if isinstance(number, int) and 1 <= number <= pages else 1
window = shown.iloc[(number - 1) * ROWS_PER_PAGE : number * ROWS_PER_PAGE].reset_index(drop=True)
# Blank, not "None", where a step has no counterpart: the table shows text for these columns.
shown_window = window.assign(
    **{
        col: window[col].map(lambda v, f=fmt: "" if pd.isna(v) else f.format(v))
        for col, fmt in TEXT_COLUMNS.items()
    }
)
event = st.dataframe(
    shown_window.style.apply(style_rows, axis=None),
    key="compare_table",
    on_select="rerun",
    selection_mode="single-row",
    hide_index=True,
    width="stretch",
    column_config={
        "a_seq": "A seq",
        "a_node": "A node",
        "a_name": "A name",
        "b_seq": "B seq",
        "b_node": "B node",
        "b_name": "B name",
        "a_input": "A input",
        "b_input": "B input",
        "a_output": "A output",
        "b_output": "B output",
        "a_ms": "A ms",
        "b_ms": "B ms",
        "delta_ms": "B − A ms",
    },
)
st.caption(
    "Yellow: the same step with different node, input, output or duration (the differing cells "
    "are darker). Red: only in A. Green: only in B. Select a row to see both entries."
)
if pages > 1:
    st.pagination(pages, key="compare_page", max_visible_pages=9, on_change=forget_selection)

if event.selection.rows and event.selection.rows[0] < len(window):
    step = window.iloc[event.selection.rows[0]]
    by_seq_a = {r["seq"]: r for r in rows_a}
    by_seq_b = {r["seq"]: r for r in rows_b}
    entry_a = by_seq_a.get(step["a_seq"]) if pd.notna(step["a_seq"]) else None
    entry_b = by_seq_b.get(step["b_seq"]) if pd.notna(step["b_seq"]) else None
    st.subheader(f"Step {int(step['step'])}")
    ja, jb = st.columns(2)
    with ja:
        st.caption("A")
        if entry_a is not None:
            st.json(entry_a["data"], expanded=2)
        else:
            st.text("(no step in A)")
    with jb:
        st.caption("B")
        if entry_b is not None:
            st.json(entry_b["data"], expanded=2)
        else:
            st.text("(no step in B)")
    diff = "\n".join(difflib.unified_diff(pretty(entry_a), pretty(entry_b), "A", "B", lineterm=""))
    st.code(diff or "(identical)", language="diff")
