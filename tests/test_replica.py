"""Reads on a real streaming replica (``TRACEDB_READ_URL``): they go there, a trace the
replica has not caught up with is read from the primary, and nothing goes backwards.

The replica is made with ``pg_basebackup -R`` from the system PostgreSQL 15 and started on a
port of its own (``tests/pg_support.py``); run with ``pytest --replica`` as root, with
``TRACEDB_TEST_URL`` on that server (``.ci/run`` does). Replay is paused on the replica to
make it lag as long as a test needs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from store_support import STORES

from tracedb import AutomationTraceDB, TraceFilter

pytestmark = pytest.mark.server_sessions  # a replica next to a pooler is not what is tested here


@pytest.fixture(scope="module")
def servers(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL) of a new database on the system server and its replica."""
    if not request.config.getoption("--replica"):
        pytest.skip("starts a streaming replica of the system PostgreSQL: run with --replica")
    from pg_support import PG_PORT, PG_SOCKET_DIR, streaming_replica

    with psycopg.connect(pg_admin_url) as conn:
        port = conn.execute("SHOW port").fetchone()[0]
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    if int(port) != PG_PORT or PG_SOCKET_DIR not in sockets:
        pytest.skip("--replica needs TRACEDB_TEST_URL to be the system PostgreSQL 15")
    with streaming_replica() as replica:
        name = f"tracedb_replica_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            primary_url = make_conninfo(pg_admin_url, dbname=name)
            replica_url = make_conninfo(replica, dbname=name)
            with AutomationTraceDB(primary_url):  # migrations, before the replica is used
                pass
            catch_up(primary_url, replica_url)
            yield primary_url, replica_url
        finally:
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def catch_up(primary_url: str, replica_url: str, timeout: float = 120) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(primary_url) as conn:
        target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout
    state: object = None
    while True:
        try:
            with psycopg.connect(replica_url) as conn:
                state = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn(),"
                    " pg_last_wal_receive_lsn(), pg_get_wal_replay_pause_state()",
                    (target,),
                ).fetchone()
                if state[0]:
                    return
        except psycopg.OperationalError as exc:  # the database is not there yet
            state = exc
        assert time.monotonic() < deadline, f"the replica did not reach {target}: {state}"
        time.sleep(0.05)


@contextmanager
def replay_paused(replica_url: str) -> Iterator[None]:
    """The replica stops applying WAL: it lags behind the primary until the block ends."""
    with psycopg.connect(replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
            time.sleep(0.01)
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def on_replica(replica_url: str, trace_id: str) -> int | None:
    """The trace's entries as the replica has them (None: not there). Counted, not read from
    the trace row, whose count a quick append leaves to be folded in later."""
    with psycopg.connect(replica_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM automation_trace_entries e WHERE e.trace_id = t.id)"
            " FROM automation_traces t WHERE t.id = %s",
            (trace_id,),
        ).fetchone()
    return row[0] if row else None


def back_on_the_replica(db, primary_url: str, replica_url: str, read_ok, timeout: float = 60) -> None:
    """Once the replica has caught up, reads return to it, and every read on the way (from
    wherever it came) passes ``read_ok``. On a busy server the replica trails the primary's
    newest position a little, so a read right after one on the primary may still go there."""
    catch_up(primary_url, replica_url)
    before = db.routing.stats["replica"]
    deadline = time.monotonic() + timeout
    while db.routing.stats["replica"] == before:
        assert read_ok()
        assert time.monotonic() < deadline, f"reads did not return to the replica: {db.routing.stats}"
        time.sleep(0.05)


@pytest.fixture(params=sorted(STORES))
def open_store(request: pytest.FixtureRequest):
    return STORES[request.param]


def test_reads_go_to_the_replica(servers, open_store, ids) -> None:
    primary_url, replica_url = servers
    user = ids("u")
    with open_store(primary_url) as writer:
        tid = writer.save_trace(user, None, ids("t"), [{"node": "a"}, {"node": "b"}])
    catch_up(primary_url, replica_url)
    with open_store(primary_url, read_url=replica_url) as db:
        assert db.server.read_url == replica_url and db.server.url == primary_url
        for _ in range(5):
            assert db.load_trace_by_id(tid).entry_count == 2
            assert db.list_traces(TraceFilter(user_id=user)).items[0].id == tid
            assert db.count_traces(TraceFilter(user_id=user)) == 1
        assert db.routing.stats["replica"] == 15 and db.routing.stats["primary"] == 0
        # a store that only reads never asks the primary where it is
        assert db.routing.stats["primary_checks"] == 0
        assert db.ping()  # the primary's health, and it does not hold reads back
        db.get_summary(tid)
        assert db.routing.stats["primary_checks"] == 0 and db.routing.stats["replica"] == 16


def test_a_store_reads_its_own_writes_while_the_replica_lags(servers, open_store, ids) -> None:
    primary_url, replica_url = servers
    with open_store(primary_url, read_url=replica_url) as db:
        tid = db.save_trace(ids("u"), None, ids("t"), [{"i": 0}])
        db.append_entries([{"i": 1}], trace_id=tid)
        catch_up(primary_url, replica_url)
        assert db.get_entries(tid)[-1]["seq"] == 1
        with replay_paused(replica_url):
            db.append_entries([{"i": 2}, {"i": 3}], trace_id=tid)
            assert on_replica(replica_url, tid) == 2  # the replica lags...
            # ...and the store reads what it wrote, not the replica's older version
            assert [e["data"]["i"] for e in db.get_entries(tid)] == [0, 1, 2, 3]
            assert db.load_trace_by_id(tid).entry_count == 4
            assert db.routing.stats["primary"] >= 2
        back_on_the_replica(db, primary_url, replica_url, lambda: db.load_trace_by_id(tid).entry_count == 4)


def test_a_page_never_goes_backwards(servers, open_store, ids) -> None:
    """Another process writes; a reader reads. What the reader once read from the primary,
    it never reads an older version of from the replica."""
    primary_url, replica_url = servers
    user = ids("u")
    with open_store(primary_url) as writer, open_store(primary_url, read_url=replica_url) as reader:
        tid = writer.save_trace(user, None, ids("t"), [{"i": i} for i in range(3)])
        catch_up(primary_url, replica_url)
        assert reader.get_summary(tid).entry_count == 3
        with replay_paused(replica_url):
            writer.append_entries([{"i": i} for i in range(3, 6)], trace_id=tid)
            # The reader has never seen the primary: the replica's slightly older state is
            # what it shows, and that is consistent.
            assert len(reader.entry_columns(tid)["seq"]) == 3
            # A trace the replica does not have yet is read from the primary...
            fresh = writer.save_trace(user, None, ids("t"), [{"i": 0}])
            assert on_replica(replica_url, fresh) is None
            assert reader.get_summary(fresh).id == fresh
            assert reader.routing.stats["replica_misses"] == 1
            # ...and from then on the reader reads nothing older than what it saw there.
            assert len(reader.entry_columns(tid)["seq"]) == 6
            assert reader.get_summary(tid).entry_count == 6
            assert reader.count_traces(TraceFilter(user_id=user)) == 2
        back_on_the_replica(
            reader,
            primary_url,
            replica_url,
            lambda: len(reader.entry_columns(tid)["seq"]) == 6 and reader.get_summary(fresh).entry_count == 1,
        )


def test_replica_reads_decode_json_as_primary_reads_do(servers, open_store, ids) -> None:
    """A number too long for Python's int parser reads the same from either server."""
    primary_url, replica_url = servers
    with open_store(primary_url) as writer:
        tid = writer.save_trace(ids("u"), None, ids("t"), [{"node": "a"}])
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE automation_trace_entries SET data = jsonb_set(data, '{big}', ('1' || repeat('0', 5000))::jsonb)"
            " WHERE trace_id = %s",
            (tid,),
        )
    catch_up(primary_url, replica_url)
    with open_store(primary_url) as primary, open_store(primary_url, read_url=replica_url) as replica:
        expected = primary.get_entries(tid)
        assert replica.get_entries(tid) == expected
        assert replica.routing.stats["replica"] == 1


def test_the_dashboard_reads_from_the_replica_and_shows_a_new_trace(servers, ids) -> None:
    from apptest_support import dashboard_env, open_page

    primary_url, replica_url = servers
    with AutomationTraceDB(primary_url) as writer:
        tid = writer.save_trace(ids("u"), None, ids("t"), [{"node": "planner"}], name="before the pause")
        catch_up(primary_url, replica_url)
        with dashboard_env(TRACEDB_URL=primary_url, TRACEDB_READ_URL=replica_url):
            at = open_page("thread", trace=tid)
            assert not at.exception
            assert at.text_input(key="trace_name").value == "before the pause"
            with replay_paused(replica_url):
                new = writer.save_trace(
                    ids("u"), None, ids("t"), [{"node": "planner"}], name="during the pause"
                )
                at = open_page("thread", trace=new)
                assert not at.exception
                assert at.text_input(key="trace_name").value == "during the pause"
            # The dashboard's store holds connections to the replica's copy of the database.
            dbname = conninfo_to_dict(replica_url)["dbname"]
            with psycopg.connect(replica_url) as conn:
                sessions = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                ).fetchone()[0]
            assert sessions >= 1


def test_an_unreachable_replica_sends_reads_to_the_primary(db_url, ids) -> None:
    """Needs no replica: the read URL leads nowhere. The first read waits briefly for it,
    the next ones go to the primary at once for a while."""
    with AutomationTraceDB(db_url, read_url="postgresql://nobody@127.0.0.1:1/none", timeout=5) as db:
        tid = db.save_trace(ids("u"), None, ids("t"), [{"i": 0}])
        assert db.load_trace_by_id(tid).entry_count == 1
        assert db.routing.stats["replica_failures"] == 1
        started = time.monotonic()
        assert db.get_summary(tid).entry_count == 1
        assert time.monotonic() - started < 1
        assert db.routing.stats["replica_failures"] == 1 and db.routing.stats["primary"] == 2


# -- the plan alone, without servers: what goes where ------------------------------------


def _drive(plan, answers):
    """Run a read plan, answering each request from ``answers`` (a value or an exception);
    return the requests it made and its result."""
    made, result, error = [], None, None
    while True:
        try:
            req = plan.send(result) if error is None else plan.throw(error)
        except StopIteration as stop:
            return made, stop.value
        req.op.close()
        made.append(("replica" if req.on_replica else "primary", req.track))
        answer = answers.pop(0)
        result, error = (None, answer) if isinstance(answer, BaseException) else (answer, None)


def _op():
    yield from ()


def test_plan_a_reader_stays_on_the_replica_without_asking_anyone() -> None:
    from tracedb.routing import ReadRouting, read_plan

    routing = ReadRouting()
    made, result = _drive(read_plan(routing, _op), [100, "row"])  # replica position, then the read
    assert made == [("replica", False), ("replica", False)] and result == "row"
    made, result = _drive(read_plan(routing, _op), ["row"])
    assert made == [("replica", False)]


def test_plan_after_the_primary_the_replica_must_catch_up() -> None:
    from tracedb.routing import ReadRouting, read_plan

    routing = ReadRouting()
    routing.replica_at(100)
    routing.primary_used()
    # primary at 200, replica still at 150: the read runs on the primary and is tracked
    made, result = _drive(read_plan(routing, _op), [200, 150, "fresh"])
    assert made == [("primary", False), ("replica", False), ("primary", True)] and result == "fresh"
    routing.primary_used()  # what the store does after the tracked read
    # within the recheck window the replica is not even asked
    made, _ = _drive(read_plan(routing, _op), ["fresh"])
    assert made == [("primary", True)]


def test_plan_a_miss_and_a_failing_replica_go_to_the_primary() -> None:
    from tracedb import DatabaseUnavailable, InvalidTraceData
    from tracedb.routing import ReadRouting, read_plan

    routing = ReadRouting()
    routing.replica_at(None)  # not in recovery: always current
    made, result = _drive(read_plan(routing, _op), [None, "found"])
    assert made == [("replica", False), ("primary", True)] and result == "found"
    made, result = _drive(read_plan(routing, _op), [DatabaseUnavailable("gone"), "found"])
    assert made == [("replica", False), ("primary", True)] and result == "found"
    assert not routing.replica_usable()
    made, _ = _drive(read_plan(routing, _op), ["found"])  # left alone for a while
    assert made == [("primary", True)]
    # an error about the request itself is the caller's, wherever it happened
    with pytest.raises(InvalidTraceData):
        _drive(read_plan(ReadRouting(), _op), [None, InvalidTraceData("bad")])
