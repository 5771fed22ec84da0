"""Exact writes on a real PostgreSQL, both store classes: the seed-style upsert always
leaves exactly the list given; a batch sent twice is stored once; heartbeats, running nodes,
checkpoints, tokens and cost, drops; limits checked before the database; retention."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb
from store_support import STORES, in_threads

from tracedb import AutomationTraceDB, InvalidTraceData, TraceFilter, TraceNotFound, limits
from tracedb import queries as q
from tracedb.core import Statement, _append_params
from tracedb.jsonsafe import prepare_entries
from tracedb.store import execute


@pytest.fixture(scope="module", params=sorted(STORES))
def open_store(request: pytest.FixtureRequest):
    return STORES[request.param]


@pytest.fixture(scope="module")
def db(db_url, open_store):
    with open_store(db_url) as store:
        yield store


def entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"node": "tools", "kind": "tool", "name": name, "status": "ok", **extra}


def stored(db, trace_id: str) -> list[Any]:
    return db.load_trace_by_id(trace_id).trace_data


# -- the seed-style upsert: the stored trace is exactly the list given -------------------


def test_a_different_list_replaces_what_is_stored(db, ids):
    thread = ids("th")
    a, b, c = entry("a"), entry("b"), entry("c")
    tid = db.upsert_trace_by_thread("ana", None, thread, [a, b, c])
    d, e, f, g = entry("d"), entry("e"), entry("f"), entry("g")
    assert db.upsert_trace_by_thread("ana", None, thread, [d, e, f, g]) == tid
    assert stored(db, tid) == [d, e, f, g]
    assert db.upsert_trace_by_thread("ana", None, thread, [entry("x")]) == tid
    assert stored(db, tid) == [entry("x")]
    assert db.get_summary(tid).entry_count == 1
    assert db.upsert_trace_by_thread("ana", None, thread, []) == tid
    assert stored(db, tid) == [] and db.get_summary(tid).error_count == 0


def test_an_entry_changed_in_place_is_stored_changed(db, ids):
    thread = ids("th")
    trace = [entry("plan"), entry("call", status="running")]
    tid = db.upsert_trace_by_thread("ana", None, thread, trace)
    trace[-1]["status"] = "completed"  # the same dict, changed in place
    db.upsert_trace_by_thread("ana", None, thread, trace)
    assert stored(db, tid)[-1]["status"] == "completed"
    trace[-1] = {**trace[-1], "output": {"nested": [1, 2]}}  # a new dict in place of the old
    db.upsert_trace_by_thread("ana", None, thread, trace)
    trace[-1]["output"]["nested"].append(3)  # nested, in place
    db.upsert_trace_by_thread("ana", None, thread, trace)
    assert stored(db, tid)[-1]["output"] == {"nested": [1, 2, 3]}
    trace[0] = entry("plan", status="error", error="boom")  # an edit far from the end
    trace += [entry(f"more-{i}") for i in range(10)]
    db.upsert_trace_by_thread("ana", None, thread, trace)
    assert stored(db, tid) == trace
    assert db.get_summary(tid).error_count == 1


class Recording:
    """A store whose statements are recorded on their way to the (real) database."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.sent: list[Statement] = []

    def __enter__(self) -> list[Statement]:
        inner = getattr(self.store, "store", self.store)  # the async store behind the blocking one
        self._run = inner._run
        sent = self.sent

        def run(op: Any, transaction: bool) -> Any:
            def watched() -> Any:
                result = None
                try:
                    while True:
                        st = op.send(result)
                        sent.append(st)
                        result = yield st
                except StopIteration as stop:
                    return stop.value

            return self._run(watched(), transaction)

        inner._run = run
        return self.sent

    def __exit__(self, *exc: object) -> None:
        del getattr(self.store, "store", self.store).__dict__["_run"]


def test_a_growing_list_sends_only_its_new_entries_in_one_statement(db, ids):
    thread = ids("th")
    trace = [entry(f"e{i}") for i in range(5)]
    tid = db.upsert_trace_by_thread("ana", None, thread, trace)
    for i in range(5, 40):
        trace = [*trace, entry(f"e{i}")]  # a new list each time, as a chat loop makes
        with Recording(db) as sent:
            assert db.upsert_trace_by_thread("ana", None, thread, trace) == tid
        assert len(sent) == 1
        assert sent[0].params["offset"] == i and str(sent[0].params["entries"]).count('"d":') == 1
    assert stored(db, tid) == trace


def test_an_append_by_id_forgets_only_its_own_threads_list(db, ids, monkeypatch):
    """The store remembers the list it upserted per thread; an append by trace id forgets
    that thread's list (looked up by the trace, not by a pass over every thread), and what
    the store forgets to stay within its bounds leaves nothing behind."""
    sent = db._sent
    monkeypatch.setattr("tracedb.sent.MAX_THREADS", 4)
    threads = [ids(f"th{i}") for i in range(6)]
    tids = [db.upsert_trace_by_thread("ana", None, th, [entry("a")]) for th in threads]
    assert len(sent) == 4 and len(sent._by_trace) == 4  # the two oldest were dropped, both ways
    assert sent.get(("ana", threads[0])) is None and sent.get(("ana", threads[5])) is not None
    db.append_entries([entry("b")], trace_id=tids[5])
    assert sent.get(("ana", threads[5])) is None and sent.get(("ana", threads[4])) is not None
    assert len(sent) == 3 and len(sent._by_trace) == 3
    # the next upsert of that thread sends its whole list again and stays exact
    assert db.upsert_trace_by_thread("ana", None, threads[5], [entry("a"), entry("b"), entry("c")]) == tids[5]
    assert stored(db, tids[5]) == [entry("a"), entry("b"), entry("c")]
    sent.forget()
    assert len(sent) == 0 and not sent._by_trace


def test_a_long_list_from_a_process_that_never_saw_it_is_probed_not_resent(db, db_url, open_store, ids):
    thread = ids("th")
    trace = [entry(f"e{i}") for i in range(200)]
    tid = db.upsert_trace_by_thread("ana", None, thread, trace[:150])
    with open_store(db_url) as other, Recording(other) as sent:
        assert other.upsert_trace_by_thread("ana", None, thread, trace) == tid
    # a probe of the stored count and fingerprint, then only the 50 missing entries
    assert len(sent) == 2 and sent[1].params["offset"] == 150
    assert sent[1].params["entries"].count('"d":') == 50
    assert stored(db, tid) == trace
    # this store's memory is stale now (another store wrote): still exact
    trace2 = [*trace, entry("last")]
    assert db.upsert_trace_by_thread("ana", None, thread, trace2) == tid
    assert stored(db, tid) == trace2


def test_concurrent_upserts_of_different_lists_leave_one_of_them(db_url, open_store):
    thread = f"race-{uuid.uuid4().hex[:8]}"
    lists = {w: [entry(f"w{w}-{i}", w=w) for i in range(40)] for w in range(8)}
    barrier = threading.Barrier(8)

    def work(w: int) -> None:
        with open_store(db_url, min_size=1, max_size=1) as store:
            barrier.wait()
            for end in range(1, 41, 3):
                store.upsert_trace_by_thread("race", None, thread, lists[w][:end])
            store.upsert_trace_by_thread("race", None, thread, lists[w])

    assert not in_threads(work, 8)
    with open_store(db_url) as store:
        final = store.load_trace_by_thread(thread).trace_data
        assert store.count_traces(TraceFilter(thread_id=thread)) == 1
    assert final in list(lists.values())  # one writer's list, never a mix


def test_a_trace_without_fingerprint_is_replaced_once_then_extended(db, db_url, ids):
    """Rows written before fingerprints existed (or by SQL) have none: the first upsert
    replaces their entries with the list, and from then on the list extends them."""
    thread = ids("th")
    tid = db.upsert_trace_by_thread("ana", None, thread, [entry("old")])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE automation_traces SET fingerprint = NULL WHERE id = %s", (tid,))
    trace = [entry("a"), entry("b")]
    assert db.upsert_trace_by_thread("ana", None, thread, trace) == tid
    assert stored(db, tid) == trace
    trace.append(entry("c"))
    assert db.upsert_trace_by_thread("ana", None, thread, trace) == tid
    assert stored(db, tid) == trace


def test_update_trace_replaces_the_entries(db, ids):
    tid = db.upsert_trace_by_thread("ana", None, ids("th"), [entry("a"), entry("b")])
    assert db.update_trace(tid, trace_data=[entry("z")])
    assert stored(db, tid) == [entry("z")]
    assert db.update_trace(tid, name="n", trace_data=[entry("z"), entry("y")])
    t = db.load_trace_by_id(tid)
    assert t.trace_data == [entry("z"), entry("y")] and t.name == "n"


# -- exactly once ------------------------------------------------------------------------


def test_a_batch_sent_again_is_stored_once(db, ids):
    batch = str(uuid.uuid4())
    thread = ids("th")
    first = db.append_entries([entry("a"), entry("b")], thread_id=thread, user_id="ana", batch_id=batch)
    again = db.append_entries([entry("a"), entry("b")], thread_id=thread, user_id="ana", batch_id=batch)
    assert first.written == 2 and not first.duplicate
    assert again.duplicate and again.written == 0 and again.trace_id == first.trace_id
    db.append_entries([entry("c")], trace_id=first.trace_id, batch_id=str(uuid.uuid4()))
    assert db.append_entries([entry("a")], trace_id=first.trace_id, batch_id=batch).duplicate
    assert [e["name"] for e in stored(db, first.trace_id)] == ["a", "b", "c"]
    with pytest.raises(InvalidTraceData, match="batch_id"):
        db.append_entries([entry("x")], trace_id=first.trace_id, batch_id="not-a-uuid")


# -- a running trace: heartbeat, running nodes, abandoned ---------------------------------


def test_running_nodes_are_read_as_running_steps_until_they_end(db, ids):
    started = datetime.now(UTC).isoformat()
    r = db.append_entries(
        [entry("plan")],
        thread_id=ids("th"),
        user_id="ana",
        status="running",
        running_start={"task-1": {"node": "model", "started_at": started, "checkpoint_id": "cp-1"}},
    )
    rows = db.get_entries(r.trace_id)
    assert [(row["seq"], row["node"], row["status"]) for row in rows] == [
        (0, "tools", "ok"),
        (None, "model", "running"),
    ]
    assert rows[1]["checkpoint_id"] == "cp-1" and rows[1]["data"]["task_id"] == "task-1"
    cols = db.entry_columns(r.trace_id)
    assert cols["status"] == ["ok", "running"] and cols["seq"] == [0, None]
    assert [m["node"] for m in db.get_summary(r.trace_id).running] == ["model"]
    db.append_entries([entry("model out")], trace_id=r.trace_id, running_end=["task-1"])
    assert [row["status"] for row in db.get_entries(r.trace_id)] == ["ok", "ok"]
    db.append_entries([], trace_id=r.trace_id, running_start={"t2": {"node": "x", "started_at": started}})
    db.append_entries([], trace_id=r.trace_id, status="completed")
    assert db.get_summary(r.trace_id).running == [] and len(db.get_entries(r.trace_id)) == 2


def test_a_silent_running_trace_reads_as_abandoned(db_url, open_store, ids, monkeypatch):
    monkeypatch.setenv("TRACEDB_ABANDON_AFTER", "60")
    with open_store(db_url) as db:
        user = ids("u")
        live = db.append_entries([entry("a")], thread_id=ids("th"), user_id=user, status="running")
        dead = db.append_entries([entry("a")], thread_id=ids("th"), user_id=user, status="running")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE automation_traces SET heartbeat_at = now() - interval '61 seconds' WHERE id = %s",
                (dead.trace_id,),
            )
        assert db.get_summary(live.trace_id).status == "running"
        assert db.get_summary(dead.trace_id).status == "abandoned"

        def ids_with(status: str) -> set[str]:
            return {s.id for s in db.list_traces(TraceFilter(user_id=user, status=status)).items}

        assert ids_with("running") == {live.trace_id} and ids_with("abandoned") == {dead.trace_id}
        assert db.count_traces(TraceFilter(user_id=user, status=("running", "abandoned"))) == 2
        view = db.overview(
            datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1), user
        )
        assert view.totals["running"] == 1 and view.totals["abandoned"] == 1
        # the writer comes back: a heartbeat (or any append) makes it running again
        assert db.touch(dead.trace_id)
        assert db.get_summary(dead.trace_id).status == "running"
        assert not db.touch(str(uuid.uuid4()))
        with pytest.raises(InvalidTraceData, match="status"):
            db.set_status(live.trace_id, "abandoned")


def test_checkpoints_drops_and_turn_columns(db, ids):
    r = db.append_entries(
        [entry("a"), entry("b")], thread_id=ids("th"), user_id="ana", checkpoint_ids=["c1", None], dropped=3
    )
    rows = db.get_entries(r.trace_id)
    assert [row["checkpoint_id"] for row in rows] == ["c1", None]
    assert rows[0]["data"] == entry("a")  # the entry's own data stays as written
    db.append_entries([entry("gap", kind="gap", dropped=2)], trace_id=r.trace_id, dropped=2)
    assert db.get_summary(r.trace_id).dropped_count == 5
    with pytest.raises(InvalidTraceData, match="checkpoint_ids"):
        db.append_entries([entry("a")], trace_id=r.trace_id, checkpoint_ids=["a", "b"])
    with pytest.raises(InvalidTraceData, match="dropped"):
        db.append_entries([], trace_id=r.trace_id, dropped=-1)


# -- tokens and cost --------------------------------------------------------------------


def model_step(model: str, i: int, o: int, cached: int = 0) -> dict[str, Any]:
    usage = {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
    if cached:
        usage["input_token_details"] = {"cache_read": cached}
    return {"node": "model", "kind": "llm", "name": model, "output": {"content": "hi", "usage": usage}}


def test_token_totals_and_cost_are_kept_by_the_append(db, ids):
    r = db.append_entries(
        [model_step("openai:gpt-4o-mini", 1000, 200, cached=400), entry("tool")],
        thread_id=ids("th"),
        user_id="ana",
    )
    db.append_entries([model_step("gpt-4o-mini-2024-07-18", 500, 100)], trace_id=r.trace_id)
    s = db.get_summary(r.trace_id)
    assert (s.input_tokens, s.output_tokens, s.total_tokens) == (1500, 300, 1800)
    # (600 fresh * 0.15 + 400 cached * 0.075 + 200 * 0.60) + (500 * 0.15 + 100 * 0.60), per million
    assert s.cost_usd == pytest.approx((90 + 30 + 120 + 75 + 60) / 1e6)
    rows = db.get_entries(r.trace_id)
    assert [row["model"] for row in rows] == ["openai:gpt-4o-mini", None, "gpt-4o-mini-2024-07-18"]
    assert [row["total_tokens"] for row in rows] == [1200, None, 600]
    plain = db.save_trace("ana", None, ids("th"), [entry("x")])
    s = db.get_summary(plain)
    assert s.total_tokens is None and s.cost_usd is None  # unknown, not zero
    unknown = db.save_trace("ana", None, ids("th"), [model_step("some-private-model", 10, 5)])
    s = db.get_summary(unknown)
    assert s.total_tokens == 15 and s.cost_usd is None


def test_a_price_table_of_ones_own(db, ids, tmp_path, monkeypatch):
    from tracedb import usage

    table = tmp_path / "prices.json"
    table.write_text('{"house-model": {"input": 1.0, "output": 2.0}}')
    monkeypatch.setenv(usage.PRICES_ENV, str(table))
    tid = db.save_trace("ana", None, ids("th"), [model_step("house-model", 1_000_000, 500_000)])
    assert db.get_summary(tid).cost_usd == pytest.approx(2.0)
    table.write_text("not json")
    monkeypatch.setenv(usage.PRICES_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(InvalidTraceData, match="price table"):
        db.save_trace("ana", None, ids("th"), [model_step("house-model", 1, 1)])


# -- limits are input rules -------------------------------------------------------------


def test_limits_are_checked_in_bytes_before_the_database(db, ids):
    astral = "\U0001f600" * 300  # 300 characters, 1,200 bytes
    for field in ("user_id", "thread_id", "name", "provider_id"):
        kwargs = {
            "user_id": "ana",
            "provider_id": None,
            "thread_id": ids("th"),
            "trace_data": [],
            "name": None,
        }
        kwargs[field] = astral
        with pytest.raises(InvalidTraceData, match=f"{field} is 1,200 bytes"):
            db.save_trace(**kwargs)
    # a node name of 3,000 CJK characters is kept whole in the entry and cut in the columns
    long_node = "\u6f22" * 3000
    tid = db.save_trace("ana", None, ids("th"), [{"node": long_node, "kind": "x" * 5000}])
    row = db.get_entries(tid)[0]
    assert row["data"]["node"] == long_node and len(row["node"]) == 200 and len(row["kind"]) == 200
    assert db.get_summary(tid).nodes == ["\u6f22" * 200]


# -- deleting: guards and retention ------------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [
        TraceFilter(contains={}),
        TraceFilter(text="-zzzz"),
        TraceFilter(text="-a or b"),
        TraceFilter(name="  "),
    ],
)
def test_a_filter_that_can_match_everything_needs_allow_all(db, flt):
    with pytest.raises(InvalidTraceData, match="allow_all"):
        db.delete_traces(flt)


def test_prune_deletes_old_traces_and_keeps_the_newest(db, ids):
    user = ids("prune")
    now = datetime.now(UTC)
    made = []
    for _ in range(6):
        made.append(db.save_trace(user, None, ids("th"), [entry("a")]))
    db.set_status(made[4], "failed")  # (before the times: a status change moves updated_at)
    times = [
        (tid, now - timedelta(days=40 + i), now - timedelta(days=40 + i)) for i, tid in enumerate(made[:5])
    ]
    db.set_trace_times(times)
    mine = db.as_user(user)
    assert mine.prune(timedelta(days=30), dry_run=True) == 5
    assert mine.prune(timedelta(days=30), status="failed") == 1
    assert db.get_summary(made[4]) is None
    # keep the 2 most recent of the user: made[5] (new) and made[0] (newest of the old ones)
    assert mine.prune(timedelta(days=30), keep_last=2) == 3
    assert {s.id for s in mine.list_traces().items} == {made[0], made[5]}
    with pytest.raises(InvalidTraceData, match="older_than"):
        mine.prune(timedelta(0))


# -- search behind the writes -----------------------------------------------------------


def test_entries_are_found_before_and_after_they_are_indexed(db, db_url, ids):
    first, second = f"zq{uuid.uuid4().hex[:10]}", f"zq{uuid.uuid4().hex[:10]}"
    r = db.append_entries([entry("a", output=f"one {first}")], thread_id=ids("th"), user_id="ana")
    db.append_entries([entry("b", output=f"two {second}")], trace_id=r.trace_id)  # not indexed yet
    with psycopg.connect(db_url) as conn:
        pending = conn.execute(
            "SELECT index_pending, indexed_count FROM automation_traces WHERE id = %s", (r.trace_id,)
        ).fetchone()
    assert pending[0] and pending[1] < 2
    assert [s.id for s in db.list_traces(TraceFilter(text=second)).items] == [r.trace_id]
    assert db.count_traces(TraceFilter(text=f"{first} {second}")) == 0  # not in one entry
    # the store's indexer catches up behind the writes, within a few seconds
    deadline = time.monotonic() + 10
    # never prepared: the suite also runs behind a transaction-mode pooler
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        while conn.execute(
            "SELECT index_pending FROM automation_traces WHERE id = %s", (r.trace_id,)
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the background indexer did not index the trace"
            time.sleep(0.1)
    assert [s.id for s in db.list_traces(TraceFilter(text=second)).items] == [r.trace_id]
    assert db.count_traces(TraceFilter(text=f'"two {second}"')) == 1
    assert db.count_traces(TraceFilter(text=f'"{second} two"')) == 0


def test_words_must_be_in_one_entry_and_so_must_containment(db, ids):
    user = ids("u")
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    split = db.save_trace(user, None, ids("th"), [entry("x", output=a), entry("y", output=b)])
    together = db.save_trace(user, None, ids("th"), [entry("x", output=f"{a} {b}")])
    mine = TraceFilter(user_id=user, text=f"{a} {b}")
    assert [s.id for s in db.list_traces(mine).items] == [together]
    assert db.count_traces(TraceFilter(user_id=user, text=f"{a} or {b}")) == 2
    assert db.count_traces(TraceFilter(user_id=user, contains={"name": "x", "output": b})) == 0
    assert db.count_traces(TraceFilter(user_id=user, contains={"name": "y", "output": b})) == 1
    assert split


def test_an_entry_too_wordy_for_a_search_vector_breaks_no_search(db_url, open_store, ids):
    with open_store(db_url, max_entry_bytes=4 * 1024 * 1024) as db:
        user = ids("u")
        words = " ".join(f"w{i:x}z" for i in range(150_000))  # ~1 MB, 150,000 distinct words
        big = db.save_trace(user, None, ids("th"), [{"node": "tools", "output": words}])
        other = db.save_trace(user, None, ids("th"), [{"node": "tools", "output": "plain words"}])
        assert db.count_traces(TraceFilter(user_id=user, text="plain")) == 1
        assert [s.id for s in db.list_traces(TraceFilter(user_id=user, text="w1f3z")).items] == [big]
        assert db.count_traces(TraceFilter(user_id=user, text="nothere")) == 0
        assert other


def test_unknown_trace_for_an_append(db):
    with pytest.raises(TraceNotFound):
        db.append_entries([entry("a")], trace_id=str(uuid.uuid4()))


def test_traces_left_pending_by_a_writer_that_died_are_indexed(db, db_url, ids):
    word = f"zq{uuid.uuid4().hex[:10]}"
    payload = json.dumps([{"d": entry("a", output=word), "n": "tools"}])
    with psycopg.connect(db_url, autocommit=True) as conn:
        # a writer that appended and died before its indexer ran: no store here knows it
        tid = conn.execute(
            "SELECT trace_id FROM tracedb_append(NULL, 'ana', NULL, %s, NULL, %s::jsonb, NULL, NULL, NULL)",
            (ids("th"), payload),
        ).fetchone()[0]

        def state() -> tuple[bool, int]:
            return conn.execute(
                "SELECT index_pending, (SELECT count(*) FROM automation_trace_search s WHERE s.trace_id = t.id)"
                " FROM automation_traces t WHERE id = %s",
                (tid,),
            ).fetchone()

        assert state() == (True, 0)
        assert db.count_traces(TraceFilter(text=word)) == 1  # found through the pending path
        assert db.index_pending() >= 1
        assert state() == (False, 1)
    assert db.count_traces(TraceFilter(text=word)) == 1


def _index_pending_waits_for(db: Any, conn: psycopg.Connection, other: psycopg.Connection, tid: str) -> None:
    """``db.index_pending()`` while ``other`` holds what keeps indexers from the pending trace
    ``tid``: the call waits instead of returning; once ``other`` rolls back, it indexes the
    trace before it returns."""
    done = threading.Event()
    result: list[Any] = []
    worker = threading.Thread(target=lambda: (result.append(db.index_pending()), done.set()))
    worker.start()
    try:
        assert not done.wait(0.5)  # waits for what ``other`` holds
    finally:
        other.rollback()
    worker.join(10)
    assert done.is_set() and result[0] >= 1
    pending = conn.execute("SELECT index_pending FROM automation_traces WHERE id = %s", (tid,)).fetchone()
    assert pending == (False,)


def test_indexing_what_is_pending_waits_for_a_trace_another_indexer_holds(db, db_url, ids):
    """``index_pending`` indexes what was pending when it was called, also a trace a store's
    indexer was indexing at that moment (indexers skip a trace another one holds): it waits
    for that indexer, then indexes what is left. It used to return with the trace pending."""
    word = f"zh{uuid.uuid4().hex[:10]}"
    with (
        psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn,
        psycopg.connect(db_url, prepare_threshold=None) as other,
    ):
        tid = _pending_trace(conn, ids("th"), [word])
        # another indexer at work on the trace: it holds the trace's indexing lock
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('tracedb.index:' || %s, 0))", (tid,))
        _index_pending_waits_for(db, conn, other, tid)  # which stops without indexing it


def test_indexing_what_is_pending_waits_out_a_transaction_deleting_a_trace(db, db_url, ids):
    """Indexers skip a trace whose row a transaction holds for deleting. ``index_pending``
    waits for that transaction instead of returning with the trace pending (or calling
    again and again): when it rolls back, the trace is indexed before the call returns."""
    word = f"zd{uuid.uuid4().hex[:10]}"
    with (
        psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn,
        psycopg.connect(db_url, prepare_threshold=None) as other,
    ):
        tid = _pending_trace(conn, ids("th"), [word])
        other.execute("DELETE FROM automation_traces WHERE id = %s", (tid,))
        _index_pending_waits_for(db, conn, other, tid)  # which rolls back: the trace stays
    assert db.count_traces(TraceFilter(text=word)) == 1


def test_indexing_what_is_pending_indexes_a_trace_another_indexer_let_go_of_half_done(db_url, ids):
    """An indexer works a call of entries at a time and lets go of a trace between two calls.
    When that happened while ``index_pending`` was between its statements (the trace
    skipped as held, then found not held), it returned with the trace still pending. The
    operation's statements run here one by one, the other indexer letting go in between."""
    word = f"zh{uuid.uuid4().hex[:10]}"
    with (
        AutomationTraceDB(db_url) as db,
        psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn,
        psycopg.connect(db_url, prepare_threshold=None) as other,
    ):
        tid = _pending_trace(conn, ids("th"), [word])
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('tracedb.index:' || %s, 0))", (tid,))
        conn.row_factory = psycopg.rows.dict_row
        op = AutomationTraceDB.index_pending.fn(db, 1000)  # its statements, run below
        st = next(op)
        skipped = False
        try:
            while True:
                result = execute(conn, st)
                if st.query == q.INDEX_TRACES and not skipped:
                    skipped = True  # the first pass skipped the held trace
                    other.rollback()  # the other indexer ends its call and lets go
                st = op.send(result)
        except StopIteration as stop:
            assert stop.value >= 1
        pending = conn.execute("SELECT index_pending FROM automation_traces WHERE id = %s", (tid,)).fetchone()
        assert pending == {"index_pending": False}
        assert db.count_traces(TraceFilter(text=word)) == 1


def test_one_indexer_round_indexes_all_a_trace_got_since_the_last(db_url, ids):
    """A call of tracedb_index_traces indexes at most 256 entries of a trace; a round calls
    again while calls do work. With one call a round, a trace written faster than 256 entries
    a second fell ever further behind. The last block, while incomplete, waits until the
    trace is no longer being written (it was rewritten at every round as it filled)."""

    words = [f"zr{uuid.uuid4().hex[:10]}" for _ in range(700)]
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        tid = _pending_trace(conn, ids("th"), words)
        indexer = _indexer(db_url, 30)
        try:
            indexer.run_once()  # nothing known to it yet: indexes nothing
            assert _index_state(conn, tid)[1] == 0
            indexer.written(tid)
            indexer.run_once()
            row = _index_state(conn, tid)
            # every complete block; the last one (28 entries) waits while the trace is written
            assert row == (True, 672)
            indexer.run_once()
            assert _index_state(conn, tid)[1] == 672
            _quiet(conn, tid)  # no longer written: its last block too
            indexer.run_once()
            row = _index_state(conn, tid)
            assert row == (False, 700)
            hits = _search_rows(conn, tid, words[-1])
            assert hits == 1
        finally:
            indexer.close()


def test_a_trace_left_pending_by_a_writer_gone_is_indexed_in_turns(db, db_url, ids, monkeypatch):
    """An indexer takes the traces any writer left pending into its rounds, a call of 256
    entries at a time like the traces of its own store (it used to index all of their
    entries in one call, holding up its own traces for as long), and all of them get
    indexed."""
    from tracedb import indexer as indexing

    monkeypatch.setattr(indexing, "STALE_LIMIT", 1)  # the oldest only: this one
    words = [f"zs{uuid.uuid4().hex[:10]}" for _ in range(600)]
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        tid = _pending_trace(conn, ids("th"), words)
        _quiet(conn, tid)  # written long ago: the oldest trace left pending
        indexer = _indexer(db_url, 0.001)
        try:
            indexer.run_once()  # finds it; the time limit allows one call
            assert (_index_state(conn, tid)[1], indexer.behind, tid in indexer._ids) == (256, True, True)
            indexer.interval = 30
            indexer.run_once()
            assert (_index_state(conn, tid)[1], tid in indexer._ids) == (600, False)
            hits = _search_rows(conn, tid, words[-1])
            assert hits == 1
        finally:
            indexer.close()


def test_an_indexer_cut_short_by_its_time_limit_goes_on_without_a_pause(db_url, ids):
    """A round that reaches its time limit with entries left says so (``behind``), keeps the
    traces for the next round, and the loop starts that round at once instead of waiting an
    interval; a round that finishes its work is not behind."""

    words = [f"zb{uuid.uuid4().hex[:10]}" for _ in range(600)]
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        tid = _pending_trace(conn, ids("th"), words)
        # a time limit shorter than one call: each round makes one call of 256 entries
        indexer = _indexer(db_url, 0.001)
        _quiet(conn, tid)  # indexed to its last entry
        indexer._ids.add(tid)  # as written() would, without starting its thread
        indexer._last_stale = time.monotonic()  # no traces of other tests' in its rounds
        try:
            indexer.run_once()
            assert (_index_state(conn, tid)[1], indexer.behind, indexer._ids) == (256, True, {tid})
            indexer.run_once()
            indexer.run_once()
            assert (_index_state(conn, tid)[1], indexer.behind, indexer._ids) == (600, False, set())
        finally:
            indexer.close()


def test_a_page_is_the_same_when_it_starts_from_the_search_index(db, db_url, ids):
    """A search for several terms in one entry either walks the newest traces, opening each
    one's search rows, or (when the planner expects few candidate blocks) gathers the
    candidates from the search index first. Both give the same pages: words in one entry
    or apart, a phrase, key/value pairs, a trace not indexed yet, a block too big to index."""
    from psycopg.rows import dict_row

    from tracedb import filters
    from tracedb.rows import page_from_rows

    user = ids("u")
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    for i in range(7):  # both words in one entry
        db.append_entries([entry("x", output=f"{a} {b} n{i}")], thread_id=ids("th"), user_id=user)
    for _ in range(3):  # apart: no match for "a b"
        db.append_entries([entry("x", output=a), entry("y", output=b)], thread_id=ids("th"), user_id=user)
    for _ in range(4):  # reversed, with key/value pairs
        db.append_entries(
            [entry("x", output=f"{b} {a}", tool="grep", status="error")], thread_id=ids("th"), user_id=user
        )
    big = "x" * (limits.SEARCH_ENTRY_BYTES + 10)
    db.append_entries([entry("z", output=f"{a} {b} {big}")], thread_id=ids("th"), user_id=user)
    wanted = [
        TraceFilter(text=f"{a} {b}"),
        TraceFilter(text=f'"{a} {b}"'),
        TraceFilter(text=f'"{b} {a}"', user_id=user),
        TraceFilter(text=f"{a} {b} -n3"),
        TraceFilter(contains={"tool": "grep", "status": "error"}, user_id=user),
    ]
    # wait for the store's indexer, then add a trace no indexer knows (pending)
    deadline = time.monotonic() + 10
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None, row_factory=dict_row) as conn:
        pending = "SELECT count(*) AS n FROM automation_traces WHERE index_pending AND user_id = %s"
        while conn.execute(pending, (user,)).fetchone()["n"]:
            assert time.monotonic() < deadline, "the background indexer did not index the traces"
            time.sleep(0.1)
        with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as plain:
            _pending_trace(plain, ids("th"), [f"{a} {b} pending"], user=user)
        for flt in wanted:
            pages: dict[bool, list[list[str]]] = {}
            for first in (False, True):
                pages[first], cursor = [], None
                while True:
                    query, params = filters.list_query(flt, 3, cursor, index_first=first)
                    page = page_from_rows(conn.execute(query, params).fetchall(), 3)
                    pages[first].append([t.id for t in page.items])
                    cursor = page.next_cursor
                    if cursor is None:
                        break
            assert pages[True] == pages[False], flt
            assert sum(len(p) for p in pages[False]) == len(db.list_traces(flt, limit=100).items) > 0, flt
    # in one entry, in either order: 7, 4 reversed, the big one and the pending one
    assert len(db.list_traces(TraceFilter(text=f"{a} {b}"), limit=100).items) == 13
    assert len(db.list_traces(TraceFilter(text=f'"{a} {b}"'), limit=100).items) == 9
    grep_errors = TraceFilter(contains={"tool": "grep", "status": "error"}, user_id=user)
    assert len(db.list_traces(grep_errors, limit=100).items) == 4


def test_a_page_from_the_search_index_reads_only_its_own_trace_rows(db, db_url, ids):
    """A page that starts from the search index orders every candidate trace, thousands
    at a million traces: it takes their order from an index alone and reads whole only the
    rows of the page."""
    from tracedb import filters

    user = ids("u")
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    made = [
        db.append_entries([entry("x", output=f"{a} {b} n{i}")], thread_id=ids("th"), user_id=user).trace_id
        for i in range(12)
    ]
    db.index_pending()
    flt = TraceFilter(text=f"{a} {b}", user_id=None)
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("VACUUM automation_traces")  # pages all visible, as autovacuum leaves them
        visible, pages = conn.execute(
            "SELECT relallvisible, relpages FROM pg_class WHERE oid = 'automation_traces'::regclass"
        ).fetchone()
        with conn.transaction():
            # whatever the size of this database, the plan of a large one
            conn.execute("SET LOCAL enable_seqscan = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
            query, params = filters.list_query(flt, 5, None, index_first=True)
            got = [str(r[0]) for r in conn.execute(query, params).fetchall()]
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + query, params
                ).fetchall()
            )
    assert got == [str(t) for t in reversed(made)][:6]
    if visible < pages:  # an old snapshot (a transaction left open, a replica's feedback)
        pytest.skip(f"VACUUM left {pages - visible} of {pages} pages not all visible: no index-only plan")
    # every candidate ordered from the index (an entry too big to keep its words, written
    # by another test, is a candidate of every search)
    ordered = re.search(
        r"Index Only Scan using automation_traces_order_idx on automation_traces \w+ \(actual rows=([\d.]+) loops=1\)"
        r"\n\s+Index Cond: \(id = ANY",
        plan,
    )
    assert ordered and float(ordered[1]) >= 12, plan
    # the rows read whole: the page's, one by one (six: the page and the row telling there is more)
    whole = re.findall(
        r"Index Scan using \w+ on automation_traces t\w* \(actual rows=([\d.]+) loops=(\d+)\)", plan
    )
    assert whole and all(float(rows) * int(loops) <= 6 for rows, loops in whole), plan


def test_the_index_first_decision_reads_whole_estimates_also_from_parallel_plans(db, db_url, ids):
    """Whether a page starts from the search index compares two planner estimates (the
    candidate rows, all rows); a plan that runs in parallel must give the same."""
    from psycopg.rows import dict_row

    from tracedb import filters

    user = ids("u")
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    for i in range(40):
        db.append_entries([entry("x", output=f"{a} {b} n{i}")], thread_id=ids("th"), user_id=user)
    db.index_pending()
    estimate = filters.candidate_estimate(TraceFilter(text=f"{a} {b}"))
    assert estimate is not None and estimate.every == filters.ALL_ENTRY_ROWS_QUERY
    serial = ["max_parallel_workers_per_gather = 0"]
    forced = ["parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0"]
    decisions, totals = [], []
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None, row_factory=dict_row) as conn:
        conn.execute("ANALYZE automation_trace_entry_words")
        for settings in (serial, forced):
            with conn.transaction():  # SET LOCAL: also behind a transaction-mode pooler
                for setting in settings:
                    conn.execute(f"SET LOCAL {setting}")
                every = conn.execute(estimate.every).fetchone()
                candidates = conn.execute(estimate.query, estimate.params).fetchone()
                decisions.append(estimate.starts_from_index(candidates, every))
                totals.append(filters.estimate_from_plan(every))
                plan = every["QUERY PLAN"][0]["Plan"]
    assert plan["Node Type"] == "Gather"  # the forced plan ran in parallel
    assert decisions[0] == decisions[1] and totals[0] == totals[1] >= 40


def test_a_confirmation_reads_only_the_entries_its_blocks_point_to(db, db_url, ids):
    """A containment is confirmed, in an indexed trace, only against the entries where its
    block holds every one of its lexemes (or every entry of a block that is not indexed
    whole); a phrase, on the stored words of the trace's entries: the same traces are found
    as by reading every entry."""
    from tracedb import filters

    user = ids("u")
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    long = [entry(f"s{i}", output="filler") for i in range(70)]  # three blocks
    long[5] = entry("both", output=f"{b} {a}")  # both words, not the phrase
    long[40] = entry("phrase", output=f"x {a} {b} y")
    long[66] = entry("one", output=a)
    long[10] = entry("grep", tool="grep")
    long[50] = entry("grep", tool="grep", status="error")
    first = db.save_trace(user, None, ids("th"), long)
    apart = [entry(f"s{i}", output="filler") for i in range(40)]
    apart[33] = entry("both", output=f"{b} z {a}")
    second = db.save_trace(user, None, ids("th"), apart)
    big = entry("big", output=f"{a} {b} " + "x" * (limits.SEARCH_ENTRY_BYTES + 10))
    third = db.save_trace(user, None, ids("th"), [entry("small"), big])  # a block not whole
    db.index_pending()
    with psycopg.connect(db_url, prepare_threshold=None) as conn:  # never prepared: also run behind a pooler

        def candidates(tid: str, lexemes: list[str]) -> list[int]:
            rows = conn.execute("SELECT tracedb_candidate_seqs(%s, %s::text[])", (tid, lexemes)).fetchall()
            # the array the previous version reads is made from the same rows
            (array,) = conn.execute(
                "SELECT tracedb_block_candidates(%s, %s::text[])", (tid, lexemes)
            ).fetchone()
            assert sorted(array) == sorted(r[0] for r in rows)
            return sorted(r[0] for r in rows)

        assert candidates(first, sorted([a, b])) == [5, 40]
        assert candidates(second, sorted([a, b])) == [33]
        assert candidates(third, sorted([a, b])) == list(range(32))
        grep = TraceFilter(contains={"tool": "grep", "status": "error"}, user_id=user)
        query, params = filters.list_query(grep, 10, None)
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall())
        # the seq numbers come from the trace's search rows (the function is inlined, not
        # called per trace), and each entry on the list is read by its key
        assert "tracedb_candidate_seqs" not in plan and "automation_trace_search s" in plan
        assert re.search(r"\(seq = \(+s(_\d+)?\.block \*", plan), plan
        # the first entry of a long trace holds the pair: the confirmation stops there, after
        # one search row of three and one entry
        early = [entry("first", tool="grep")] + [entry(f"s{i}", tool="grep") for i in range(69)]
        early_user = ids("early")
        db.save_trace(early_user, None, ids("th"), early)
        db.index_pending()
        only = TraceFilter(contains={"tool": "grep"}, user_id=early_user)
        query, params = filters.list_query(only, 10, None)
        analyzed = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + query, params
        ).fetchall()
        lines = [r[0] for r in analyzed]
        blocks = [line for line in lines if re.search(r" on automation_trace_search s_\d+ ", line)]
        entries = [lines[i - 1] for i, line in enumerate(lines) if "AND (seq = " in line]
        assert len(blocks) == len(entries) == 1, "\n".join(lines)
        one = re.compile(r"rows=1(\.0+)? loops=1\)")  # PostgreSQL 18 prints rows=1.00
        assert one.search(blocks[0]) and one.search(entries[0]), "\n".join(lines)
    found = {
        f'"{a} {b}"': {first, third},
        f'"{b} {a}"': {first},
        f"{a} {b} -filler": {first, second, third},
        f'"{a}"': {first, second, third},
    }
    for text, expected in found.items():
        flt = TraceFilter(text=text, user_id=user)
        assert {s.id for s in db.list_traces(flt).items} == expected, text
        assert db.count_traces(flt) == len(expected), text
    errors = TraceFilter(contains={"tool": "grep", "status": "error"}, user_id=user)
    assert [s.id for s in db.list_traces(errors).items] == [first]
    assert db.count_traces(TraceFilter(contains={"tool": "grep", "status": "ok"}, user_id=user)) == 1


def test_an_entry_holding_a_phrase_holds_the_keys_of_its_pairs(db_url):
    """A phrase's candidates are the entries holding the keys of its pairs of adjacent
    words: every entry whose stored words match the phrase must hold them, or a search would
    miss it. Checked on the server over awkward texts: punctuation, a word repeated, words
    in several strings of one entry, hyphenated words, numbers, and a text long enough that
    its positions are clamped (past 16,383 words)."""
    from tracedb.filters import phrase_pairs

    AutomationTraceDB(db_url).close()  # the schema, migrated
    long_text = " ".join(f"w{i % 50}" for i in range(17_000)) + " tail end"
    docs = [
        {"output": "The cat sat on the mat, the cat!"},
        {"output": "cat cat cat", "tool": "sat-on mat"},
        {"a": "first part", "b": "second part", "c": ["third", "part two"]},
        {"output": "error 404: not found; retry 3 times"},
        {"output": long_text},
    ]
    words = sorted({w for d in docs[:-1] for w in re.findall(r"[a-z0-9]+", json.dumps(d).lower())})
    words += ["w0", "w1", "w2", "w49", "tail", "end"]
    phrases = [f'"{a} {b}"' for a in words for b in words] + ['"the cat sat"', '"w49 tail end"', '"w1 w2 w3"']
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        checked = 0
        for doc in docs:
            # one transaction per document: behind a transaction pooler, one server session
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE doc (words tsvector, pairs integer[]) ON COMMIT DROP")
                conn.execute(
                    "INSERT INTO doc SELECT v, tracedb_word_pairs(v)"
                    " FROM jsonb_to_tsvector('simple', %s, '[\"string\"]') AS v",
                    (Jsonb(doc),),
                )
                for phrase in phrases:
                    pairs = phrase_pairs(phrase)
                    assert pairs, phrase
                    matches, holds = conn.execute(
                        "SELECT words @@ websearch_to_tsquery('simple', %s),"
                        " pairs @> tracedb_phrase_pairs(%s::text[]) FROM doc",
                        (phrase, pairs),
                    ).fetchone()
                    assert holds or not matches, (doc, phrase)
                    checked += matches
        assert checked >= 20  # the check saw phrases that match, not only ones that do not
        # and the keys tell phrases apart: a pair not side by side is not held
        assert not conn.execute(
            "SELECT tracedb_word_pairs(to_tsvector('simple', 'the cat sat'))"
            " @> tracedb_phrase_pairs(ARRAY['cat the'])"
        ).fetchone()[0]


def test_searches_that_do_not_need_every_phrase_find_what_the_parser_finds(db, db_url, ids):
    """A phrase's pairs may only be required when the search needs the phrase. PostgreSQL
    reads operators the words-and-quotes view misses: a lone "-" negates the phrase after
    it, "or" next to a quote or after "|" is OR, and dropping a negated term that holds a
    quote re-pairs the quotes after it. Each search finds exactly the traces whose entries
    PostgreSQL's own parse of it matches."""
    user = ids("u")
    x = f"x{uuid.uuid4().hex[:6]}"  # one word of this test in every entry, to scope them
    outputs = [f"{x} c x y", f"{x} a b", f"{x} x y", f"{x} b c", f"{x} a", f"{x} q r s z t", f"{x} p q r s t"]
    traces = {db.save_trace(user, None, ids("th"), [entry("e", output=o)]): o for o in outputs}
    db.index_pending()
    texts = [
        f'{x} c - "a b"',
        f'{x} "a b"- "c d"',
        f'{x} "x y"or"b c"',
        f'{x} a or( "b c"',
        f'{x} a |or "b c"',
        f'{x} -p"q r" s t"',
        f'{x} "a b"',
    ]
    with psycopg.connect(db_url, prepare_threshold=None) as conn:
        for text in texts:
            want = {
                tid
                for tid, output in traces.items()
                if conn.execute(
                    "SELECT jsonb_to_tsvector('simple', %s, '[\"string\"]') @@ websearch_to_tsquery('simple', %s)",
                    (Jsonb(entry("e", output=output)), text),
                ).fetchone()[0]
            }
            flt = TraceFilter(text=text, user_id=user)
            assert {s.id for s in db.list_traces(flt).items} == want, text
            assert db.count_traces(flt) == len(want), text
            assert want or text.endswith('"a b"- "c d"'), text  # the parse finds something


def test_a_phrase_finds_its_candidates_by_the_pairs_of_its_words(db, db_url, ids):
    """A phrase search gathers its candidate entries through the index of word pairs, not
    through every entry holding its words; a search with OR, or of words alone, does not."""
    from tracedb import filters

    user = ids("u")
    a, b = (f"w{uuid.uuid4().hex[:8]}" for _ in range(2))
    together = db.save_trace(user, None, ids("th"), [entry("x", output=f"say {a} {b} now")])
    apart = db.save_trace(user, None, ids("th"), [entry("x", output=f"{a} then {b}")])
    db.index_pending()
    with psycopg.connect(db_url, prepare_threshold=None) as conn:
        for text, pairs_used, want in (
            (f'"{a} {b}"', True, {together}),
            (f'say "{a} {b}" now', True, {together}),
            (f'"{a} {b}" or nothing', False, {together}),
            (f"{a} {b}", False, {together, apart}),
        ):
            flt = TraceFilter(text=text, user_id=user)
            assert {s.id for s in db.list_traces(flt).items} == want, text
            for first in (False, True):
                query, params = filters.list_query(flt, 10, None, index_first=first)
                assert ("tracedb_phrase_pairs" in query.as_string(conn)) == pairs_used, text
                got = {str(r[0]) for r in conn.execute(query, params).fetchall()}
                assert got == want, (text, first)
        # the choice of plan weighs the entries holding the pairs
        estimate = filters.candidate_estimate(TraceFilter(text=f'"{a} {b}"'))
        assert estimate is not None and "tracedb_phrase_pairs" in estimate.query.as_string(conn)


def test_several_words_are_decided_on_the_entries_stored_words(db, db_url, ids):
    """Two words in one entry, a phrase, OR and a negation next to words are found through a
    row of words per indexed entry, with their real positions: the index finds the entries,
    a candidate trace is confirmed on its stored words without reading its entries (only an
    entry whose words are not kept, too big, is read), and the first matching entry ends the
    confirmation. The same traces are found in each store, indexed or not, with either plan."""
    from tracedb import filters

    user = ids("u")
    a, b, c = (f"w{uuid.uuid4().hex[:8]}" for _ in range(3))
    texts = {
        "together": [entry("x", output=f"{a} {b}")],
        "apart": [entry("x", output=a), entry("y", output=b)],
        "reversed": [entry("x", output=f"{b} {a} {c}")],
        "split": [entry("x", output=a, tool=b)],  # two strings of one entry: not a phrase
        "long": [entry(f"s{i}", output="filler") for i in range(40)] + [entry("late", output=f"{a} {b}")],
        # too big to keep its words, even compressed: read when it is a candidate
        "big": [
            entry(
                "big", output=f"{a} {b} " + base64.b64encode(os.urandom(limits.SEARCH_ENTRY_BYTES)).decode()
            )
        ],
    }
    traces = {name: db.save_trace(user, None, ids("th"), items) for name, items in texts.items()}
    expected = {
        f"{a} {b}": {"together", "reversed", "split", "long", "big"},
        f'"{a} {b}"': {"together", "long", "big"},
        f'"{b} {a}"': {"reversed"},
        f"{a} -{c} {b}": {"together", "split", "long", "big"},
        f"{c} or {b}": {"together", "apart", "reversed", "split", "long", "big"},
        f'"{c} {a}"': set(),
    }

    def check() -> None:
        for text, names in expected.items():
            flt = TraceFilter(text=text, user_id=user)
            want = {traces[n] for n in names}
            assert {s.id for s in db.list_traces(flt).items} == want, text
            assert db.count_traces(flt) == len(want), text
            for first in (False, True):
                query, params = filters.list_query(flt, 50, None, index_first=first)
                with psycopg.connect(db_url, prepare_threshold=None) as conn:
                    got = {str(r[0]) for r in conn.execute(query, params).fetchall()}
                assert got == want, (text, first)

    check()  # the entries not indexed yet: confirmed from their data
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        # every entry, also the last block of a trace written just now (a store's indexer
        # leaves it for when the trace is quiet)
        while conn.execute("SELECT tracedb_index_traces(%s::uuid[])", (list(traces.values()),)).fetchall():
            pass
        rows = conn.execute(
            "SELECT count(*), count(words) FROM automation_trace_entry_words WHERE trace_id = ANY(%s::uuid[])",
            (list(traces.values()),),
        ).fetchone()
        assert rows == (sum(len(v) for v in texts.values()), sum(len(v) for v in texts.values()) - 1)
    check()
    with psycopg.connect(db_url, prepare_threshold=None) as conn:
        flt = TraceFilter(text=f'"{a} {b}"', user_id=user, thread_id=db.get_summary(traces["long"]).thread_id)
        query, params = filters.list_query(flt, 10, None)
        lines = [
            r[0]
            for r in conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + query, params
            ).fetchall()
        ]
        plan = "\n".join(lines)
        assert "automation_trace_search" not in plan and "automation_trace_entry_words" in plan, plan
        # no entry is read: the stored words decide
        assert all("never executed" in line for line in lines if " on automation_trace_entries " in line), (
            plan
        )


def _index_state(conn: psycopg.Connection, trace_id: str) -> tuple[bool, int]:
    """Whether a trace has entries not indexed yet, and how many of its entries are."""
    return conn.execute(
        "SELECT index_pending, indexed_count FROM automation_traces WHERE id = %s", (trace_id,)
    ).fetchone()


def _search_rows(conn: psycopg.Connection, trace_id: str, word: str) -> int:
    """How many of a trace's search rows hold ``word``."""
    return conn.execute(
        "SELECT count(*) FROM automation_trace_search WHERE trace_id = %s AND words @@ %s::tsquery",
        (trace_id, word),
    ).fetchone()[0]


def _indexer(db_url: str, interval: float) -> Any:
    """An indexer of no store, on connections of its own (its thread starts only when
    told of a write)."""
    from tracedb.indexer import Indexer

    return Indexer(
        lambda: psycopg.connect(db_url, autocommit=True, prepare_threshold=None), interval=interval
    )


def _quiet(conn: psycopg.Connection, trace_id: str) -> None:
    """Make a trace look written long ago (its content last changed in 2000)."""
    with conn.transaction():
        conn.execute("SET LOCAL tracedb.keep_times = 'on'")
        conn.execute("UPDATE automation_traces SET updated_at = '2000-01-01Z' WHERE id = %s", (trace_id,))


def _pending_trace(conn: psycopg.Connection, thread: str, words: list[str], user: str = "ana") -> str:
    """A trace appended by SQL (so no store's indexer knows it): one entry per word."""
    payload = json.dumps([{"d": entry("a", output=w), "n": "tools"} for w in words])
    return str(
        conn.execute(
            "SELECT trace_id FROM tracedb_append(NULL, %s, NULL, %s, NULL, %s::jsonb, NULL, NULL, NULL)",
            (user, thread, payload),
        ).fetchone()[0]
    )


def test_indexing_makes_each_blocks_words_once(db, db_url, ids):
    """Indexing and rebuilding a trace's search rows make the words of each block of 32
    entries once. The query around them read the words twice and PostgreSQL made them twice,
    which was half of what indexing cost."""
    words = [f"zw{uuid.uuid4().hex[:10]}" for _ in range(70)]  # three blocks: 32, 32 and 6 entries

    def vectors_made(conn: psycopg.Connection, call: str, tid: str) -> int:
        count = (
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions"
            " WHERE funcname = 'tracedb_block_vector'"
        )
        with conn.transaction():  # counted in this transaction (they may hold earlier ones' too)
            conn.execute("SET LOCAL track_functions = 'pl'")
            before = conn.execute(count).fetchone()[0]
            conn.execute(call, (tid,))
            return conn.execute(count).fetchone()[0] - before

    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        tid = _pending_trace(conn, ids("th"), words)
        assert vectors_made(conn, "SELECT tracedb_index_entries(%s, 0, 70)", tid) == 3
        assert vectors_made(conn, "SELECT tracedb_rebuild_words(ARRAY[%s]::uuid[])", tid) == 3
        found = _search_rows(conn, tid, words[40])
        assert found == 1


def test_an_indexer_at_work_holds_up_no_append(db, db_url, ids):
    """While an indexer builds a trace's search rows it holds no lock a writer needs: an
    append to that trace goes through at once; a second indexer leaves the trace alone."""
    word = f"zq{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as indexer:
        tid = _pending_trace(conn, ids("th"), ["one", "two"])
        # an indexer mid-way: it has claimed the trace and built rows, not yet committed
        indexer.execute("SELECT pg_advisory_xact_lock(hashtextextended('tracedb.index:' || %s, 0))", (tid,))
        indexer.execute("SELECT tracedb_index_entries(%s, 0, 2)", (tid,))
        db.append_entries([entry("c", output=word)], trace_id=tid)  # no wait on the indexer
        with conn.transaction():  # a time limit for this transaction only (also behind a pooler)
            conn.execute("SET LOCAL statement_timeout = '5s'")
            assert conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,)).fetchall() == [
                (uuid.UUID(tid),)
            ]  # skipped: another indexer has it
        indexer.rollback()
        assert conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,)).fetchall() == []
    assert [s.id for s in db.list_traces(TraceFilter(text=word)).items] == [tid]
    assert db.count_traces(TraceFilter(text="one")) >= 1


def test_an_indexer_skips_a_trace_being_deleted_and_never_deadlocks(db, db_url, ids):
    """A delete of traces holds their rows; the indexer must not wait for it (while the
    delete may wait for the indexer's next trace: that is a deadlock), it skips them."""
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as deleter:
        doomed = _pending_trace(conn, ids("th"), ["one", "two"])
        kept = _pending_trace(conn, ids("th"), ["three"])
        deleter.execute("DELETE FROM automation_traces WHERE id = %s", (doomed,))  # not committed
        with conn.transaction():  # a lock wait limit for this transaction only (also behind a pooler)
            conn.execute("SET LOCAL lock_timeout = '3s'")
            left = conn.execute(
                "SELECT tracedb_index_traces(ARRAY[%s, %s]::uuid[])", (doomed, kept)
            ).fetchall()
        assert left == [(uuid.UUID(doomed),)]  # skipped, still pending; the other indexed
        pending = "SELECT index_pending FROM automation_traces WHERE id = %s"
        assert conn.execute(pending, (kept,)).fetchone() == (False,)
        deleter.commit()
        assert conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (doomed,)).fetchall() == []
    assert db.get_summary(doomed) is None and db.get_summary(kept) is not None


def test_entries_replaced_while_indexed_leave_no_stale_words(db, db_url, ids):
    """A seed-style upsert replaces a trace's entries while an indexer reads the old ones:
    the indexer's work is undone (the trace stays pending), and once indexed the trace is
    found by its new words only."""
    old, new = f"zq{uuid.uuid4().hex[:10]}", f"zq{uuid.uuid4().hex[:10]}"
    thread = ids("th")
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as writer:
        tid = _pending_trace(conn, thread, [old, "filler"])
        # the replace, not committed yet: it holds the trace's row
        writer.execute(
            "SELECT replaced FROM tracedb_append(%s, NULL, NULL, NULL, NULL, %s::jsonb, 0, NULL, NULL,"
            " p_chain => ARRAY['x', 'y'], p_replace => true)",
            (tid, json.dumps([{"d": entry("b", output=new), "n": "tools"}])),
        )
        result: list[Any] = []
        worker = threading.Thread(
            target=lambda: result.extend(
                conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,)).fetchall()
            )
        )
        worker.start()  # builds from the old entries, then waits for the row
        time.sleep(0.5)
        writer.commit()
        worker.join(10)
        assert result == [(uuid.UUID(tid),)], "the indexer kept what it built from replaced entries"
        words = conn.execute(
            "SELECT coalesce(string_agg(words::text, ' '), '') FROM automation_trace_search WHERE trace_id = %s",
            (tid,),
        ).fetchone()[0]
        assert old not in words
        assert conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,)).fetchall() == []
    assert db.count_traces(TraceFilter(text=new)) == 1
    assert db.count_traces(TraceFilter(text=old)) == 0
    assert stored(db, tid) == [entry("b", output=new)]


def test_a_replace_waits_for_no_indexer(db, db_url, ids):
    """An indexer that has updated a trace's search rows and not committed yet holds those
    rows: a seed-style upsert replacing the trace's entries goes through at once (a writer
    never touches search rows), and the trace is then found by its new words only."""
    old, new = f"zq{uuid.uuid4().hex[:10]}", f"zq{uuid.uuid4().hex[:10]}"
    thread = ids("th")
    db.upsert_trace_by_thread("ana", None, thread, [entry("a", output=old)])
    with psycopg.connect(db_url, autocommit=True) as conn:
        tid = conn.execute("SELECT id FROM automation_traces WHERE thread_id = %s", (thread,)).fetchone()[0]
        conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,))
    db.upsert_trace_by_thread("ana", None, thread, [entry("a", output=old), entry("b", output=old)])
    with psycopg.connect(db_url) as indexer:
        indexer.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('tracedb.index:' || %s, 0))", (str(tid),)
        )
        indexer.execute("SELECT tracedb_index_entries(%s, 1, 2)", (tid,))  # updates block 0's row
        t0 = time.monotonic()
        db.upsert_trace_by_thread("ana", None, thread, [entry("c", output=new)])
        assert time.monotonic() - t0 < 1.0, "the replace waited for the indexer"
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT tracedb_index_traces(ARRAY[%s]::uuid[])", (tid,)).fetchall() == []
    assert db.count_traces(TraceFilter(user_id="ana", thread_id=thread, text=new)) == 1
    assert db.count_traces(TraceFilter(user_id="ana", thread_id=thread, text=old)) == 0
    assert stored(db, str(tid)) == [entry("c", output=new)]


def test_json_python_cannot_parse_is_read_without_failing(db, db_url, ids):
    """Stored by another writer (or converted): a number of 5,000 digits and an array nested
    10,000 deep. The store reads them back without an error: the number as its digits, the
    deep entry as a placeholder that says so; the other entries as they are."""
    tid = db.save_trace("ana", None, ids("th"), [entry("a"), entry("b"), entry("c")])
    big = "9" * 5000
    deep = "[" * 10_000 + "]" * 10_000
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE automation_trace_entries SET data = jsonb_build_object('n', %s::numeric)"
            " WHERE trace_id = %s AND seq = 0",
            (big, tid),
        )
        conn.execute(
            "UPDATE automation_trace_entries SET data = %s::jsonb WHERE trace_id = %s AND seq = 1",
            (deep, tid),
        )
    data = db.load_trace_by_id(tid).trace_data
    assert data[0] == {"n": big}
    assert isinstance(data[1], str) and "unreadable" in data[1]
    assert data[2] == entry("c")
    assert [r["data"] for r in db.get_entries(tid)] == data


def test_the_last_error_is_kept_on_the_trace(db, ids):
    r = db.append_entries([entry("a")], thread_id=ids("th"), user_id="ana")
    assert db.get_summary(r.trace_id).last_error is None
    db.append_entries(
        [entry("b", status="error", error="TimeoutError: slow"), entry("c")], trace_id=r.trace_id
    )
    db.append_entries([entry("d", error={"code": 503})], trace_id=r.trace_id)
    s = db.get_summary(r.trace_id)
    assert s.error_count == 2 and s.last_error == '{"code":503}'
    db.update_trace(r.trace_id, trace_data=[entry("x")])
    assert db.get_summary(r.trace_id).last_error is None


def test_one_entry_at_a_time_stores_what_one_batch_stores(db, db_url, ids):
    """The server reads a lone new entry by its own path; every column of the trace and of
    its entries must come out as from the batch path, also through the seed-style upsert."""
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def at(s: float) -> str:
        return (t0 + timedelta(seconds=s)).isoformat()

    steps: list[Any] = [
        entry("a", started_at=at(5), ended_at=at(6)),
        {**model_step("openai:gpt-4o-mini", 1000, 200, cached=400), "started_at": at(1)},
        entry("b", status="error", error="TimeoutError: slow", duration_ms=12.5),
        "a bare string",
        {"node": "plan", "status": "error"},
        entry("c", started_at=at(40)),  # the latest time, with no end
        42,
        {**model_step("gpt-4o-mini-2024-07-18", 500, 100), "ended_at": at(20)},
        entry("d", error={"code": 503}, started_at=at(0.5), ended_at=at(30)),
        entry("e"),
    ]
    one = db.append_entries([], thread_id=ids("one"), user_id="ana").trace_id
    for step in steps:
        db.append_entries([step], trace_id=one)
    batch = db.append_entries(steps, thread_id=ids("batch"), user_id="ana").trace_id
    growing = ids("grow")
    for i in range(len(steps)):
        grown = db.upsert_trace_by_thread("ana", None, growing, steps[: i + 1])
    whole = db.upsert_trace_by_thread("ana", None, ids("whole"), steps)

    fields = (
        "entry_count error_count nodes first_started_at last_ended_at total_duration_ms "
        "input_tokens output_tokens total_tokens cost_usd last_error fingerprint"
    )
    with psycopg.connect(db_url, prepare_threshold=None) as conn:  # never prepared: also run behind a pooler

        def trace(tid: str) -> tuple[Any, ...]:
            # what quick appends stored counted in the row first (else the indexer does it)
            conn.execute("SELECT tracedb_fold(%s)", (tid,))
            return conn.execute(
                f"SELECT {', '.join(fields.split())} FROM automation_traces WHERE id = %s", (tid,)
            ).fetchone()

        def entries(tid: str) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT seq, node, kind, name, status, started_at, ended_at, duration_ms, data,"
                " turn, model, input_tokens, output_tokens, total_tokens, cost_usd"
                " FROM automation_trace_entries WHERE trace_id = %s ORDER BY seq",
                (tid,),
            ).fetchall()

        expected = trace(batch)
        assert expected[0] == len(steps) and expected[1] == 3 and expected[-1]  # a real case
        assert expected[2] == ["model", "plan", "tools"] and expected[9] is not None
        for tid in (one, grown, whole):
            assert trace(tid) == expected
            assert entries(tid) == entries(batch)


def test_a_lone_entry_keeps_what_the_general_path_keeps(db, db_url, open_store, ids):
    """One entry by id (or one more entry of an upserted list) takes the server's short path:
    it carries the turn, beats a running trace's heartbeat, moves updated_at at most once a
    second, stays out of another user's trace, and an upsert whose stored list changed
    underneath still leaves exactly the list given."""
    r = db.append_entries([entry("a")], thread_id=ids("lone"), user_id="ana", status="running", new_turn=True)
    tid = r.trace_id
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:

        def row() -> tuple[Any, ...]:
            return conn.execute(
                "SELECT heartbeat_at > now() - interval '30 seconds', updated_at,"
                " (SELECT count(*) FROM automation_trace_entries e WHERE e.trace_id = t.id)"
                " FROM automation_traces t WHERE id = %s",
                (tid,),
            ).fetchone()

        with conn.transaction():  # one transaction: also behind a pooler in transaction mode
            conn.execute("SET LOCAL tracedb.keep_times = 'on'")  # the times as set here
            conn.execute(
                "UPDATE automation_traces SET heartbeat_at = now() - interval '61 seconds',"
                " updated_at = now() - interval '5 seconds' WHERE id = %s",
                (tid,),
            )
        before = row()
        second = db.append_entries([entry("b")], trace_id=tid)
        assert (second.first_seq, second.entry_count, second.turn, second.written) == (1, 2, 1, 1)
        beat, moved, count = row()
        assert beat and not before[0] and moved > before[1] and count == 2
        db.append_entries([entry("c")], trace_id=tid)
        assert row()[1] == moved  # not again within the second
        assert [e["turn"] for e in db.get_entries(tid)] == [1, 1, 1]
        assert db.get_summary(tid).status == "running"

        with pytest.raises(TraceNotFound):
            db.as_user(ids("other")).append_entries([entry("x")], trace_id=tid)
        with pytest.raises(TraceNotFound):
            db.append_entries([entry("x")], trace_id=str(uuid.uuid4()))
        with pytest.raises(TraceNotFound):
            db.append_entries([entry("x")], trace_id=str(uuid.uuid4()), batch_id=str(uuid.uuid4()))
        assert row()[2] == 3

        # a lone entry with a batch id: stored once, however often it is sent
        batches = [str(uuid.uuid4()) for _ in range(17)]
        first = db.append_entries([entry("d")], trace_id=tid, batch_id=batches[0])
        again = db.append_entries([entry("d")], trace_id=tid, batch_id=batches[0])
        assert (first.written, first.duplicate) == (1, False)
        assert (again.written, again.duplicate, again.entry_count) == (0, True, 4)
        for b in batches[1:]:
            db.append_entries([entry("e")], trace_id=tid, batch_id=b)
        remembered = conn.execute(
            "SELECT recent_batches FROM automation_traces WHERE id = %s", (tid,)
        ).fetchone()[0]
        assert [str(b) for b in remembered] == batches[:0:-1]  # the last 16, newest first
        assert db.append_entries([entry("d")], trace_id=tid, batch_id=batches[0]).written == 1  # forgotten

    thread = ids("changed")
    db.upsert_trace_by_thread("ana", None, thread, [entry("a")])
    db.upsert_trace_by_thread("ana", None, thread, [entry("a"), entry("b")])
    with open_store(db_url) as other:  # another process replaces the list
        other.upsert_trace_by_thread("ana", None, thread, [entry("x")])
    tid = db.upsert_trace_by_thread("ana", None, thread, [entry("a"), entry("b"), entry("c")])
    assert stored(db, tid) == [entry("a"), entry("b"), entry("c")]
    assert db.get_summary(tid).entry_count == 3
    # the seed's callers may name the trace at every call
    four = [entry("a"), entry("b"), entry("c"), entry("d")]
    assert db.upsert_trace_by_thread("ana", None, thread, four, name="renamed") == tid
    summary = db.get_summary(tid)
    assert (summary.name, summary.entry_count, stored(db, tid)) == ("renamed", 4, four)


def test_overview_buckets(db, ids):
    user = ids("buckets")
    db.save_trace(user, None, ids("th"), [entry("a", duration_ms=5.0)])
    now = datetime.now(UTC)
    for bucket in ("hour", "day", "week"):
        view = db.overview(now - timedelta(days=1), now + timedelta(minutes=1), user, bucket=bucket)
        assert len(view.latency) == 1 and view.latency[0]["steps"] == 1
        assert view.latency[0]["bucket"] <= now
    with pytest.raises(InvalidTraceData, match="bucket"):
        db.overview(now - timedelta(days=1), now, user, bucket="month")


def test_rebuilding_search_rows_counts_only_the_entries_it_indexed(db, db_url, ids):
    """A rebuild of a trace's search rows with an append in flight waits for it: the words
    of every entry counted as indexed are in the rows (it used to count the append after
    building the rows without it, and a plain-word search then missed that entry)."""
    word = "rebuildrace" + uuid.uuid4().hex[:8]
    first = _append_params(
        entries=prepare_entries([entry("a")]).payload(), thread_id=ids("th"), user_id="ana"
    )
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:  # not via db: its
        tid = conn.execute(q.APPEND, first).fetchone()[0]  # indexer must not index the trace meanwhile
    params = _append_params(entries=prepare_entries([entry("b", note=word)]).payload(), trace_id=tid)
    done = threading.Event()
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
                conn.execute("SELECT tracedb_rebuild_words(ARRAY[%s]::uuid[])", (tid,))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    with psycopg.connect(db_url, prepare_threshold=None) as writer:  # an append in flight
        writer.execute(q.APPEND, params)
        worker = threading.Thread(target=rebuild)
        worker.start()
        assert not done.wait(0.5)  # held off by the append
    worker.join(10)
    assert done.is_set() and not errors
    with psycopg.connect(db_url, prepare_threshold=None) as conn:
        counted, pending = conn.execute(
            "SELECT indexed_count, index_pending FROM automation_traces WHERE id = %s", (tid,)
        ).fetchone()
        found = conn.execute(
            "SELECT count(*) FROM automation_trace_search WHERE trace_id = %s"
            " AND words @@ to_tsquery('simple', %s)",
            (tid, word),
        ).fetchone()[0]
    assert (counted, pending, found) == (2, False, 1)
    assert [t.id for t in db.list_traces(TraceFilter(text=word)).items] == [tid]


def test_plain_words_are_exact_from_current_blocks_and_never_from_stale_ones(db, db_url, ids):
    """Plain words are answered from the search blocks without reading entries where the
    blocks are current; a trace whose entries were replaced (its blocks stale) is confirmed
    against its entries, so what it no longer holds is never found. The traces are written
    and indexed by SQL here, so that no store's background indexer changes them meanwhile."""
    a, b = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    user = ids("u")  # other tests' traces here hold entries too big to index, found by reading them
    replace = (
        "SELECT replaced FROM tracedb_append(%s, NULL, NULL, NULL, NULL, %s::jsonb, 0, NULL, NULL,"
        " p_chain => %s::text[], p_replace => true)"
    )
    index = "SELECT tracedb_index_traces(%s::uuid[])"
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=None) as conn:
        together = _pending_trace(conn, ids("th"), [f"{a} and {b}"], user)
        apart = _pending_trace(conn, ids("th"), [a, b], user)
        emptied = _pending_trace(conn, ids("th"), [f"{a} {b}"], user)
        changed = _pending_trace(conn, ids("th"), [f"{b} {a}"], user)
        every = [together, apart, emptied, changed]
        assert conn.execute(index, (every,)).fetchall() == []
        both = TraceFilter(user_id=user, text=f"{a} {b}")
        assert {s.id for s in db.list_traces(both).items} == {together, emptied, changed}
        # the lists change; the search rows of both still hold the old words until re-indexed
        conn.execute(replace, (emptied, "[]", []))
        conn.execute(
            replace, (changed, json.dumps([{"d": entry("x", output="nothing here"), "n": "x"}]), ["c"])
        )
        stale = conn.execute(
            "SELECT count(*) FROM automation_trace_search WHERE trace_id = ANY(%s::uuid[])",
            ([emptied, changed],),
        ).fetchone()[0]
        assert stale == 2  # what makes this a test of stale rows
        assert [s.id for s in db.list_traces(both).items] == [together]
        assert db.count_traces(both) == 1
        assert db.count_traces(TraceFilter(user_id=user, text=a)) == 2  # together, apart
        conn.execute(index, (every,))
    assert [s.id for s in db.list_traces(both).items] == [together]
    assert db.count_traces(TraceFilter(user_id=user, text=f"nothing here {a}")) == 0
    assert [s.id for s in db.list_traces(TraceFilter(user_id=user, text=f"{a} {b}")).items] == [together]
    assert apart not in {s.id for s in db.list_traces(both).items}


def test_words_the_parser_splits_are_found(db, ids):
    """A word such as 12e3x is two tokens to PostgreSQL's parser (12e3, x): a search for it
    finds the entry that holds it, as the parser reads both."""
    user = ids("u")
    tag = uuid.uuid4().hex[:6]
    odd = f"12e3x{tag}"
    tid = db.save_trace(user, None, ids("th"), [entry("x", output=f"reading {odd} now")])
    db.index_pending()
    for text in (odd, f"reading {odd}", f'"{odd} now"'):
        assert [s.id for s in db.list_traces(TraceFilter(user_id=user, text=text)).items] == [tid], text
        assert db.count_traces(TraceFilter(user_id=user, text=text)) == 1, text


def test_words_joined_by_a_space_the_parser_does_not_split_on_are_a_phrase(db, ids):
    """ "foo\\u00a0bar" (a no-break space) is the phrase "foo bar" to PostgreSQL, not two words:
    an entry holding both words apart does not match it, nor is it deleted by it."""
    user = ids("u")
    foo, bar = f"f{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    apart = db.save_trace(user, None, ids("th"), [entry("x", output=f"{bar} is here and later {foo}")])
    phrase = db.save_trace(user, None, ids("th"), [entry("x", output=f"{foo} {bar}")])
    db.index_pending()
    for space in ("\u00a0", "\u202f", "\x1c", "\u0085"):
        flt = TraceFilter(user_id=user, text=f"{foo}{space}{bar}")
        assert [s.id for s in db.list_traces(flt).items] == [phrase], repr(space)
        assert db.count_traces(flt) == 1, repr(space)
    assert db.delete_traces(TraceFilter(user_id=user, text=f"{foo}\u00a0{bar}")) == 1
    assert db.get_summary(apart) is not None and db.get_summary(phrase) is None


def test_a_compressible_entry_too_big_for_the_words_is_still_found(db, db_url, ids):
    """An entry over the search limit as read but small as stored (it compresses well) is
    left out of its block's words; its block must then say so, so a search reads it."""
    user = ids("u")
    word = f"zebra{uuid.uuid4().hex[:8]}"
    big = entry("x", output=f"{word} " + "filler text " * 9000)  # about 108 kB, stored compressed
    tid = db.save_trace(user, None, ids("th"), [entry("a", output="small"), big])
    db.index_pending()
    with psycopg.connect(db_url) as conn:
        stored, read = conn.execute(
            "SELECT pg_column_size(e.data), (SELECT pg_column_size(x) FROM unnest(ARRAY[e.data]) x)"
            " FROM automation_trace_entries e WHERE e.trace_id = %s AND e.seq = 1",
            (tid,),
        ).fetchone()
        complete = conn.execute(
            "SELECT complete FROM automation_trace_search WHERE trace_id = %s", (tid,)
        ).fetchone()
    assert stored < limits.SEARCH_ENTRY_BYTES < read  # what makes this the case
    assert complete == (False,)
    for text in (word, f"{word} filler", "small"):
        assert [s.id for s in db.list_traces(TraceFilter(user_id=user, text=text)).items] == [tid], text
        assert db.count_traces(TraceFilter(user_id=user, text=text)) == 1, text
