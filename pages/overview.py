"""Activity over a time range: traces per day, error rate, entries and step durations per
node, busiest users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, common, frames
from tracedb.models import Overview

# Options are their own labels: a bound widget writes the label into the URL.
SPANS = {
    "24 hours": timedelta(days=1),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
    "90 days": timedelta(days=90),
    "a year": timedelta(days=365),
}


@st.cache_data(ttl=30, show_spinner="Aggregating…")
def load(_db: object, url: str, span: str, user: str | None, minute: datetime) -> Overview:
    """Aggregates up to ``minute`` (whole minutes, so that reruns hit the cache)."""
    return _db.overview(minute - SPANS[span], minute + timedelta(minutes=1), user)


@st.cache_data(ttl=60, show_spinner=False)
def users(_db: object, url: str) -> list[str]:
    return _db.filter_choices()["users"]


def ms(value: float | None) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f} ms"


db = common.require_db()
st.title("Overview")
range_col, user_col, _ = st.columns([3, 2, 3])
with range_col:
    span = (
        st.segmented_control(
            "Created in the last", list(SPANS), default="30 days", key="span", bind="query-params"
        )
        or "30 days"
    )
with user_col:
    user = st.selectbox(
        "User",
        [""] + users(db, db.server.url),
        key="overview_user",
        format_func=lambda v: v or "all users",
        bind="query-params",
    )

now = datetime.now(UTC).replace(second=0, microsecond=0)
view = load(db, db.server.url, span, user or None, now)
totals = view.totals
traces = int(totals.get("traces") or 0)
if traces == 0:
    st.info("No traces were created in this time range.")
    st.stop()

cols = st.columns(7)
cols[0].metric("Traces", f"{traces:,}")
cols[1].metric("Entries", f"{int(totals['entries']):,}")
cols[2].metric(
    "Error rate",
    f"{int(totals['with_errors']) / traces:.1%}",
    help="Share of traces that failed or recorded an error step",
)
cols[3].metric("Failed", f"{int(totals['failed']):,}")
cols[4].metric("Running", f"{int(totals['running']):,}")
cols[5].metric("Step p50", ms(totals.get("p50_ms")))
cols[6].metric("Step p95", ms(totals.get("p95_ms")))

per_day = frames.per_day_frame(view.per_day)
per_node = pd.DataFrame(
    view.per_node, columns=["node", "entries", "errors", "p50_ms", "p95_ms", "mean_ms", "total_ms"]
)
per_user = pd.DataFrame(
    view.per_user, columns=["user_id", "traces", "entries", "failed", "error_entries", "last_active"]
)

left, right = st.columns(2)
left.plotly_chart(charts.traces_per_day_figure(per_day), key="per_day_chart")
right.plotly_chart(charts.error_rate_figure(frames.error_rate_frame(per_day)), key="error_rate_chart")
left.plotly_chart(charts.node_entries_figure(per_node), key="node_entries_chart")
right.plotly_chart(charts.node_duration_figure(per_node), key="node_duration_chart")
left.plotly_chart(charts.users_figure(per_user), key="users_chart")
right.dataframe(
    per_user,
    key="users_table",
    hide_index=True,
    width="stretch",
    column_config={
        "user_id": "user",
        "error_entries": "error steps",
        "last_active": st.column_config.DatetimeColumn("last active", format="YYYY-MM-DD HH:mm"),
    },
)
st.caption(f"Traces created from {view.since:%Y-%m-%d %H:%M} to {view.until:%Y-%m-%d %H:%M} UTC.")
