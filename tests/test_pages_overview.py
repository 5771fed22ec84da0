"""pages/overview.py: activity over a time range."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apptest_support import dashboard_env, open_page, plotly_array, plotly_specs

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
    assert len(charts) == 7
    titles = [json.loads(spec)["layout"]["title"]["text"] for spec in charts]
    assert titles[:4] == [
        "Traces per day",
        "Traces with errors per day",
        "Step duration over time",
        "Trace duration over time",
    ]
    # every node in the duration chart has a duration: nodes without timings are left out
    durations = [plotly_array(trace["x"]) for trace in json.loads(charts[5])["data"]]
    assert durations and all(len(x) == len(durations[0]) > 0 for x in durations)
    assert not any(v is None or math.isnan(v) for x in durations for v in x)
    view = db.overview(datetime.now(UTC) - timedelta(days=31), datetime.now(UTC) + timedelta(minutes=1))
    timed = {r["node"] for r in view.per_node if r["p50_ms"] is not None}
    assert timed < {r["node"] for r in view.per_node}  # the demo has nodes without timings
    assert set(json.loads(charts[5])["data"][0]["y"]) == timed
    users = at.dataframe[0].value
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


def test_an_empty_database_says_so(fresh_db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=fresh_db_url):
        at = open_page("overview")
    assert not at.exception
    assert any("No traces were created" in i.value for i in at.info)
    assert at.button(key="widen")
