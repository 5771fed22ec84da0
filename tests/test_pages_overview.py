"""pages/overview.py: activity over a time range."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apptest_support import dashboard_env, open_page

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
    assert metric(at, "Step p95").endswith(" ms") and metric(at, "Error rate").endswith("%")
    assert len(at.get("plotly_chart")) == 5
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
