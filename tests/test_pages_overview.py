"""pages/overview.py: activity over a time range."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apptest_support import dashboard_env, open_page, plotly_array, plotly_specs

from dashboard import human
from tracedb.demo import load_demo


@pytest.fixture(scope="module")
def demo(db, db_url: str) -> Iterator[None]:
    load_demo(db, traces=40, seed=11)
    with dashboard_env(TRACEDB_URL=db_url):
        yield


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_overview_shows_metrics_and_charts(demo, db) -> None:
    at = open_page("overview")
    assert not at.exception
    assert int(metric(at, "Traces")) == db.count_traces()
    assert metric(at, "Step p95").endswith((" ms", " s")) and metric(at, "With errors").endswith("%)")
    charts = plotly_specs(at)
    titles = [json.loads(spec)["layout"]["title"]["text"] for spec in charts]
    assert titles == [
        "Traces per day",
        "Traces with errors per day",
        "Step duration over time",
        "Trace work over time",
        "Tokens and cost per day",
        "Tokens per model",
        "Steps per node",
        "Step duration per node",
        "Busiest users",
    ]
    # every node in the duration chart has a duration: nodes without timings are left out
    durations = [plotly_array(trace["x"]) for trace in json.loads(charts[7])["data"]]
    assert durations and all(len(x) == len(durations[0]) > 0 for x in durations)
    assert not any(v is None or math.isnan(v) for x in durations for v in x)
    view = db.overview(datetime.now(UTC) - timedelta(days=31), datetime.now(UTC) + timedelta(minutes=1))
    timed = {r["node"] for r in view.per_node if r["p50_ms"] is not None}
    assert timed < {r["node"] for r in view.per_node}  # the demo has nodes without timings
    assert set(json.loads(charts[7])["data"][0]["y"]) == timed
    # tokens and cost: the totals of the traces, per model the sum of the steps
    totals = sum(s.total_tokens or 0 for s in db.list_traces(limit=1000).items)
    assert metric(at, "Tokens") == human.tokens(totals)
    models = at.dataframe[0].value
    assert models["total tokens"].sum() == totals
    assert set(models["model"]) == {r["model"] for r in view.per_model}
    users = at.dataframe[1].value
    assert users["traces"].sum() == db.count_traces() and list(users["traces"]) == sorted(
        users["traces"], reverse=True
    )


def test_range_and_user_change_the_numbers(demo, db) -> None:
    at = open_page("overview")
    month = int(metric(at, "Traces"))
    at.segmented_control(key="span").set_value("24 hours").run()
    assert not at.exception
    day = int(metric(at, "Traces")) if at.metric else 0
    assert day < month
    at.segmented_control(key="span").set_value("a year").run()
    user = at.selectbox(key="overview_user").options[1]
    at.selectbox(key="overview_user").set_value(user).run()
    from tracedb import TraceFilter

    assert int(metric(at, "Traces")) == db.count_traces(TraceFilter(user_id=user))


def test_latency_is_one_call_per_range_bucketed_by_hour_day_or_week(demo, db, monkeypatch) -> None:
    import inspect

    import streamlit as st

    from tracedb import AutomationTraceDB

    calls = []
    real = inspect.getattr_static(AutomationTraceDB, "overview")

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("bucket"))
        return real.__get__(self, type(self))(*args, **kwargs)

    monkeypatch.setattr(AutomationTraceDB, "overview", counted)
    for span, bucket in (("24 hours", "hour"), ("30 days", "day"), ("a year", "week")):
        st.cache_data.clear()
        calls.clear()
        at = open_page("overview", span=span)
        assert not at.exception
        assert calls == [bucket], span
        if int(metric(at, "Traces")) if at.metric else 0:
            titles = [json.loads(spec)["layout"]["title"]["text"] for spec in plotly_specs(at)]
            assert f"Traces per {bucket}" in titles


def test_an_empty_database_says_so(fresh_db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=fresh_db_url):
        at = open_page("overview")
    assert not at.exception
    assert any("No traces were created" in i.value for i in at.info)
    assert at.button(key="widen")
