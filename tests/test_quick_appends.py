"""Quick appends (sql/025): one entry per call goes in by one INSERT that leaves the trace
row's counts behind; every read adds what the row does not count yet, the fold brings the
row up to date, and no writer beside it can leave a gap or a duplicate."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tracedb import AutomationTraceDB, TraceFilter
from tracedb import queries as q
from tracedb.jsonsafe import prepare_entries


def step(i: int, node: str = "tools", **extra: Any) -> dict[str, Any]:
    t = datetime(2026, 5, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=i)
    return {
        "node": node,
        "name": f"step-{i}",
        "status": "ok",
        "started_at": t.isoformat(),
        "ended_at": (t + timedelta(milliseconds=250)).isoformat(),
        "duration_ms": 250.0 + i,
        **extra,
    }


def llm(i: int) -> dict[str, Any]:
    usage = {"input_tokens": 100 + i, "output_tokens": 10 + i, "total_tokens": 110 + 2 * i}
    return step(i, node="model", kind="llm", output={"content": "hi", "usage": usage}, name="gpt-4o-mini")


def row(conn: psycopg.Connection[Any], trace_id: str) -> dict[str, Any]:
    return conn.execute(
        "SELECT t.entry_count, t.index_pending,"
        " (SELECT count(*) FROM automation_trace_entries e WHERE e.trace_id = t.id) AS stored,"
        " (SELECT count(e.digest) FROM automation_trace_entries e WHERE e.trace_id = t.id) AS quick"
        " FROM automation_traces t WHERE t.id = %s",
        (trace_id,),
    ).fetchone()


SUMMED = (
    "entry_count",
    "total_duration_ms",
    "last_ended_at",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
)


def test_every_read_counts_the_entries_the_row_does_not_count_yet(
    db: AutomationTraceDB, db_url: str, ids
) -> None:
    user = ids("reader")
    trace_id = db.append_entries([step(0), llm(1)], thread_id=ids("t"), user_id=user).trace_id
    for i in range(2, 40):
        db.append_entries([llm(i) if i % 3 == 0 else step(i)], trace_id=trace_id)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        before = row(conn, trace_id)
        # the quick way was taken, and the row is behind: what the reads below must add
        assert before["stored"] == 40 and before["quick"] >= 30 and before["entry_count"] < 40
        assert before["index_pending"]

        summary = db.get_summary(trace_id)
        (listed,) = db.list_traces(TraceFilter(user_id=user)).items
        day = datetime.now(UTC) - timedelta(days=1)
        totals = db.overview(day, day + timedelta(days=2), user_id=user).totals

        conn.execute("SELECT tracedb_fold(%s)", (trace_id,))
        after = row(conn, trace_id)
        assert after["entry_count"] == 40
        folded = db.get_summary(trace_id)
    for name in SUMMED:
        assert getattr(summary, name) == getattr(folded, name) == getattr(listed, name), name
    assert folded.entry_count == 40 and folded.input_tokens == sum(
        100 + i for i in range(1, 40) if i % 3 == 0 or i == 1
    )
    assert folded.total_duration_ms == sum(250.0 + i for i in range(40))
    assert totals["entries"] == 40 and totals["input_tokens"] == folded.input_tokens
    assert totals["cost_usd"] == pytest.approx(folded.cost_usd)
    # the upsert's probe sees the fingerprint of every stored entry
    assert db.load_trace_by_id(trace_id).trace_data == [step(0), llm(1)] + [
        llm(i) if i % 3 == 0 else step(i) for i in range(2, 40)
    ]


def test_the_fingerprint_the_fold_chains_is_the_one_the_general_way_keeps(
    db: AutomationTraceDB, db_url: str, ids
) -> None:
    entries = [step(i) for i in range(30)]
    one = db.append_entries([entries[0]], thread_id=ids("one"), user_id="fp").trace_id
    for e in entries[1:]:
        db.append_entries([e], trace_id=one)
    whole = db.append_entries(entries, thread_id=ids("whole"), user_id="fp").trace_id
    thread = ids("upserted")
    for n in range(1, len(entries) + 1):  # the seed's way: the whole list, one more each time
        upserted = db.upsert_trace_by_thread("fp", None, thread, entries[:n])
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert row(conn, one)[3] >= 20 and row(conn, upserted)[3] >= 20  # written the quick way
        prints = [
            conn.execute("SELECT (tracedb_fold(%s)).fingerprint", (t,)).fetchone()[0]
            for t in (one, whole, upserted)
        ]
    assert prints[0] == prints[1] == prints[2] and len(prints[0]) == 32
    # the next upsert (another process: nothing remembered) finds the list as stored
    with AutomationTraceDB(db_url, apply_migrations=False) as other:
        assert other.upsert_trace_by_thread("fp", None, thread, [*entries, step(30)]) == upserted
    assert len(db.get_entries(upserted, running=False)) == 31
    with psycopg.connect(db_url, autocommit=True) as conn:  # appended to, not replaced
        assert (
            conn.execute("SELECT index_epoch FROM automation_traces WHERE id = %s", (upserted,)).fetchone()[0]
            == 0
        )


def test_a_quick_append_writes_only_the_next_entry_of_its_owners_trace(db: AutomationTraceDB, ids) -> None:
    """Each check of QUICK_APPEND: a stale count, a gap, another owner, another epoch, a
    trace not pending, an entry that would change the row, a thread's older trace."""
    thread = ids("owner")
    r = db.append_entries([step(0), step(1, node="plan")], thread_id=thread, user_id="ann")
    trace_id = r.trace_id
    epoch = db._counts.get(trace_id)[1]
    with db.pool.connection() as conn:

        def write(seq: int, entry: dict[str, Any] | None = None, **over: Any) -> int:
            st = db._quick(trace_id, prepare_entries([entry or step(seq)]), seq)
            if st is None:  # an error entry: never sent the quick way
                return 0
            params = {**st.params, "epoch": epoch, "scope": "ann", **over}
            query = q.QUICK_UPSERT if "thread_id" in over else q.QUICK_APPEND
            try:
                return len(conn.execute(query, params).fetchall())
            except psycopg.errors.UniqueViolation:
                return 0

        assert write(1) == 0  # entry 1 is there: a stale count
        stale = db._quick(trace_id, prepare_entries([step(1)]), 1)
        assert conn.execute(stale.query, {**stale.params, "scope": "ann"}).fetchall() == []  # no error
        assert write(3) == 0  # a gap
        assert write(2, scope="bob") == 0  # not bob's trace
        assert write(2, epoch=epoch + 1) == 0  # the entries were replaced since
        assert write(2, step(2, node="new")) == 0  # a node the row does not have yet
        assert write(2, step(2, status="error", error="boom")) == 0  # an error
        assert write(2, step(-5)) == 0  # starts before the trace's first entry
        assert write(2, thread_id=thread, user_id="bob") == 0  # not bob's thread
        assert write(2, thread_id=thread, user_id="ann") == 1
        assert write(2) == 0  # twice: the primary key refuses the second
        db.save_trace("ann", None, thread, [step(0)])  # a newer trace of the thread
        assert write(3, thread_id=thread, user_id="ann") == 0  # no longer the thread's newest
        assert write(3) == 1  # by id it still is the trace
        conn.execute("UPDATE automation_traces SET index_pending = false WHERE id = %s", (trace_id,))
        assert write(4) == 0  # a trace not pending: the general way sets the flag first
        with conn.transaction():  # the time as set here, not the touch trigger's
            conn.execute("SET LOCAL tracedb.keep_times = 'on'")
            conn.execute(
                "UPDATE automation_traces SET index_pending = true, updated_at = now() - interval '5 seconds'"
                " WHERE id = %s",
                (trace_id,),
            )
        assert write(4) == 0  # updated_at is due to move: the general way moves it
    assert [e["seq"] for e in db.get_entries(trace_id, running=False)] == [0, 1, 2, 3]
    assert db.get_summary(trace_id).entry_count == 4


def test_quick_appends_beside_other_writers_leave_no_gap_and_no_duplicate(
    db: AutomationTraceDB, db_url: str, ids
) -> None:
    """Writers in other processes (stores of their own) append one entry at a time to one
    trace while another replaces its entries and the indexers fold: every entry a writer
    was told is stored is there once, in order, and the row counts exactly the entries."""
    trace_id = db.append_entries([step(0)], thread_id=ids("race"), user_id="race").trace_id
    stores = [AutomationTraceDB(db_url, apply_migrations=False) for _ in range(3)]
    written: list[list[tuple[int, str]]] = [[] for _ in stores]
    errors: list[BaseException] = []
    stop = threading.Event()
    replaced: list[int] = []

    def writer(k: int) -> None:
        try:
            for i in range(120):
                name = f"w{k}-{i}"
                r = stores[k].append_entries([step(1, name=name)], trace_id=trace_id)
                written[k].append((r.first_seq, name))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def replacer() -> None:
        try:  # while the writers are in their first half: they go on alone after it
            while not stop.is_set() and min(map(len, written)) < 60:
                stop.wait(0.05)
                db.update_trace(trace_id, trace_data=[step(0)])
                replaced.append(1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(len(stores))]
    rep = threading.Thread(target=replacer)
    for t in [*threads, rep]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    rep.join()
    for s in stores:
        s.close()  # their indexers fold what they wrote
    assert not errors, errors
    entries = db.get_entries(trace_id, running=False)
    seqs = [e["seq"] for e in entries]
    assert seqs == list(range(len(entries)))  # no gap
    names = [e["data"].get("name") for e in entries]
    assert len(set(names)) == len(names)  # no duplicate
    # the entries after the last replacement: each at the place its writer was told
    told = {w for ws in written for w in ws}
    assert {(e["seq"], e["data"]["name"]) for e in entries[1:]} <= told
    assert sum(map(len, written)) == 360 and len(replaced) >= 2 and 1 < len(entries) < 361
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert row(conn, trace_id)[3] > 0  # some went the quick way
        conn.execute("SELECT tracedb_fold(%s)", (trace_id,))
        assert row(conn, trace_id)[0] == len(entries)
    assert db.get_summary(trace_id).entry_count == len(entries)


def test_a_quick_append_that_lost_its_place_goes_the_general_way(
    db: AutomationTraceDB, db_url: str, ids
) -> None:
    """Another process stored the entry this one meant to write next: the primary key
    refuses the quick INSERT, and the append lands after it, the general way."""
    trace_id = db.append_entries([step(0)], thread_id=ids("lost"), user_id="lost").trace_id
    with AutomationTraceDB(db_url, apply_migrations=False) as other:
        assert other.append_entries([step(1, name="other")], trace_id=trace_id).first_seq == 1
    assert db._counts.get(trace_id)[0] == 1  # this process still thinks entry 1 is next
    r = db.append_entries([step(2, name="mine")], trace_id=trace_id)
    assert (r.first_seq, r.entry_count, r.written) == (2, 3, 1)
    names = [e["data"]["name"] for e in db.get_entries(trace_id, running=False)]
    assert names == ["step-0", "other", "mine"]
    r = db.append_entries([step(3)], trace_id=trace_id)  # and the next goes quick again
    assert r.first_seq == 3
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert row(conn, trace_id)[3] == 1
