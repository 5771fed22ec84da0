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


def test_demo_loads_as_a_role_that_owns_nothing_and_leaves_nothing_running(fresh_db_url) -> None:
    """Loading demo traces needs only the rights to read and write rows: no table-owner
    rights (nothing is altered), and no trace is left running when it ends. A database of
    its own: the other tests here count the module database's traces."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    from tracedb import AutomationTraceDB

    db_url = fresh_db_url
    AutomationTraceDB(db_url).close()  # migrated by its owner
    role = f"tracedb_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        as_role = make_conninfo(db_url, options=f"-c role={role}")
        with AutomationTraceDB(as_role) as store:
            assert store.load_trace_by_id(str(uuid.uuid4())) is None
            with psycopg.connect(as_role) as conn:  # the store runs as the role: it owns no table
                assert conn.execute("SELECT current_user").fetchone()[0] == role
            before = store.count_traces()
            assert load_demo(store, traces=30, seed=5) == 30
            assert store.count_traces() == before + 30
            assert store.count_traces(TraceFilter(status="running")) == 0
            created = [s.created_at for s in store.list_traces(limit=100).items]
            assert min(created) < datetime.now(UTC) - timedelta(days=1)  # times set without ALTER
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_demo_traces_start_within_the_last_30_days_at_any_time_of_day() -> None:
    """The overview shows the last 30 days by default and must count every demo trace. A
    start time moved to a working hour of its day could land half a day before that: the
    overview counted 39 of 40 demo traces before noon."""
    import random

    from tracedb.demo import _start_time

    rng = random.Random(11)
    for hour in range(24):
        now = datetime(2026, 12, 1, hour, 25, tzinfo=UTC)
        for _ in range(2_000):
            start = _start_time(rng, now)
            assert now - timedelta(days=30) < start <= now - timedelta(minutes=10), (now, start)
