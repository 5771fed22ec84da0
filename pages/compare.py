"""Two traces side by side (``/compare?a=<id>&b=<id>``), aligned step by step."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common, compare, human, navigation, usage, widgets
from tracedb import AutomationTraceDB, TraceSummary

MAX_STEPS = 5000
ROWS_PER_PAGE = 200
VISIBLE_ROWS = 20  # the table scrolls beyond
PAGE_KEY = "compare_page"
TABLE_KEY = "compare_table"
# Light tints of the colour-blind-safe palette; the "what" column says it in words too.
OP_COLOURS = {
    "changed": "rgba(230, 159, 0, 0.16)",
    "only A": "rgba(213, 94, 0, 0.12)",
    "only B": "rgba(0, 114, 178, 0.12)",
    "same": "",
    "before the fork": "rgba(128, 128, 128, 0.10)",
}
DIFF_CELLS = {
    "name": ("a_name", "b_name"),
    "input": ("a_input", "b_input"),
    "output": ("a_output", "b_output"),
    "error": ("a_output", "b_output"),
    "status": ("a_output", "b_output"),
}
TOKEN_COLUMNS = ("token_delta", "a_tokens", "b_tokens")
HIGHLIGHT = "background-color: rgba(230, 159, 0, 0.38)"
HEADERS = {
    "step": st.column_config.NumberColumn("step", width=50),
    "op": st.column_config.TextColumn("what", width=110),
    "node": st.column_config.TextColumn("node", width=85),
    "differs": st.column_config.TextColumn("differs in", width=110),
    "a_seq": st.column_config.NumberColumn("A #", width=50),
    "a_node": st.column_config.TextColumn("A node", width=80),
    "a_name": st.column_config.TextColumn("A name", width=110),
    "b_seq": st.column_config.NumberColumn("B #", width=50),
    "b_node": st.column_config.TextColumn("B node", width=80),
    "b_name": st.column_config.TextColumn("B name", width=110),
    "a_time": st.column_config.TextColumn("A took", width=70),
    "b_time": st.column_config.TextColumn("B took", width=70),
    "time_delta": st.column_config.TextColumn("B − A", width=70),
    "a_tokens": st.column_config.NumberColumn("A tokens", width=70, format="localized"),
    "b_tokens": st.column_config.NumberColumn("B tokens", width=70, format="localized"),
    "token_delta": st.column_config.NumberColumn("tokens B − A", width=85, format="%+d"),
    "a_input": st.column_config.TextColumn("A input", width=200),
    "b_input": st.column_config.TextColumn("B input", width=200),
    "a_output": st.column_config.TextColumn("A output", width=200),
    "b_output": st.column_config.TextColumn("B output", width=200),
}


# What tells the steps apart first; the node is the same on both sides of a pair.
ORDER = [
    "step",
    "op",
    "node",
    "differs",
    "a_name",
    "b_name",
    "time_delta",
    "a_time",
    "b_time",
    "token_delta",
    "a_tokens",
    "b_tokens",
    "a_input",
    "b_input",
    "a_output",
    "b_output",
    "a_seq",
    "b_seq",
]


@st.cache_data(max_entries=6, ttl=600, show_spinner="Loading entries…", hash_funcs=common.STORE_HASH)
def load_entries(
    db: AutomationTraceDB, trace_id: str, entry_count: int, updated_at: datetime
) -> list[dict[str, Any]]:
    """A trace's stored steps (not those running now); cached per store view and trace
    state."""
    return db.get_entries(trace_id, limit=MAX_STEPS, running=False)


def style_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Cell styles: the row's tint by what happened, stronger where the paired steps differ."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, row in frame.iterrows():
        if OP_COLOURS[row["op"]]:
            styles.loc[i, :] = f"background-color: {OP_COLOURS[row['op']]}"
        for what in filter(None, row["differs"].split(", ")):
            for col in DIFF_CELLS.get(what, ()):
                styles.loc[i, col] = HIGHLIGHT
    return styles


def pick_traces(db: AutomationTraceDB) -> dict[str, str | None]:
    """Two pickers of recent traces (ids as values), started from ``?a=`` and ``?b=`` and
    kept in the URL."""
    recent = db.list_traces(limit=200).items
    labels = {s.id: common.trace_label(s) for s in recent}
    picked: dict[str, str | None] = {}
    with st.container(horizontal=True):
        for side in ("a", "b"):
            key = f"compare_{side}"
            wanted = st.query_params.get(side)
            if wanted and wanted not in labels:
                found = db.get_summary(wanted)
                if found is None:
                    st.warning(f"No trace has the id {common.as_plain_markdown(wanted)}.")
                    st.query_params.pop(side, None)
                    wanted = None
                else:
                    labels[found.id] = common.trace_label(found)
            if wanted and wanted != st.session_state.get(key):
                st.session_state[key] = wanted  # a link chose it
            picked[side] = widgets.id_select(
                f"Trace {side.upper()}", labels, key, placeholder="Pick a trace", width=360
            )
            if picked[side] != wanted:
                if picked[side]:
                    st.query_params[side] = picked[side]
                else:
                    st.query_params.pop(side, None)
                st.query_params.pop(PAGE_KEY, None)
    return picked


def side_panel(name: str, summary: TraceSummary, other: TraceSummary | None) -> None:
    """One trace's status, steps, errors and duration; B's with its difference from A."""
    shown, base = human.trace_duration_ms(summary), human.trace_duration_ms(other) if other else None
    steps_delta = summary.entry_count - other.entry_count if other else 0
    errors_delta = summary.error_count - other.error_count if other else 0
    with st.container(border=True, width=400):
        st.markdown(f"**{name}**")
        common.status_badge(summary.status)
        with st.container(horizontal=True):
            st.metric(
                "Steps",
                f"{summary.entry_count:,}",
                delta=f"{steps_delta:+,} vs A" if steps_delta else None,
                delta_color="off",
                width="content",
            )
            st.metric(
                "Duration",
                human.duration(shown),
                delta=human.metric_delta(f"{human.delta(shown - base)} vs A")
                if shown is not None and base is not None and other
                else None,
                delta_color="inverse",
                width="content",
            )
            st.metric(
                "Error steps",
                f"{summary.error_count:,}",
                delta=f"{errors_delta:+,} vs A" if errors_delta else None,
                delta_color="inverse",
                width="content",
            )
            if summary.total_tokens is not None or (other is not None and other.total_tokens is not None):
                st.metric(
                    "Tokens",
                    human.tokens(summary.total_tokens),
                    delta=human.metric_delta(usage.delta_text(summary.total_tokens, other.total_tokens))
                    if other
                    else None,
                    delta_color="inverse",
                    width="content",
                )
            if summary.cost_usd is not None or (other is not None and other.cost_usd is not None):
                st.metric(
                    "Cost",
                    human.cost(summary.cost_usd),
                    delta=human.metric_delta(usage.delta_text(summary.cost_usd, other.cost_usd, money=True))
                    if other
                    else None,
                    delta_color="inverse",
                    width="content",
                )


def step_detail(step: pd.Series, rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> None:
    """Both entries of an aligned step, and their differences without timings and ids."""
    by_seq_a = {r["seq"]: r for r in rows_a}
    by_seq_b = {r["seq"]: r for r in rows_b}
    entry_a = by_seq_a.get(int(step["a_seq"])) if pd.notna(step["a_seq"]) else None
    entry_b = by_seq_b.get(int(step["b_seq"])) if pd.notna(step["b_seq"]) else None
    st.subheader(f"Step {int(step['step'])}: {step['op']}")
    diff = "\n".join(
        difflib.unified_diff(compare.diff_lines(entry_a), compare.diff_lines(entry_b), "A", "B", lineterm="")
    )
    st.caption("Differences, without timestamps, durations and ids")
    st.code(diff or "(the same)", language="diff")
    with st.container(horizontal=True):
        for name, entry in (("A", entry_a), ("B", entry_b)):
            with st.container(width=420):
                st.caption(f"{name}, entry #{entry['seq']}" if entry else f"(no step in {name})")
                if entry is not None:
                    common.show_json(entry["data"], expanded=1)


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
st.title("Compare")

picked = pick_traces(db)
if not picked["a"] or not picked["b"]:
    st.info("Pick two traces to compare, or tick two on the traces page and press Compare.")
    st.page_link("pages/traces.py", label="Go to the traces", icon=":material/table_rows:")
    st.stop()
summaries = {side: db.get_summary(tid) for side, tid in picked.items() if tid}
sa, sb = summaries.get("a"), summaries.get("b")
if sa is None or sb is None:
    st.error("One of these traces no longer exists.")
    st.stop()

rows_a = load_entries(db, sa.id, sa.entry_count, sa.updated_at)
rows_b = load_entries(db, sb.id, sb.entry_count, sb.updated_at)
if max(sa.entry_count, sb.entry_count) > MAX_STEPS:
    st.warning(f"Comparing the first {MAX_STEPS:,} steps of each trace.")
fork = compare.fork_of(sa, sb)
aligned = compare.align_traces(rows_a, rows_b, fork)
counts = compare.alignment_counts(aligned)

with st.container(horizontal=True):
    side_panel("A", sa, None)
    side_panel("B", sb, sa)
with st.container(horizontal=True, gap="large"):
    st.metric("Same steps", f"{counts['same']:,}", width="content", help="Only timings or ids differ")
    st.metric("Changed", f"{counts['changed']:,}", width="content")
    st.metric("Only in A", f"{counts['only A']:,}", width="content")
    st.metric("Only in B", f"{counts['only B']:,}", width="content")
    if fork is not None:
        st.metric(
            "Before the fork",
            f"{counts['before the fork']:,}",
            width="content",
            help="Steps of the original that the replay did not run again",
        )
if fork is not None:
    original, replay = ("A", "B") if fork[0] == "a" else ("B", "A")
    st.caption(
        f"{replay} was run again from step #{fork[1]:,} of {original}: the steps are paired from there, "
        f"and {original}'s steps before it are listed first, in grey."
    )

only_diff = st.toggle("Only steps that differ", key="compare_only_diff")
shown = aligned[~aligned["op"].isin(("same", "before the fork"))] if only_diff else aligned
if shown.empty:
    st.info("Every step is the same in both traces (timings and ids aside).")
    st.stop()
table_box = st.container()
window, _, _ = widgets.paged(shown.reset_index(drop=True), ROWS_PER_PAGE, PAGE_KEY, where=st.container())
window = window.reset_index(drop=True)
with table_box:
    event = st.dataframe(
        window.style.apply(style_rows, axis=None),
        key=widgets.rows_key(TABLE_KEY, window["step"].tolist()),
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        width="stretch",
        height=widgets.table_height(len(window), VISIBLE_ROWS),
        placeholder="",
        column_config=HEADERS,
        column_order=[c for c in ORDER if c not in TOKEN_COLUMNS or window["token_delta"].notna().any()],
    )
    st.caption(
        "Steps are paired by node and order. Same: only timings or ids differ (B − A shows the "
        "time). Orange: changed, the differing cells darker. Red: only in A. Blue: only in B. "
        "Tick a row to see both entries."
    )
chosen = widgets.selected_values(event, window, "step")
if chosen:
    step_detail(window[window["step"] == chosen[0]].iloc[0], rows_a, rows_b)
