"""AutomationTraceDB on a real PostgreSQL: the seed's seven methods and the rest."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from store_support import STORES, in_threads

from tracedb import (
    DatabaseUnavailable,
    EntryTooLarge,
    InvalidTraceData,
    TraceFilter,
    TraceNotFound,
    filters,
)
from tracedb import queries as q


@pytest.fixture(scope="module", params=sorted(STORES))
def open_store(request: pytest.FixtureRequest):
    """How to open a store: the sync class, or the async class driven from this thread.
    Every test of this module runs against both."""
    return STORES[request.param]


@pytest.fixture(scope="module")
def db(db_url, open_store):
    with open_store(db_url) as store:
        yield store


def test_save_and_load_by_id(db, entries, ids):
    data = entries(3)
    tid = db.save_trace("ana", "openai", ids("th"), data, name="first")
    trace = db.load_trace_by_id(tid)
    assert trace is not None
    assert trace.id == tid and trace.user_id == "ana" and trace.provider_id == "openai"
    assert trace.name == "first" and trace.status == "completed"
    assert trace.trace_data == data
    assert trace.entry_count == 3 and trace.error_count == 0
    assert trace.nodes == ["tools"]
    assert trace.duration_ms == pytest.approx(2500.0)


def test_load_unknown_or_malformed_id_is_none(db):
    assert db.load_trace_by_id(str(uuid.uuid4())) is None
    assert db.load_trace_by_id("not-a-uuid") is None
    assert db.load_trace_by_id("") is None
    assert db.load_trace_by_id(None) is None  # type: ignore[arg-type]
    assert db.load_trace_by_id("'; DROP TABLE automation_traces; --") is None


def test_load_by_thread_returns_most_recent(db, entries, ids):
    thread = ids("th")
    db.save_trace("ana", None, thread, entries(1), name="old")
    newer = db.save_trace("ana", None, thread, entries(2), name="new")
    trace = db.load_trace_by_thread(thread)
    assert trace is not None and trace.id == newer and trace.entry_count == 2
    assert db.load_trace_by_thread(ids("none")) is None
    assert db.load_trace_by_thread("") is None


def test_get_user_traces_newest_first_with_paging(db, entries, ids):
    user = ids("user")
    made = [db.save_trace(user, None, ids("th"), entries(1), name=f"n{i}") for i in range(5)]
    db.update_trace(made[1], name="touched")  # now the most recently updated
    got = db.get_user_traces(user)
    assert [s.id for s in got] == [made[1], made[4], made[3], made[2], made[0]]
    assert not hasattr(got[0], "trace_data")
    page = db.get_user_traces(user, limit=2, offset=2)
    assert [s.id for s in page] == [made[3], made[2]]
    with pytest.raises(InvalidTraceData):
        db.get_user_traces(user, limit=0)
    with pytest.raises(InvalidTraceData):
        db.get_user_traces(user, offset=-1)


def test_update_trace_name_and_data(db, entries, ids):
    tid = db.save_trace("ana", None, ids("th"), entries(3), name="a")
    assert db.update_trace(tid, name="b")
    assert db.load_trace_by_id(tid).name == "b"
    new = entries(2, start=10, node="model")
    assert db.update_trace(tid, trace_data=new)
    trace = db.load_trace_by_id(tid)
    assert trace.trace_data == new and trace.entry_count == 2 and trace.nodes == ["model"]
    assert trace.name == "b"
    assert db.update_trace(str(uuid.uuid4()), name="x") is False
    assert db.update_trace("junk", name="x") is False


def test_update_with_bad_data_changes_nothing(db, entries, ids):
    tid = db.save_trace("ana", None, ids("th"), entries(3), name="keep")
    with pytest.raises(InvalidTraceData):
        db.update_trace(tid, name="new", trace_data=[{"ok": 1}, {"big": "x" * 2_000_000}])
    trace = db.load_trace_by_id(tid)
    assert trace.name == "keep" and trace.entry_count == 3


def test_delete_trace_cascades(db, db_url, entries, ids):
    tid = db.save_trace("ana", None, ids("th"), entries(4))
    assert db.delete_trace(tid) is True
    assert db.load_trace_by_id(tid) is None
    assert db.delete_trace(tid) is False
    assert db.delete_trace("junk") is False
    with psycopg.connect(db_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM automation_trace_entries WHERE trace_id = %s", (tid,)
        ).fetchone()[0]
    assert left == 0


def test_upsert_creates_then_appends_only_new_entries(db, entries, ids):
    thread = ids("th")
    data = entries(3)
    tid = db.upsert_trace_by_thread("ana", "p", thread, data, name="chat")
    data += entries(2, start=3)
    assert db.upsert_trace_by_thread("ana", "p", thread, data) == tid
    trace = db.load_trace_by_id(tid)
    assert trace.trace_data == data and trace.name == "chat"  # name=None keeps the name
    assert db.upsert_trace_by_thread("ana", "p", thread, data, name="renamed") == tid
    trace = db.load_trace_by_id(tid)
    assert trace.entry_count == 5 and trace.name == "renamed"


def test_upsert_from_a_second_process_resyncs(db_url, db, entries, ids, open_store):
    """Another store (another process) holds a stale or no offset: still exact."""
    thread = ids("th")
    data = entries(120)
    tid = db.upsert_trace_by_thread("ana", None, thread, data[:70])
    with open_store(db_url) as other:
        # unknown thread in this store, long trace: probe, then send from the stored count
        assert other.upsert_trace_by_thread("ana", None, thread, data[:100]) == tid
    assert db.upsert_trace_by_thread("ana", None, thread, data) == tid  # stale hint (70)
    assert db.load_trace_by_id(tid).trace_data == data


def test_upsert_after_delete_starts_a_new_trace(db, entries, ids):
    thread = ids("th")
    first = db.upsert_trace_by_thread("ana", None, thread, entries(5))
    db.delete_trace(first)
    second = db.upsert_trace_by_thread("ana", None, thread, entries(6))
    assert second != first
    assert db.load_trace_by_id(second).entry_count == 6


def test_append_entries_by_thread_and_id(db, entries, ids):
    thread = ids("th")
    r1 = db.append_entries(entries(2), thread_id=thread, user_id="ana", status="running")
    assert r1.created and r1.first_seq == 0 and r1.entry_count == 2
    r2 = db.append_entries(entries(3, start=2), trace_id=r1.trace_id)
    assert r2.trace_id == r1.trace_id and r2.first_seq == 2 and r2.entry_count == 5
    r3 = db.append_entries([], trace_id=r1.trace_id, status="completed")
    assert r3.written == 0
    trace = db.load_trace_by_id(r1.trace_id)
    assert trace.status == "completed" and [e["name"] for e in trace.trace_data] == [
        f"step-{i}" for i in range(5)
    ]
    with pytest.raises(TraceNotFound):
        db.append_entries(entries(1), trace_id=str(uuid.uuid4()))
    with pytest.raises(TraceNotFound):
        db.append_entries(entries(1), trace_id="nope")
    with pytest.raises(InvalidTraceData):
        db.append_entries(entries(1), trace_id=r1.trace_id, status="weird")


def test_error_entries_counted(db, ids):
    tid = db.save_trace(
        "ana",
        None,
        ids("th"),
        [
            {"node": "tools", "status": "error", "error": "boom"},
            {"node": "tools", "status": "ok"},
            {"node": "model", "error": "quota"},
        ],
    )
    s = db.get_summary(tid)
    assert s.error_count == 2 and s.nodes == ["model", "tools"]
    rows = db.get_entries(tid)
    assert [r["status"] for r in rows] == ["error", "ok", "error"]
    assert [r["seq"] for r in db.get_entries(tid, after_seq=0)] == [1, 2]


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [None, "text", {"node": "x"}, 42, ({"a": 1},), {"automation_trace": [], "messages": []}]
)
def test_trace_data_must_be_a_list(db, ids, bad):
    thread = ids("th")
    with pytest.raises(InvalidTraceData, match="trace_data"):
        db.save_trace("ana", None, thread, bad)
    with pytest.raises(InvalidTraceData, match="trace_data"):
        db.upsert_trace_by_thread("ana", None, thread, bad)
    assert db.load_trace_by_thread(thread) is None


@pytest.mark.parametrize(
    "field,value",
    [("user_id", ""), ("user_id", None), ("thread_id", "a\x00b"), ("user_id", 5), ("thread_id", "x" * 2000)],
)
def test_bad_ids_are_clear_errors(db, field, value):
    kwargs = {"user_id": "ana", "provider_id": None, "thread_id": "t", "trace_data": []}
    kwargs[field] = value
    with pytest.raises(InvalidTraceData, match=field):
        db.save_trace(**kwargs)


def test_rejected_write_keeps_what_was_stored(db, entries, ids):
    thread = ids("th")
    good = entries(3)
    tid = db.upsert_trace_by_thread("ana", None, thread, good)
    huge = {"node": "tools", "blob": "x" * (1024 * 1024 + 10)}
    with pytest.raises(EntryTooLarge, match="1,048,576 bytes"):
        db.upsert_trace_by_thread("ana", None, thread, [*good, {"node": "ok"}, huge])
    deep: dict = {}
    cur = deep
    for _ in range(100):
        cur["x"] = {}
        cur = cur["x"]
    with pytest.raises(EntryTooLarge, match="max_depth"):
        db.append_entries([deep], trace_id=tid)
    trace = db.load_trace_by_id(tid)
    assert trace.trace_data == good  # the valid entry before the bad one was not written


def test_size_limit_is_configurable(db_url, ids, open_store):
    with open_store(db_url, max_entry_bytes=100) as small:
        with pytest.raises(EntryTooLarge, match="100 bytes"):
            small.save_trace("ana", None, ids("th"), [{"pad": "x" * 200}])
        small.save_trace("ana", None, ids("th"), [{"pad": "x" * 20}])


def test_awkward_values_are_stored_by_the_rules(db, ids):
    import decimal
    from dataclasses import dataclass

    from langchain_core.messages import AIMessage, HumanMessage

    @dataclass
    class Point:
        x: int
        y: int

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    uid = uuid.uuid4()
    entry = {
        "nul": "a\x00b",
        "surrogate": "x\ud800y",
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": float("-inf"),
        "when": when,
        "id": uid,
        "raw": b"\xff\x00\x01",
        "text": b"hi",
        "dec": decimal.Decimal("1.10"),
        "msgs": [HumanMessage("hi"), AIMessage("yo")],
        "point": Point(1, 2),
        "set": {3, 1},
        "tuple": (1, 2),
        7: "int key",
        "obj": object(),
        "big": 2**80,
    }
    tid = db.save_trace("ana", None, ids("th"), [entry])
    got = db.load_trace_by_id(tid).trace_data[0]
    assert got["nul"] == "a\ufffdb" and got["surrogate"] == "x\ufffdy"
    assert (got["nan"], got["inf"], got["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert got["when"] == when.isoformat() and got["id"] == str(uid)
    assert got["raw"].startswith("base64:") and got["text"] == "hi"
    assert got["dec"] == "1.10"
    assert got["msgs"][0]["content"] == "hi" and got["msgs"][1]["type"] == "ai"
    assert got["point"] == {"x": 1, "y": 2} and got["set"] == [1, 3] and got["tuple"] == [1, 2]
    assert got["7"] == "int key" and got["obj"].startswith("<object object")
    assert got["big"] == 2**80


def test_nul_in_name_is_rejected_not_crashing(db, ids):
    with pytest.raises(InvalidTraceData, match="name"):
        db.save_trace("ana", None, ids("th"), [], name="bad\x00name")


# -- listing, counting, deleting --------------------------------------------------------


@pytest.fixture()
def corpus(db, ids):
    """Traces of one fresh user with varied names, statuses, nodes and contents."""
    user = ids("corp")
    made = {}
    for i in range(12):
        data = [
            {"node": "planner", "kind": "plan", "output": f"plan {i}"},
            {
                "node": "tools" if i % 2 else "model",
                "kind": "tool",
                "name": "calculator",
                "input": {"expr": f"{i} * 2"},
                "output": "zebra" if i == 5 else "plain",
            },
        ]
        tid = db.save_trace(user, None, f"{user}-t{i}", data, name=f"{'alpha' if i < 4 else 'beta'} {i}")
        if i % 3 == 0:
            db.set_status(tid, "failed")
        made[i] = tid
    return user, made


def test_list_traces_filters(db, corpus):
    user, made = corpus

    def ids_of(**kw):
        return {s.id for s in db.list_traces(TraceFilter(user_id=user, **kw), limit=100).items}

    assert len(ids_of()) == 12
    assert ids_of(name="ALPHA") == {made[i] for i in range(4)}
    assert ids_of(status="failed") == {made[i] for i in (0, 3, 6, 9)}
    assert ids_of(status=("failed", "completed")) == set(made.values())
    assert ids_of(node="tools") == {made[i] for i in range(12) if i % 2}
    assert ids_of(text="zebra") == {made[5]}
    assert ids_of(contains={"node": "tools", "input": {"expr": "3 * 2"}}) == {made[3]}
    assert ids_of(thread_id=f"{user}-t7") == {made[7]}
    assert ids_of(trace_ids=[made[1], made[2], "junk"]) == {made[1], made[2]}
    now = datetime.now(UTC)
    assert ids_of(since=now - timedelta(minutes=5)) == set(made.values())
    assert ids_of(until=now - timedelta(days=1)) == set()
    assert db.count_traces(TraceFilter(user_id=user, status="failed")) == 4


def test_name_filter_escapes_like_wildcards(db, corpus):
    user, _ = corpus
    assert db.count_traces(TraceFilter(user_id=user, name="%")) == 0
    assert db.count_traces(TraceFilter(user_id=user, name="_")) == 0


def test_keyset_pagination_visits_each_trace_once(db, corpus):
    user, made = corpus
    seen, cursor = [], None
    while True:
        page = db.list_traces(TraceFilter(user_id=user), limit=5, cursor=cursor)
        seen += [s.id for s in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == 12 and set(seen) == set(made.values())
    stamps = [db.get_summary(i).updated_at for i in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_bad_filters_are_clear_errors(db):
    with pytest.raises(InvalidTraceData, match="cursor"):
        db.list_traces(cursor="garbage!")
    with pytest.raises(InvalidTraceData, match="status"):
        db.list_traces(TraceFilter(status="done"))
    with pytest.raises(InvalidTraceData, match="since"):
        db.list_traces(TraceFilter(since="yesterday"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTraceData, match="contains"):
        db.list_traces(TraceFilter(contains="node"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTraceData, match="limit"):
        db.list_traces(limit=10**9)
    # websearch syntax never raises on odd input
    db.list_traces(TraceFilter(text='"unterminated & | !('))


def test_delete_traces_by_filter_deletes_all_matches_not_one_page(db, ids):
    user = ids("bulk")
    for i in range(25):
        db.save_trace(user, None, ids("th"), [{"node": "x", "i": i}], name="doomed" if i < 23 else "kept")
    seen = []
    n = db.delete_traces(TraceFilter(user_id=user, name="doomed"), batch_size=10, progress=seen.append)
    assert n == 23 and seen == [10, 20, 23]
    assert db.count_traces(TraceFilter(user_id=user)) == 2


def test_delete_with_empty_filter_needs_allow_all(db):
    with pytest.raises(InvalidTraceData, match="allow_all"):
        db.delete_traces(TraceFilter())
    with pytest.raises(InvalidTraceData, match="allow_all"):
        db.delete_traces(None)


def test_set_status_and_metadata(db, ids):
    tid = db.save_trace("ana", None, ids("th"), [])
    assert db.set_status(tid, "running")
    assert db.get_summary(tid).status == "running"
    assert db.set_status(str(uuid.uuid4()), "failed") is False
    assert db.update_metadata(tid, {"model": "offline", "n": 1})
    assert db.update_metadata(tid, {"n": 2})
    assert db.get_summary(tid).metadata == {"model": "offline", "n": 2}
    assert db.rename_trace(tid, "renamed") and db.get_summary(tid).name == "renamed"


# -- concurrency ----------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_appends_to_a_new_thread(db_url, round_, open_store):
    """8 threads append to a thread that does not exist yet: one trace, every entry once,
    each writer's entries in its own order, seq dense."""
    thread = f"race-{uuid.uuid4().hex[:8]}"
    per_writer, writers = 40, 8
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []
    with open_store(db_url, max_size=writers) as store:

        def work(w: int) -> None:
            try:
                barrier.wait()
                for i in range(0, per_writer, 4):
                    store.append_entries(
                        [{"w": w, "i": j} for j in range(i, i + 4)], thread_id=thread, user_id="race"
                    )
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert store.count_traces(TraceFilter(thread_id=thread)) == 1
        trace = store.load_trace_by_thread(thread)
    assert trace.entry_count == writers * per_writer
    pairs = [(e["w"], e["i"]) for e in trace.trace_data]
    assert len(set(pairs)) == len(pairs)
    for w in range(writers):
        assert [i for ww, i in pairs if ww == w] == list(range(per_writer))


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_seed_upserts_of_one_growing_trace(db_url, round_, open_store):
    """8 writers upsert prefixes of the same complete trace at once, from separate stores
    (like separate processes): the stored trace is that trace, each entry once."""
    thread = f"race-{uuid.uuid4().hex[:8]}"
    full = [{"node": "n", "i": i} for i in range(60)]
    barrier = threading.Barrier(8)
    results: list[str] = []

    def work(w: int) -> None:
        with open_store(db_url, min_size=1, max_size=1) as store:
            barrier.wait()
            for end in range(w % 3 + 1, len(full) + 1, 3):
                results.append(store.upsert_trace_by_thread("race", None, thread, full[:end]))
            results.append(store.upsert_trace_by_thread("race", None, thread, full))

    assert not in_threads(work, 8)
    assert len(set(results)) == 1
    with open_store(db_url) as store:
        assert store.load_trace_by_thread(thread).trace_data == full
        assert store.count_traces(TraceFilter(thread_id=thread)) == 1


def test_unreachable_server_is_a_named_error(open_store):
    with pytest.raises(DatabaseUnavailable):
        open_store("postgresql://nobody@127.0.0.1:1/none", timeout=1)


def test_bounded_count_is_exact_when_quick_and_an_estimate_otherwise(db, db_url, corpus):
    user, made = corpus
    assert db.count_traces_bounded(TraceFilter(user_id=user)) == (12, True)
    # An estimate comes from the plan of the same filter: a non-negative whole number.

    query, params = filters.count_estimate_query(TraceFilter(user_id=user, text="zebra"))
    with psycopg.connect(db_url) as conn:
        estimate = filters.estimate_from_plan(conn.execute(query, params, prepare=False).fetchone())
    assert isinstance(estimate, int) and estimate >= 0


# -- what the dashboard reads -----------------------------------------------------------


def test_entry_columns_after_a_seq(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(5))
    assert db.entry_columns(trace_id, after_seq=2)["seq"] == [3, 4]


def test_entry_columns_come_without_data_in_seq_order(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(5))
    cols = db.entry_columns(trace_id)
    assert list(cols) == list(q.ENTRY_FIELDS)
    assert cols["seq"] == [0, 1, 2, 3, 4]
    assert cols["node"] == ["tools"] * 5 and cols["duration_ms"] == [500.0] * 5
    assert cols["started_at"][0].tzinfo is not None
    assert db.entry_columns("not-a-uuid")["seq"] == []
    assert db.entry_columns("00000000-0000-4000-8000-000000000000")["seq"] == []


def test_entries_by_seq_and_get_entry(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(6))
    rows = db.entries_by_seq(trace_id, [4, 1, 99])
    assert [r["seq"] for r in rows] == [1, 4]
    assert rows[0]["data"]["name"] == "step-1"
    assert db.get_entry(trace_id, 2)["data"]["input"] == {"i": 2}
    assert db.get_entry(trace_id, 50) is None
    assert db.entries_by_seq(trace_id, []) == []


def test_filter_choices(db, entries, ids) -> None:
    user = ids("choice")
    db.save_trace(user, None, ids("t"), entries(1, node="special_node"))
    choices = db.filter_choices()
    assert user in choices["users"] and choices["users"] == sorted(choices["users"])
    assert "special_node" in choices["nodes"]


def test_overview_aggregates(fresh_db_url, entries, ids, open_store) -> None:
    now = datetime.now(UTC)
    with open_store(fresh_db_url) as db:
        ok = [
            db.save_trace("ana", None, ids("t"), entries(3, node="model", duration_ms=100.0))
            for _ in range(3)
        ]
        bad = db.save_trace(
            "ben", None, ids("t"), entries(2, node="tools", status="error", duration_ms=900.0)
        )
        db.set_status(bad, "failed")
        old = db.save_trace("ana", None, ids("t"), entries(1))
        db.set_trace_times(
            [
                (old, now - timedelta(days=40), now - timedelta(days=40)),
                (ok[0], now - timedelta(days=1, hours=1), now - timedelta(days=1)),
            ],
        )

        view = db.overview(now - timedelta(days=30), now + timedelta(minutes=1))
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

        only_ben = db.overview(now - timedelta(days=30), now + timedelta(minutes=1), "ben")
        assert only_ben.totals["traces"] == 1

        with pytest.raises(InvalidTraceData):
            db.overview(now, now - timedelta(days=1))
        with pytest.raises(InvalidTraceData):
            db.overview(datetime(2026, 1, 1), now)


def test_set_trace_times_keeps_what_it_sets(db, entries, ids) -> None:
    trace_id = db.save_trace(ids("u"), None, ids("t"), entries(1))
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    db.set_trace_times([(trace_id, when, when + timedelta(minutes=5))])
    summary = db.get_summary(trace_id)
    assert summary.created_at == when and summary.updated_at == when + timedelta(minutes=5)
    # the trigger that stamps updated_at works again afterwards
    db.rename_trace(trace_id, "renamed")
    assert db.get_summary(trace_id).updated_at > when + timedelta(days=30)


def test_is_empty_filter() -> None:

    assert filters.is_empty_filter(None) and filters.is_empty_filter(TraceFilter())
    assert not filters.is_empty_filter(TraceFilter(user_id="ana"))


def test_server_status_lists_tables_indexes_and_functions(db) -> None:
    status = db.server_status()
    assert "PostgreSQL" in status.version
    assert status.migrations[0].startswith("001_")
    assert set(status.tables) == set(q.STATUS_TABLES)
    assert all(isinstance(n, int) and n >= 0 for n in status.tables.values())
    assert "automation_traces_pkey" in status.indexes
    assert any(f.startswith("tracedb_append(") for f in status.functions)


# -- one implementation, two shells ------------------------------------------------------


def test_a_server_that_drops_every_connection_is_found_again(db, db_url, pg_admin_url, entries, ids) -> None:
    """Every backend of the store is killed (a restart, a failover): the next calls get
    fresh connections and work, in both classes. Killed from a direct connection, so that
    behind a pooler (--pgbouncer) it is the pooler's server connections that go."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    user = ids("u")
    db.save_trace(user, None, ids("t"), entries(1))
    direct = make_conninfo(pg_admin_url, dbname=conninfo_to_dict(db_url)["dbname"])
    with psycopg.connect(direct, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()) k"
        ).fetchone()[0]
    assert killed >= 1
    deadline = time.monotonic() + 15
    while True:
        try:
            tid = db.save_trace(user, None, ids("t"), entries(2))
            break
        except DatabaseUnavailable:
            assert time.monotonic() < deadline, "the store did not reconnect"
            time.sleep(0.2)
    assert db.load_trace_by_id(tid).entry_count == 2
    assert db.count_traces(TraceFilter(user_id=user)) == 2


@pytest.mark.server_sessions
def test_batched_deletes_run_on_one_connection(db_url, ids, open_store) -> None:
    """Every batch of a bulk delete runs on the connection the delete started with. The
    pool holds three connections and hands them out in turn, so a delete that took a
    connection per batch would show several sessions below."""
    user = ids("one-conn")
    sessions: set[int] = set()

    def last_deleter(done: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as probe:
            rows = probe.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'DELETE FROM automation_traces WHERE id = ANY%%' ORDER BY state_change DESC LIMIT 1"
            ).fetchall()
        sessions.update(r[0] for r in rows)

    with open_store(db_url, min_size=3, max_size=3) as store:
        for i in range(9):
            store.save_trace(user, None, ids("th"), [{"i": i}])
        seen: list[int] = []
        n = store.delete_traces(
            TraceFilter(user_id=user), batch_size=2, progress=lambda d: (seen.append(d), last_deleter(d))
        )
    assert n == 9 and seen == [2, 4, 6, 8, 9]
    assert len(sessions) == 1


def test_operations_are_generators_of_statements() -> None:
    """The core decides what runs without any I/O: drive count_traces_bounded by hand and
    make its exact count time out; it falls back to the planner's estimate."""
    from tracedb.errors import QueryTimeout
    from tracedb.operations import StoreOperations

    op = StoreOperations.count_traces_bounded.fn(StoreOperations(), TraceFilter(user_id="ana"), budget_ms=40)
    first = next(op)
    assert first.timeout_ms == 40 and first.prepare is False and first.fetch == "one"
    assert "ana" in first.params.values()
    second = op.throw(QueryTimeout("slow"))
    assert second.timeout_ms is None and "EXPLAIN" in second.query.as_string(None)
    with pytest.raises(StopIteration) as done:
        op.send({"QUERY PLAN": [{"Plan": {"Plan Rows": 1234}}]})
    assert done.value.value == (1234, False)


def test_sizes_are_the_same_in_sql_and_python(db, db_url) -> None:
    from tracedb import limits

    # ``db`` migrates the module's database, so the test stands alone in any order

    with psycopg.connect(db_url) as conn:
        size, entry_bytes = conn.execute(
            "SELECT tracedb_search_block_size(), tracedb_search_entry_bytes()"
        ).fetchone()
    assert size == limits.SEARCH_BLOCK_SIZE
    assert entry_bytes == limits.SEARCH_ENTRY_BYTES


def test_turns_number_the_entries_of_each_run(db, entries, ids) -> None:
    thread = ids("th")
    first = db.append_entries(entries(2), thread_id=thread, user_id="ana", status="running", new_turn=True)
    assert first.turn == 1
    db.append_entries(entries(1, start=2), trace_id=first.trace_id, status="completed")
    second = db.append_entries(entries(2, start=3), trace_id=first.trace_id, new_turn=True)
    assert second.turn == 2
    assert [r["turn"] for r in db.get_entries(first.trace_id)] == [1, 1, 1, 2, 2]
    assert db.entry_columns(first.trace_id)["turn"] == [1, 1, 1, 2, 2]
    assert db.get_summary(first.trace_id).turns == 2
    # a writer that never starts a turn leaves it empty
    plain = db.upsert_trace_by_thread("ana", None, ids("th"), entries(2))
    assert [r["turn"] for r in db.get_entries(plain)] == [None, None]
    assert db.get_summary(plain).turns == 0


def test_work_adds_up_steps_and_span_includes_pauses(db, ids) -> None:
    tid = db.save_trace(
        "ana",
        None,
        ids("th"),
        [
            {
                "node": "a",
                "started_at": "2026-01-01T00:00:00+00:00",
                "ended_at": "2026-01-01T00:00:00.010+00:00",
            },
            {
                "node": "b",
                "started_at": "2026-01-01T00:02:00+00:00",
                "ended_at": "2026-01-01T00:02:00.005+00:00",
            },
        ],
    )
    s = db.get_summary(tid)
    assert s.work_ms == pytest.approx(15.0)
    assert s.duration_ms == pytest.approx(120_005.0)
    assert s.to_dict()["work_ms"] == pytest.approx(15.0)


# -- one user's view ---------------------------------------------------------------------


def test_a_user_view_sees_and_changes_only_that_users_traces(db, entries, ids) -> None:
    from tracedb import AccessDenied

    ana_id, ben_id = ids("ana"), ids("ben")
    ana, ben = db.as_user(ana_id), db.as_user(ben_id)
    assert ana.user_scope == ana_id and db.user_scope is None
    thread = ids("shared-thread")
    mine = ana.upsert_trace_by_thread(None, None, thread, entries(2))
    theirs = ben.upsert_trace_by_thread(ben_id, None, thread, entries(3))
    assert mine != theirs  # one thread id, one trace per user
    assert db.get_summary(mine).user_id == ana_id and db.get_summary(theirs).user_id == ben_id

    assert ana.load_trace_by_id(theirs) is None and ana.get_summary(theirs) is None
    assert ana.load_trace_by_thread(thread).id == mine and ben.load_trace_by_thread(thread).id == theirs
    assert ana.get_entries(theirs) == [] and ana.entry_columns(theirs)["seq"] == []
    assert ana.entries_by_seq(theirs, [0]) == [] and ana.get_entry(theirs, 0) is None
    assert ana.get_user_traces(ben_id) == []
    assert [s.id for s in ana.list_traces().items] == [mine]
    assert ana.count_traces() == 1 and ana.count_traces(TraceFilter(user_id=ben_id)) == 0
    assert ana.count_traces_bounded() == (1, True)
    assert ana.filter_choices()["users"] == [ana_id]

    assert not ana.rename_trace(theirs, "x") and not ana.set_status(theirs, "failed")
    assert not ana.update_metadata(theirs, {"x": 1}) and not ana.update_trace(theirs, name="x")
    assert not ana.delete_trace(theirs)
    with pytest.raises(TraceNotFound):
        ana.append_entries(entries(1), trace_id=theirs)
    with pytest.raises(AccessDenied):
        ana.save_trace(ben_id, None, ids("t"), entries(1))
    with pytest.raises(AccessDenied):
        ana.append_entries(entries(1), thread_id=thread, user_id=ben_id)
    with pytest.raises(AccessDenied):
        ana.server_status()
    with pytest.raises(AccessDenied):
        ana.overview(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC), user_id=ben_id)
    assert (
        ana.set_trace_times([(theirs, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))])
        == 0
    )
    assert ana.delete_traces(TraceFilter(), allow_all=True) == 1

    # nothing of ben's changed
    after = db.get_summary(theirs)
    assert after.entry_count == 3 and after.status == "completed" and after.name is None
    assert after.created_at.year > 2020
    assert db.get_summary(mine) is None


def test_get_forks_lists_the_runs_forked_from_a_trace(db, entries, ids):
    original = db.save_trace("ana", None, ids("th"), entries(3), name="original")
    other = db.save_trace("ana", None, ids("th"), entries(1), name="other")
    first = db.save_trace("ana", None, ids("fork"), entries(2), name="first")
    db.update_metadata(first, {"forked_from": {"trace_id": original, "seq": 1}})
    second = db.save_trace("ben", None, ids("fork"), entries(1), name="second")
    db.update_metadata(second, {"forked_from": {"trace_id": original, "seq": 2}, "graph": {"nodes": []}})
    db.update_metadata(other, {"forked_from": {"trace_id": other, "seq": 0}})
    assert [s.id for s in db.get_forks(original)] == [second, first]
    assert [s.id for s in db.get_forks(original, limit=1)] == [second]
    assert db.get_forks(original)[1].metadata["forked_from"] == {"trace_id": original, "seq": 1}
    assert db.get_forks(first) == [] and db.get_forks("not-a-uuid") == []
    assert [s.id for s in db.as_user("ana").get_forks(original)] == [first]  # a user sees their own
    with pytest.raises(InvalidTraceData, match="limit"):
        db.get_forks(original, limit=0)


def test_the_forks_look_up_goes_through_its_index(db, db_url, ids) -> None:
    """The thread page asks for a trace's replays on every view: the look-up must not read
    every trace's metadata."""
    original = db.save_trace("ana", None, ids("th"), [{"node": "a"}])
    params = {"forked_from": original, "limit": 50, "scope": None, "abandon_after": 120}
    with psycopg.connect(db_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(sql.SQL("EXPLAIN ") + q.FORKS, params).fetchall()
    assert "automation_traces_forked_from_idx" in "\n".join(r[0] for r in plan)


def test_queries_run_without_jit(db_url):
    """JIT compilation made tracedb's costly queries slower (exact counts 1.2-2.4x at 200,000
    traces), and a statement timeout cannot fire while PostgreSQL compiles: a count allowed
    100 ms took 600 ms. A pooled session of either store runs without it, and so does every
    statement under a time limit, also in a session left as it was (behind a transaction
    pooler, where the store does not change session settings)."""
    import asyncio

    from tracedb import AsyncAutomationTraceDB, AutomationTraceDB
    from tracedb.core import Statement
    from tracedb.store import execute

    show = "SELECT current_setting('jit') AS jit"
    with AutomationTraceDB(db_url) as store, store.pool.connection() as conn:
        pooler = conn.prepare_threshold is None  # behind a transaction pooler: left alone
        if not pooler:
            assert conn.execute(show).fetchone()["jit"] == "off"

    async def async_setting() -> str:
        store = await AsyncAutomationTraceDB.open(db_url)
        try:
            async with store.pool.connection() as conn:
                return (await (await conn.execute(show)).fetchone())["jit"]
        finally:
            await store.close()

    if not pooler:
        assert asyncio.run(async_setting()) == "off"

    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("SET jit = on")
        limited = Statement(show, fetch="one", rows="tuple", timeout_ms=5_000)
        assert execute(conn, limited) == ("off",)
        assert conn.execute(show).fetchone() == ("on",)  # only for that statement


def test_a_statement_cut_short_by_its_time_limit_leaves_its_connection_usable(db_url):
    """A statement with a time limit (the page's bounded count, the overview) runs in a
    transaction of its own. When the limit is reached as a parallel count ends, PostgreSQL
    can cancel the ROLLBACK that ends that transaction too: the next statement of the
    operation (the count's estimate) then failed with "current transaction is aborted",
    about one cancellation in fifteen. Limits around the count's own time hit that moment."""
    import asyncio

    from psycopg.rows import dict_row

    from tracedb import aio, store
    from tracedb.core import Statement

    table = f"timed_rows_{uuid.uuid4().hex[:8]}"
    count = Statement(f"SELECT count(*) AS n FROM {table}", {}, fetch="one", prepare=False)
    # never prepared: also behind a transaction-mode pooler
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row, prepare_threshold=None) as conn:
        conn.execute(f"CREATE TABLE {table} AS SELECT g AS x FROM generate_series(1, 1000000) g")
        try:
            conn.execute(f"VACUUM ANALYZE {table}")
            # a parallel count, set on the table: a session setting would outlive the test
            # on a pooler's server connection and reach other clients
            conn.execute(f"ALTER TABLE {table} SET (parallel_workers = 2)")
            took_s = []
            for _ in range(3):  # the quickest of three: the first may pay for a cold connection
                started = time.perf_counter()
                store.execute(conn, count)
                took_s.append(time.perf_counter() - started)
            took = max(5, int(min(took_s) * 1000))
            limits = [took * k // 20 for k in range(8, 29)] * 5
            cancelled = 0
            for limit in limits:
                try:
                    store.execute(conn, dataclasses.replace(count, timeout_ms=limit))
                except psycopg.errors.QueryCanceled:
                    cancelled += 1
                assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}, limit

            async def run_async() -> None:
                async with await psycopg.AsyncConnection.connect(
                    db_url, autocommit=True, row_factory=dict_row, prepare_threshold=None
                ) as aconn:
                    for limit in limits:
                        try:
                            await aio.execute(aconn, dataclasses.replace(count, timeout_ms=limit))
                        except psycopg.errors.QueryCanceled:
                            pass
                        assert await (await aconn.execute("SELECT 1 AS one")).fetchone() == {"one": 1}, limit

            asyncio.run(run_async())
        finally:
            conn.execute(f"DROP TABLE {table}")
    assert cancelled > 0  # the limits reached the statement
