"""Activity over a time range: traces and errors, step and trace latency, tokens and cost
over time (per hour, day or week), per model, steps and durations per node, busiest users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, common, frames, human, navigation, usage
from tracedb import AutomationTraceDB
from tracedb.models import Overview

# Options are their own labels: a bound widget writes the label into the URL.
SPANS = {
    "24 hours": timedelta(days=1),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
    "90 days": timedelta(days=90),
    "a year": timedelta(days=365),
}
# Buckets of the charts over time: hours over a day, days up to a month, weeks beyond.
BUCKETS = {"24 hours": "hour", "7 days": "day", "30 days": "day"}
CHART_WIDTH = 400


@st.cache_data(ttl=30, show_spinner="Aggregating…", hash_funcs=common.STORE_HASH)
def load(db: AutomationTraceDB, since: datetime, until: datetime, user: str | None, bucket: str) -> Overview:
    """Aggregates of the traces created in ``[since, until)``, per ``bucket`` over time.
    Cached per store view: one user's figures are never another's."""
    return db.overview(since, until, user, bucket=bucket)


@st.cache_data(ttl=60, show_spinner=False, hash_funcs=common.STORE_HASH)
def users(db: AutomationTraceDB) -> list[str]:
    return db.filter_choices()["users"]


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
        if totals.get("total_tokens") is not None:
            st.metric("Tokens", human.tokens(totals["total_tokens"]), width="content")  # type: ignore[arg-type]
        if totals.get("cost_usd") is not None:
            st.metric("Cost", human.cost(totals["cost_usd"]), width="content")  # type: ignore[arg-type]
        if int(totals.get("abandoned") or 0):
            st.metric(
                "Abandoned",
                f"{int(totals['abandoned']):,}",  # type: ignore[call-overload]
                help="Running traces whose writer has not been heard from for a while",
                width="content",
            )
        if int(totals.get("dropped") or 0):
            st.metric(
                "Entries lost",
                f"{int(totals['dropped']):,}",  # type: ignore[call-overload]
                help="Entries recorders could not store (their buffer was full while the database was away)",
                width="content",
            )


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
        [""] + users(db),
        key="overview_user",
        format_func=lambda v: v or "all users",
        bind="query-params",
        width=220,
    )

now = datetime.now(UTC).replace(second=0, microsecond=0)  # whole minutes, so reruns hit the cache
bucket = BUCKETS.get(span, "week")
view = load(db, now - SPANS[span], now + timedelta(minutes=1), user or None, bucket)
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
    view.per_user,
    columns=[
        "user_id",
        "traces",
        "entries",
        "failed",
        "error_entries",
        "last_active",
        "total_tokens",
        "cost_usd",
    ],
)
step_latency, trace_latency = frames.latency_frames(view.latency)
tokens_over_time = usage.per_bucket(view.per_day)
models = usage.per_model(view.per_model)

with st.container(horizontal=True, gap="small"):
    chart(charts.traces_per_day_figure(per_day, bucket), "per_day_chart")
    chart(charts.errors_per_day_figure(frames.error_rate_frame(per_day), bucket), "errors_chart")
    chart(charts.latency_figure(step_latency, "Step duration over time"), "step_latency_chart")
    chart(charts.latency_figure(trace_latency, "Trace work over time"), "trace_latency_chart")
    if not tokens_over_time.empty:
        chart(usage.tokens_figure(tokens_over_time, bucket), "tokens_chart")
    if not models.empty:
        chart(usage.models_figure(models), "models_chart")
    chart(charts.node_entries_figure(per_node), "node_entries_chart")
    chart(charts.node_duration_figure(per_node), "node_duration_chart")
    chart(charts.users_figure(per_user), "users_chart")
if tokens_over_time.empty and models.empty:
    st.caption("No step in this range reported the tokens its model used.")
if not models.empty:
    st.subheader("Models")
    st.dataframe(
        usage.readable_models(models),
        key="models_table",
        hide_index=True,
        width="stretch",
        placeholder=human.MISSING,
        column_config={
            "steps": st.column_config.NumberColumn("steps", format="localized"),
            "input tokens": st.column_config.NumberColumn("input tokens", format="localized"),
            "output tokens": st.column_config.NumberColumn("output tokens", format="localized"),
            "total tokens": st.column_config.NumberColumn("total tokens", format="localized"),
        },
    )
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
        "total_tokens": st.column_config.NumberColumn("tokens", format="localized"),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
    },
)
st.caption(
    f"Traces created from {view.since:%Y-%m-%d %H:%M} to {view.until:%Y-%m-%d %H:%M} UTC, per {bucket} over "
    "time. Trace work: the durations of a trace's steps added up, without the pauses between turns."
)
