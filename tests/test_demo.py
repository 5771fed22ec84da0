"""tracedb.demo: realistic demo traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracedb import TraceFilter
from tracedb.demo import BIG_TRACE_ENTRIES, USERS, load_demo


def test_load_demo(db) -> None:
    seen: list[int] = []
    assert load_demo(db, traces=60, seed=3, progress=seen.append) == 60
    assert seen == list(range(1, 61))
    assert db.count_traces() == 60

    page = db.list_traces(limit=100)
    statuses = {s.status for s in page.items}
    assert {"completed", "failed"} <= statuses
    assert {s.user_id for s in page.items} <= set(USERS) and len({s.user_id for s in page.items}) >= 4

    big = max(page.items, key=lambda s: s.entry_count)
    assert big.entry_count >= BIG_TRACE_ENTRIES
    assert set(big.nodes) >= {"planner", "model", "tools", "summarise"}

    # a month of history, not all created now
    now = datetime.now(UTC)
    created = [s.created_at for s in page.items]
    assert min(created) < now - timedelta(days=3)
    assert all(s.updated_at >= s.created_at for s in page.items)
    assert max(created) <= now

    failed = db.list_traces(TraceFilter(status="failed"), limit=5).items
    assert failed and all(s.error_count >= 1 for s in failed)
    # the store's summary columns were filled from the entries' own timings
    timed = [s for s in page.items if s.first_started_at is not None]
    assert timed and all(s.duration_ms and s.duration_ms > 0 for s in timed)


def test_load_demo_of_nothing(db) -> None:
    assert load_demo(db, traces=0) == 0
