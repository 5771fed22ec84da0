"""Appends of many threads (or tasks) of one store share statements and commits: each
caller still gets what its append alone would have returned, and every trace gets exactly
its entries, in order."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tracedb import AsyncAutomationTraceDB, AutomationTraceDB, DatabaseUnavailable, TraceNotFound
from tracedb import queries as q
from tracedb.combine import Combiner, combined
from tracedb.core import Statement, _append_params


class Counting:
    """Runs a store's statements as the store does, and counts the appends each carried."""

    def __init__(self, run: Callable[[Statement], Any]) -> None:
        self.run = run
        self.sizes: list[int] = []

    def __call__(self, st: Statement) -> Any:
        self.sizes.append(len(st.params["ord"]) if st.query == q.APPEND_MANY else 1)
        return self.run(st)


class Gated(Counting):
    """Holds the first statement until ``waiting`` appends queue behind it, so that the next
    statement carries them all."""

    def __init__(
        self, run: Callable[[Statement], Any], combiner: Combiner, waiting: int, hold: float = 0
    ) -> None:
        super().__init__(run)
        self.combiner, self.waiting, self.first, self.hold = combiner, waiting, True, hold

    def __call__(self, st: Statement) -> Any:
        if self.first:
            self.first = False
            deadline = time.monotonic() + 10
            while len(self.combiner._queue.waiting) < self.waiting and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(self.hold)
        return super().__call__(st)


def gate(db: AutomationTraceDB, waiting: int, hold: float = 0) -> Gated:
    """Replace ``db``'s combiner by one sending a statement at a time, whose first statement
    waits for ``waiting`` appends queued behind it (and ``hold`` seconds more)."""
    run = db._combiner._run
    db._combiner = Combiner(run, statements=1)
    gated = Gated(run, db._combiner, waiting, hold)
    db._combiner._run = gated
    return gated


def in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in a thread of its own, started in order; their results or errors."""
    out: list[Any] = [None] * len(calls)

    def one(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[i] = exc

    threads = []
    for i in range(len(calls)):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.01)  # the first one leads; the others queue in this order
    for t in threads:
        t.join(30)
    return out


@pytest.fixture()
def store(db, db_url):  # db: the module's migrations
    s = AutomationTraceDB(db_url, max_size=16)
    try:
        yield s
    finally:
        s.close()


def _trace(store: AutomationTraceDB, ids: Callable[[str], str]) -> str:
    return store.append_entries([], thread_id=ids("th"), user_id="ana").trace_id


def test_many_threads_appending_share_statements_and_each_trace_gets_its_entries(store, entries, ids):
    counting = Counting(store._combiner._run)
    store._combiner._run = counting
    traces = [_trace(store, ids) for _ in range(12)]
    steps = entries(25)

    def writer(tid: str) -> None:
        for e in steps:
            store.append_entries([e], trace_id=tid, batch_id=str(uuid.uuid4()))

    threads = [threading.Thread(target=writer, args=(t,)) for t in traces]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for tid in traces:
        trace = store.load_trace_by_id(tid)
        assert trace.trace_data == steps and trace.entry_count == len(steps)
    assert sum(counting.sizes) == 12 * 25
    assert max(counting.sizes) > 1, "no statement carried the appends of two threads"
    assert len(counting.sizes) < 12 * 25


def test_each_caller_gets_what_its_append_alone_returns(store, entries, ids):
    traces = [_trace(store, ids) for _ in range(4)]
    store.append_entries(entries(3), trace_id=traces[0])
    gated = gate(store, waiting=4)
    batch = str(uuid.uuid4())
    calls = [
        lambda: store.append_entries(entries(1), trace_id=traces[3]),  # leads, alone
        lambda: store.append_entries(entries(2, start=3), trace_id=traces[0], name="renamed"),
        lambda: store.append_entries(
            entries(1),
            trace_id=traces[1],
            status="running",
            new_turn=True,
            running_start={"task-1": {"node": "model", "started_at": "2026-01-01T00:00:00+00:00"}},
            dropped=2,
        ),
        lambda: store.append_entries(entries(1), trace_id=traces[2], batch_id=batch),
        lambda: store.append_entries(entries(1), trace_id=traces[2], batch_id=batch),  # sent twice
    ]
    results = in_threads(calls)
    assert gated.sizes == [1, 4]
    first, second, third, again = results[1], results[2], results[3], results[4]
    assert (first.first_seq, first.entry_count, first.written) == (3, 5, 2)
    assert (second.turn, second.entry_count, second.created) == (1, 1, False)
    assert (third.written, third.duplicate) == (1, False)
    assert (again.written, again.duplicate) == (0, True)
    assert store.load_trace_by_id(traces[0]).trace_data == entries(5)
    assert store.get_summary(traces[0]).name == "renamed"
    summary = store.get_summary(traces[1])
    assert summary.status == "running" and summary.dropped_count == 2 and summary.turns == 1
    assert [m["node"] for m in summary.running] == ["model"]
    assert store.load_trace_by_id(traces[2]).entry_count == 1  # the batch once


def test_an_append_to_a_missing_or_unseen_trace_fails_alone_and_the_others_are_stored(store, entries, ids):
    traces = [_trace(store, ids) for _ in range(4)]
    gone = traces[2]
    assert store.delete_trace(gone)
    bob = store.append_entries([], thread_id=ids("th"), user_id="bob").trace_id
    gated = gate(store, waiting=4)
    ana = store.as_user("ana")  # may not see bob's trace; shares the store's combiner
    results = in_threads(
        [
            lambda: store.append_entries(entries(1), trace_id=traces[3]),  # leads, alone
            lambda: store.append_entries(entries(1), trace_id=traces[0]),
            lambda: store.append_entries(entries(1), trace_id=gone),
            lambda: ana.append_entries(entries(1), trace_id=bob),
            lambda: store.append_entries(entries(1), trace_id=traces[1]),
        ]
    )
    # the combined statement did not run the two it could not lock; each went on its own
    assert gated.sizes == [1, 4, 1, 1]
    assert isinstance(results[2], TraceNotFound) and isinstance(results[3], TraceNotFound)
    assert results[1].written == 1 and results[4].written == 1
    for tid in (traces[0], traces[1], traces[3]):
        assert store.load_trace_by_id(tid).trace_data == entries(1)
    assert store.load_trace_by_id(bob).entry_count == 0
    assert store.load_trace_by_id(gone) is None


@pytest.mark.server_sessions  # it ends the store's server sessions, which a pooler replaces unseen
def test_a_lost_connection_reaches_every_caller_and_a_retry_stores_each_entry_once(
    store, db_url, entries, ids
):
    traces = [_trace(store, ids) for _ in range(4)]
    gated = gate(store, waiting=3)
    first = gated.__call__

    def kill_then_send(st: Statement) -> Any:
        if st.query == q.APPEND_MANY:  # the server loses every connection of the store
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        return first(st)

    store._combiner._run = kill_then_send
    batches = [str(uuid.uuid4()) for _ in traces]

    def append(i: int) -> Any:
        return store.append_entries(entries(2, start=i), trace_id=traces[i], batch_id=batches[i])

    results = in_threads([lambda i=i: append(i) for i in range(4)])
    assert results[0].written == 2  # it led, alone, before the server went away
    assert all(isinstance(r, DatabaseUnavailable) for r in results[1:])
    store._combiner._run = gated.run
    for i in range(4):  # the writer retries with the same batch ids
        append(i)
    for i, tid in enumerate(traces):
        assert store.load_trace_by_id(tid).trace_data == entries(2, start=i)


def test_a_combined_statement_locks_its_traces_in_one_order():
    ids = [uuid.uuid4() for _ in range(6)]
    sts = [Statement(q.APPEND, _append_params(trace_id=i, entries="[]")) for i in ids]
    st = combined(sts)
    assert st.params["trace_id"] == sorted(str(i) for i in ids)
    assert [ids[o - 1] for o in st.params["ord"]] == sorted(ids, key=str)


def test_async_tasks_share_statements_and_a_cancelled_one_holds_up_nobody(db, db_url, entries, ids):
    steps = entries(20)

    async def scenario() -> None:
        async with AsyncAutomationTraceDB(db_url, max_size=16) as adb:
            counting = Counting(adb._combiner._run)
            adb._combiner._run = counting
            traces = [
                (await adb.append_entries([], thread_id=ids("th"), user_id="ana")).trace_id for _ in range(10)
            ]

            async def writer(tid: str) -> None:
                for e in steps:
                    await adb.append_entries([e], trace_id=tid, batch_id=str(uuid.uuid4()))

            # cancelled while waiting behind others, now and then
            doomed = [asyncio.ensure_future(adb.append_entries(steps, trace_id=traces[0])) for _ in range(5)]
            await asyncio.sleep(0)
            for task in doomed[1:]:
                task.cancel()
            await asyncio.wait_for(asyncio.gather(*(writer(t) for t in traces[1:])), 60)
            await asyncio.gather(*doomed, return_exceptions=True)
            for tid in traces[1:]:
                trace = await adb.load_trace_by_id(tid)
                assert trace.trace_data == steps
            assert max(counting.sizes) > 1
            stored = (await adb.load_trace_by_id(traces[0])).entry_count
            assert stored % len(steps) == 0 and stored >= len(steps)  # whole appends only
            # nothing is left waiting: a lone append goes through at once
            await asyncio.wait_for(adb.append_entries(steps[:1], trace_id=traces[1]), 5)

    asyncio.run(scenario())


def test_a_trace_held_by_another_transaction_holds_up_only_its_own_append(store, db_url, entries, ids):
    traces = [_trace(store, ids) for _ in range(4)]
    held = traces[1]
    gated = gate(store, waiting=3)
    with psycopg.connect(db_url) as other:  # a transaction holding one trace's row
        other.execute("SELECT 1 FROM automation_traces WHERE id = %s FOR NO KEY UPDATE", (held,))
        results: list[Any] = [None] * 4

        def append(i: int) -> None:
            results[i] = store.append_entries(entries(1, start=i), trace_id=traces[i])

        threads = []
        for i in (0, 1, 2, 3):
            t = threading.Thread(target=append, args=(i,))
            t.start()
            threads.append(t)
            time.sleep(0.01)
        for i in (0, 2, 3):
            threads[i].join(10)
            assert results[i] is not None and results[i].written == 1, f"append {i} waited for the held trace"
        assert results[1] is None and threads[1].is_alive()  # waits for its own trace only
        other.rollback()
    threads[1].join(10)
    assert results[1].written == 1
    assert gated.sizes == [1, 3, 1]  # the held one went on its own
    for i, tid in enumerate(traces):
        assert store.load_trace_by_id(tid).trace_data == entries(1, start=i)


def test_without_the_combined_function_each_append_goes_alone(fresh_db_url, entries, ids):
    """A store that does not apply migrations, on a database of the previous version."""
    AutomationTraceDB(fresh_db_url).close()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION tracedb_append_many")
    with AutomationTraceDB(fresh_db_url, apply_migrations=False) as store:
        traces = [_trace(store, ids) for _ in range(4)]
        gated = gate(store, waiting=3)
        results = in_threads(
            [lambda i=i: store.append_entries(entries(2), trace_id=traces[i]) for i in range(4)]
        )
        assert [r.written for r in results] == [2, 2, 2, 2]
        assert gated.sizes == [1, 3, 1, 1, 1]  # the combined statement failed: each again alone
        for tid in traces:
            assert store.load_trace_by_id(tid).trace_data == entries(2)


def test_a_caller_interrupted_while_it_waits_holds_up_nobody(store, entries, ids):
    import signal

    traces = [_trace(store, ids) for _ in range(3)]
    gated = gate(store, waiting=1, hold=0.3)  # the leader's statement waits for this thread's append

    class Interrupted(Exception):
        pass

    def interrupt(*_: object) -> None:
        raise Interrupted

    leader = threading.Thread(target=lambda: store.append_entries(entries(1), trace_id=traces[0]))
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        leader.start()
        time.sleep(0.05)
        signal.setitimer(signal.ITIMER_REAL, 0.1)  # a signal while this thread waits in line
        with pytest.raises(Interrupted):
            store.append_entries(entries(1), trace_id=traces[1])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    leader.join(10)
    done: list[Any] = []
    later = threading.Thread(target=lambda: done.append(store.append_entries(entries(1), trace_id=traces[2])))
    later.start()
    later.join(5)
    assert done and done[0].written == 1, "an append after the interrupted one never returned"
    assert store.load_trace_by_id(traces[0]).entry_count == 1
    assert gated.sizes[0] == 1


def test_lone_appends_to_a_held_trace_do_not_block_the_line(store, db_url, entries, ids):
    """Two statements at a time: a lone append waiting for a held trace keeps one; the
    next lone append, sent while it waits, skips the held trace and keeps the line moving."""
    held, free = _trace(store, ids), _trace(store, ids)
    results: dict[str, Any] = {}

    def append(key: str, tid: str) -> None:
        results[key] = store.append_entries(entries(1), trace_id=tid)

    with psycopg.connect(db_url) as other:
        other.execute("SELECT 1 FROM automation_traces WHERE id = %s FOR NO KEY UPDATE", (held,))
        waiting = [threading.Thread(target=append, args=(key, held)) for key in ("a", "b")]
        for t in waiting:
            t.start()
            time.sleep(0.2)
        mover = threading.Thread(target=append, args=("c", free))
        mover.start()
        mover.join(5)
        assert "c" in results, "an append to another trace waited for the held one"
        assert "a" not in results and "b" not in results
        other.rollback()
    for t in waiting:
        t.join(10)
    assert results["a"].written == results["b"].written == 1
    assert store.load_trace_by_id(held).entry_count == 2
