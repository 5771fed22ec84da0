"""tracedb.analytics: the dashboard's read queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracedb import InvalidTraceData, TraceFilter, analytics
from tracedb.demo import set_trace_times


def test_entry_columns_come_without_data_in_seq_order(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(5))
    cols = analytics.entry_columns(db, trace_id)
    assert list(cols) == list(analytics.ENTRY_COLUMN_NAMES)
    assert cols["seq"] == [0, 1, 2, 3, 4]
    assert cols["node"] == ["tools"] * 5 and cols["duration_ms"] == [500.0] * 5
    assert cols["started_at"][0].tzinfo is not None
    assert analytics.entry_columns(db, "not-a-uuid")["seq"] == []
    assert analytics.entry_columns(db, "00000000-0000-4000-8000-000000000000")["seq"] == []


def test_entries_by_seq_and_get_entry(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(6))
    rows = analytics.entries_by_seq(db, trace_id, [4, 1, 99])
    assert [r["seq"] for r in rows] == [1, 4]
    assert rows[0]["data"]["name"] == "step-1"
    assert analytics.get_entry(db, trace_id, 2)["data"]["input"] == {"i": 2}
    assert analytics.get_entry(db, trace_id, 50) is None
    assert analytics.entries_by_seq(db, trace_id, []) == []


def test_filter_choices(db, entries, ids) -> None:
    user = ids("choice")
    db.save_trace(user, None, ids("t"), entries(1, node="special_node"))
    choices = analytics.filter_choices(db)
    assert user in choices["users"] and choices["users"] == sorted(choices["users"])
    assert "special_node" in choices["nodes"]


def test_overview_aggregates(fresh_db_url, entries, ids) -> None:
    from tracedb import AutomationTraceDB

    now = datetime.now(UTC)
    with AutomationTraceDB(fresh_db_url) as db:
        ok = [
            db.save_trace("ana", None, ids("t"), entries(3, node="model", duration_ms=100.0))
            for _ in range(3)
        ]
        bad = db.save_trace(
            "ben", None, ids("t"), entries(2, node="tools", status="error", duration_ms=900.0)
        )
        db.set_status(bad, "failed")
        old = db.save_trace("ana", None, ids("t"), entries(1))
        set_trace_times(
            db,
            [
                (old, now - timedelta(days=40), now - timedelta(days=40)),
                (ok[0], now - timedelta(days=1, hours=1), now - timedelta(days=1)),
            ],
        )

        view = analytics.overview(db, now - timedelta(days=30), now + timedelta(minutes=1))
        assert view.totals["traces"] == 4
        assert view.totals["entries"] == 11
        assert view.totals["failed"] == 1 and view.totals["with_errors"] == 1
        assert view.totals["users"] == 2
        assert view.totals["p50_ms"] == pytest.approx(100.0)
        assert view.totals["p95_ms"] > 100.0

        per_node = {r["node"]: r for r in view.per_node}
        assert per_node["model"]["entries"] == 9 and per_node["tools"]["errors"] == 2
        assert per_node["tools"]["p50_ms"] == pytest.approx(900.0)
        assert [r["user_id"] for r in view.per_user] == ["ana", "ben"]
        assert sum(r["traces"] for r in view.per_day) == 4
        assert len({r["day"] for r in view.per_day}) == 2

        only_ben = analytics.overview(db, now - timedelta(days=30), now + timedelta(minutes=1), "ben")
        assert only_ben.totals["traces"] == 1

        with pytest.raises(InvalidTraceData):
            analytics.overview(db, now, now - timedelta(days=1))
        with pytest.raises(InvalidTraceData):
            analytics.overview(db, datetime(2026, 1, 1), now)


def test_set_trace_times_keeps_what_it_sets(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(1))
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    set_trace_times(db, [(trace_id, when, when + timedelta(minutes=5))])
    summary = db.get_summary(trace_id)
    assert summary.created_at == when and summary.updated_at == when + timedelta(minutes=5)
    # the trigger that stamps updated_at works again afterwards
    db.rename_trace(trace_id, "renamed")
    assert db.get_summary(trace_id).updated_at > when + timedelta(days=30)


def test_is_unfiltered() -> None:
    assert analytics.is_unfiltered(None) and analytics.is_unfiltered(TraceFilter())
    assert not analytics.is_unfiltered(TraceFilter(user_id="ana"))
