"""Activity over a time range: traces and errors per day, step and trace latency over time,
steps and durations per node, busiest users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, common, frames, human, navigation
from tracedb import AutomationTraceDB, TraceFilter
from tracedb.models import Overview

# Options are their own labels: a bound widget writes the label into the URL.
SPANS = {
    "24 hours": timedelta(days=1),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
    "90 days": timedelta(days=90),
    "a year": timedelta(days=365),
}
# Latency is drawn per hour over a day, per day up to a month, per week beyond.
BUCKETS = {"24 hours": timedelta(hours=1), "7 days": timedelta(days=1), "30 days": timedelta(days=1)}
WEEK = timedelta(days=7)
# Trace durations of a bucket are read from at most this many of its traces.
TRACE_SAMPLE = 200
CHART_WIDTH = 400


@st.cache_data(ttl=30, show_spinner="Aggregating…")
def load(_db: AutomationTraceDB, url: str, since: datetime, until: datetime, user: str | None) -> Overview:
    """Aggregates of the traces created in ``[since, until)``."""
    return _db.overview(since, until, user)


@st.cache_data(ttl=60, show_spinner=False)
def users(_db: AutomationTraceDB, url: str) -> list[str]:
    return _db.filter_choices()["users"]


@st.cache_data(ttl=30, show_spinner="Measuring latency…")
def latency(
    _db: AutomationTraceDB, url: str, edges: tuple[datetime, ...], user: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step and trace duration percentiles per bucket between consecutive ``edges``.

    Steps: the store's exact percentiles of the steps of the traces created in the bucket.
    Traces: percentiles of the durations of up to ``TRACE_SAMPLE`` traces last updated in
    the bucket (the most recent ones), so that the cost does not grow with the traces.
    """
    steps, traces = [], []
    for low, high in zip(edges, edges[1:], strict=False):
        view = _db.overview(low, high, user, top_users=1)
        steps.append(
            {
                "bucket": low,
                "p50_ms": view.totals.get("p50_ms"),
                "p95_ms": view.totals.get("p95_ms"),
                "n": int(view.totals.get("entries") or 0),
            }
        )
        sample = _db.list_traces(TraceFilter(user_id=user, since=low, until=high), limit=TRACE_SAMPLE).items
        p50, p95 = frames.percentiles([human.trace_duration_ms(s) for s in sample])
        traces.append({"bucket": low, "p50_ms": p50, "p95_ms": p95, "n": len(sample)})
    return pd.DataFrame(steps), pd.DataFrame(traces)


def bucket_edges(span: str, now: datetime) -> tuple[datetime, ...]:
    """Bucket boundaries covering the range: whole hours, days or weeks, the last one ending
    after ``now``."""
    size = BUCKETS.get(span, WEEK)
    since = now - SPANS[span]
    if size == timedelta(hours=1):
        first = since.replace(minute=0, second=0, microsecond=0)
    else:
        first = since.replace(hour=0, minute=0, second=0, microsecond=0)
    edges = [first]
    while edges[-1] <= now:
        edges.append(edges[-1] + size)
    return tuple(edges)


def metrics(totals: dict[str, object], traces: int) -> None:
    """The range in numbers; short values so that none is cut."""
    with_errors = int(totals.get("with_errors") or 0)
    with st.container(horizontal=True, gap="medium"):
        st.metric("Traces", f"{traces:,}", width="content")
        st.metric("Entries", f"{int(totals['entries']):,}", width="content")
        st.metric(
            "With errors",
            f"{with_errors:,} ({human.percent(with_errors / traces)})",
            help="Traces that failed or recorded an error step",
            width="content",
        )
        st.metric("Failed", f"{int(totals['failed']):,}", width="content")
        st.metric("Running", f"{int(totals['running']):,}", width="content")
        st.metric("Step median", human.duration(totals.get("p50_ms")), width="content")  # type: ignore[arg-type]
        st.metric("Step p95", human.duration(totals.get("p95_ms")), width="content")  # type: ignore[arg-type]


def chart(figure: object, key: str) -> None:
    st.plotly_chart(figure, key=key, width=CHART_WIDTH, config={"displaylogo": False})


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
st.title("Overview")
with st.container(horizontal=True, vertical_alignment="bottom"):
    span = (
        st.segmented_control(
            "Created in the last", list(SPANS), default="30 days", key="span", bind="query-params"
        )
        or "30 days"
    )
    user = st.selectbox(
        "User",
        [""] + users(db, db.server.url),
        key="overview_user",
        format_func=lambda v: v or "all users",
        bind="query-params",
        width=220,
    )

now = datetime.now(UTC).replace(second=0, microsecond=0)  # whole minutes, so reruns hit the cache
view = load(db, db.server.url, now - SPANS[span], now + timedelta(minutes=1), user or None)
traces = int(view.totals.get("traces") or 0)
if traces == 0:
    st.info("No traces were created in this time range.")
    with st.container(horizontal=True):
        if span != "a year":
            st.button("Look at a year", key="widen", on_click=lambda: st.session_state.update(span="a year"))
        st.page_link("pages/chat.py", label="Chat with the agent", icon=":material/chat:")
    st.stop()

metrics(view.totals, traces)
per_day = frames.per_day_frame(view.per_day)
per_node = pd.DataFrame(
    view.per_node, columns=["node", "entries", "errors", "p50_ms", "p95_ms", "mean_ms", "total_ms"]
)
per_user = pd.DataFrame(
    view.per_user, columns=["user_id", "traces", "entries", "failed", "error_entries", "last_active"]
)
step_latency, trace_latency = latency(db, db.server.url, bucket_edges(span, now), user or None)
sampled = bool((trace_latency["n"] >= TRACE_SAMPLE).any()) if not trace_latency.empty else False

with st.container(horizontal=True, gap="small"):
    chart(charts.traces_per_day_figure(per_day), "per_day_chart")
    chart(charts.errors_per_day_figure(frames.error_rate_frame(per_day)), "errors_chart")
    chart(charts.latency_figure(step_latency, "Step duration over time"), "step_latency_chart")
    chart(
        charts.latency_figure(
            trace_latency,
            "Trace duration over time" + (f" ({TRACE_SAMPLE} latest traces per point)" if sampled else ""),
        ),
        "trace_latency_chart",
    )
    chart(charts.node_entries_figure(per_node), "node_entries_chart")
    chart(charts.node_duration_figure(per_node), "node_duration_chart")
    chart(charts.users_figure(per_user), "users_chart")
st.subheader("Busiest users")
st.dataframe(
    per_user,
    key="users_table",
    hide_index=True,
    width="stretch",
    placeholder=human.MISSING,
    column_config={
        "user_id": "user",
        "traces": st.column_config.NumberColumn("traces", format="localized"),
        "entries": st.column_config.NumberColumn("entries", format="localized"),
        "failed": st.column_config.NumberColumn("failed traces", format="localized"),
        "error_entries": st.column_config.NumberColumn("error steps", format="localized"),
        "last_active": st.column_config.DatetimeColumn("last active", format="distance"),
    },
)
st.caption(
    f"Traces created from {view.since:%Y-%m-%d %H:%M} to {view.until:%Y-%m-%d %H:%M} UTC. Trace duration: "
    "the span of a single run, the work of a conversation of several turns."
)
