"""Migrations on a real PostgreSQL: applied once each, in order, recorded."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tracedb import TraceFilter
from tracedb.migrations import load_migrations, migrate


def test_migrations_are_numbered_in_order():
    migs = load_migrations()
    assert [m.version for m in migs] == sorted(m.version for m in migs)
    assert migs[0].version == 1


def test_apply_twice_is_a_no_op(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        first = migrate(conn)
        assert first == [m.name for m in load_migrations()]
        assert migrate(conn) == []
        rows = conn.execute("SELECT version, name FROM tracedb_migrations ORDER BY version").fetchall()
        assert [r[1] for r in rows] == first
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
        }
        assert {"automation_traces", "automation_trace_entries", "tracedb_migrations"} <= tables


def test_concurrent_migrators_apply_each_once(fresh_db_url):
    applied: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            applied.append(migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(a) for a in applied) == [0, 0, 0, len(load_migrations())]


def test_updated_at_trigger_and_functions(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO automation_traces (id, user_id, thread_id) VALUES "
            "('00000000-0000-0000-0000-000000000001', 'u', 't')"
        )
        before = conn.execute("SELECT updated_at FROM automation_traces").fetchone()[0]
        conn.execute("UPDATE automation_traces SET name = 'x'")
        after = conn.execute("SELECT updated_at FROM automation_traces").fetchone()[0]
        assert after > before
        row = conn.execute(
            "SELECT trace_id, first_seq, entry_count FROM tracedb_append("
            "'00000000-0000-0000-0000-000000000001', NULL, NULL, NULL, NULL, "
            '\'[{"d": {"node": "a"}}, {"d": {"node": "b"}}]\', NULL, NULL, NULL)'
        ).fetchone()
        assert row[1:] == (0, 2)
        data = conn.execute("SELECT tracedb_trace_data('00000000-0000-0000-0000-000000000001')").fetchone()[0]
        assert data == [{"node": "a"}, {"node": "b"}]


def test_a_migration_changed_after_it_ran_is_a_clear_error(fresh_db_url):
    from tracedb.migrations import MigrationChanged

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("UPDATE tracedb_migrations SET checksum = 'old' WHERE version = 1")
        with pytest.raises(MigrationChanged, match="001_tables.sql differs"):
            migrate(conn)


# -- a database of the seed's ------------------------------------------------------------------

# The seed's table as its own SQL made it (plus an extra column, as later versions had, and
# trace_data nullable, to test a NULL document).
SEED_DDL = """
CREATE TABLE automation_traces (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id VARCHAR(255) NOT NULL,
    provider_id VARCHAR(255) NOT NULL,
    thread_id VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    trace_data JSONB,
    deployment_status VARCHAR(50) DEFAULT 'draft',
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_automation_traces_user_id ON automation_traces(user_id);
CREATE INDEX IF NOT EXISTS idx_automation_traces_thread_id ON automation_traces(thread_id);
CREATE INDEX IF NOT EXISTS idx_automation_traces_created_at ON automation_traces(created_at DESC);
CREATE INDEX IF NOT EXISTS idx_automation_traces_trace_data ON automation_traces USING GIN(trace_data);
CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ language 'plpgsql';
CREATE TRIGGER update_automation_traces_updated_at BEFORE UPDATE ON automation_traces
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
"""

DEEP = "[" * 3000 + "]" * 3000
SEED_DOCS = {
    "a list": '[{"timestamp": "2025-10-30T12:00:00Z", "node": "inputer_agent", "event": "routing_decision",'
    ' "started_at": "2025-10-30T12:00:00Z", "ended_at": "2025-10-30T12:00:01.5Z"},'
    ' {"node": "agent_tool_node", "tool": "send_gmail", "status": "error", "error": "quota"}]',
    "a dict with automation_trace": '{"automation_trace": [{"node": "a"}, {"node": "b"}]}',
    "a dict with more": '{"automation_trace": [{"node": "a"}], "messages": ["hi"]}',
    "empty": "[]",
    "json null": "null",
    "sql null": None,
    "any json": '[1, "two", null, [3, {"x": 1.00000000000000000001}], true, ' + "9" * 4000 + "]",
    "too deep for python": f'[{{"node": "deep"}}, {DEEP}]',
    "a scalar": '"just text"',
    "a dict without the list": '{"steps": 3}',
}


def _make_seed(conn: psycopg.Connection, docs: dict[str, str | None], thread: str = "chat-1") -> None:
    conn.execute(SEED_DDL)
    for i, (name, doc) in enumerate(docs.items()):
        conn.execute(
            "INSERT INTO automation_traces (user_id, provider_id, thread_id, name, trace_data, created_at,"
            " updated_at, deployment_status) VALUES (%s, %s, %s, %s, %s::jsonb,"
            " '2025-10-30T12:00:00Z'::timestamptz + %s * interval '1 hour',"
            " '2025-10-30T12:30:00Z'::timestamptz + %s * interval '1 hour', %s)",
            ("user-1", "provider-1", thread, name, doc, i, i, "deployed" if i == 0 else None),
        )


# The entries each seed document should become, computed by the database from the original.
EXPECTED_ENTRIES = """
SELECT s.id, CASE WHEN jsonb_typeof(s.trace_data) = 'array' THEN s.trace_data
                  WHEN jsonb_typeof(s.trace_data -> 'automation_trace') = 'array' THEN s.trace_data -> 'automation_trace'
                  ELSE '[]'::jsonb END AS expected
  FROM automation_traces_seed s
"""


def test_a_seed_database_is_converted_with_every_row_kept(fresh_db_url, caplog):
    from tracedb import AutomationTraceDB
    from tracedb.migrations import SEED_TABLE, seed_conversion

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _make_seed(conn, SEED_DOCS)
        seed_rows = conn.execute(
            "SELECT id::text, user_id, provider_id, thread_id, name, created_at, updated_at"
            " FROM automation_traces ORDER BY name"
        ).fetchall()
    with caplog.at_level("INFO", logger="tracedb"), AutomationTraceDB(fresh_db_url) as db:
        pass
    assert f"converted {len(SEED_DOCS)} of {len(SEED_DOCS)} rows" in caplog.text
    with AutomationTraceDB(fresh_db_url) as db:
        for sid, user, provider, thread, name, created, updated in seed_rows:
            trace = db.get_summary(sid)  # entries are compared in SQL below
            assert (trace.user_id, trace.provider_id, trace.thread_id, trace.name) == (
                user,
                provider,
                thread,
                name,
            )
            assert (trace.created_at, trace.updated_at) == (created, updated)
        assert db.count_traces() == len(SEED_DOCS)  # one trace per row, rows of one thread not merged
        listed = {s.name: s for s in db.list_traces(limit=100).items}
        assert listed["a list"].error_count == 1 and listed["a list"].nodes == [
            "agent_tool_node",
            "inputer_agent",
        ]
        assert listed["a list"].total_duration_ms == pytest.approx(1500.0)
        assert listed["a list"].metadata == {"seed_columns": {"deployment_status": "deployed"}}
        assert listed["a dict with more"].metadata == {"seed_trace_data": {"messages": ["hi"]}}
        assert listed["a scalar"].metadata == {"seed_trace_data": "just text"}
        assert listed["a dict without the list"].metadata == {"seed_trace_data": {"steps": 3}}
        assert listed["empty"].entry_count == 0 and listed["sql null"].entry_count == 0
        assert listed["json null"].entry_count == 0 and listed["too deep for python"].entry_count == 2
        assert db.load_trace_by_thread("chat-1").name == "a dict without the list"  # the newest
        assert db.count_traces(TraceFilter(text="send_gmail")) == 1
        status = db.server_status()
        assert status.tables[SEED_TABLE] == len(SEED_DOCS)
        assert "trace_data jsonb" in status.columns[SEED_TABLE]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        # every entry exactly as the seed stored it, compared by the database (numbers included)
        differ = conn.execute(
            f"SELECT x.id FROM ({EXPECTED_ENTRIES}) x WHERE tracedb_trace_data(x.id) IS DISTINCT FROM x.expected"
        ).fetchall()
        assert differ == []
        state = seed_conversion(conn)
        assert (state.total, state.converted, state.finished) == (len(SEED_DOCS), len(SEED_DOCS), True)
        # the original stays, renamed with its indexes; tracedb's indexes have their own names
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (SEED_TABLE,))
        }
        assert {"automation_traces_seed_pkey", "idx_automation_traces_seed_user_id"} <= indexes
        assert conn.execute("SELECT count(*) FROM automation_traces_seed").fetchone()[0] == len(SEED_DOCS)


def test_the_status_command_opens_a_seed_database(fresh_db_url, capsys):
    from tracedb.cli import main

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _make_seed(conn, {"one": "[1]"})
    assert main(["--url", fresh_db_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "automation_traces_seed" in out and "      trace_data jsonb" in out
    assert main(["--url", fresh_db_url, "init"]) == 0
    assert "converted 1 of 1 rows" in capsys.readouterr().out


def test_an_interrupted_conversion_goes_on_where_it_stopped(fresh_db_url, monkeypatch):
    import functools

    from tracedb import migrations

    docs = {f"row {i}": f'[{{"i": {i}}}, {{"j": {i}}}]' for i in range(50)}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _make_seed(conn, docs)
        real = migrations.convert_seed_table
        monkeypatch.setattr(
            migrations, "convert_seed_table", functools.partial(real, batch_size=7, max_batches=2)
        )
        migrate(conn)  # stops after two batches, as an interrupted process would
        assert conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0] == 14
        assert migrations.seed_conversion(conn).converted == 14
        monkeypatch.setattr(migrations, "convert_seed_table", real)
        migrate(conn)
        migrate(conn)
        assert conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0] == 50
        assert conn.execute("SELECT count(*) FROM automation_trace_entries").fetchone()[0] == 100
        state = migrations.seed_conversion(conn)
        assert (state.converted, state.finished) == (50, True)
        # a trace deleted after the conversion is not brought back by a later open
        conn.execute("DELETE FROM automation_traces WHERE name = 'row 3'")
        migrate(conn)
        assert conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0] == 49


def test_a_killed_conversion_loses_nothing_and_converts_nothing_twice(fresh_db_url, monkeypatch):
    import functools
    import signal
    import subprocess
    import sys
    import time

    from tracedb import migrations

    docs = {
        f"row {i}": "[" + ", ".join(f'{{"n": {i}, "k": {k}}}' for k in range(5)) + "]" for i in range(3000)
    }
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _make_seed(conn, docs)
        monkeypatch.setattr(
            migrations, "convert_seed_table", functools.partial(migrations.convert_seed_table, max_batches=0)
        )
        migrate(conn)  # tables made, nothing converted yet
        assert migrations.seed_conversion(conn).converted == 0
        code = (
            "import psycopg, sys; from tracedb.migrations import convert_seed_table\n"
            "with psycopg.connect(sys.argv[1], autocommit=True) as c: convert_seed_table(c, batch_size=20)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code, fresh_db_url])
        deadline = time.monotonic() + 60
        while migrations.seed_conversion(conn).converted < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = migrations.seed_conversion(conn).converted
        assert 200 <= done < 3000, done
        assert conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0] == done
        monkeypatch.undo()
        migrate(conn)
        assert conn.execute("SELECT count(*) FROM automation_traces").fetchone()[0] == 3000
        assert conn.execute("SELECT count(*) FROM automation_trace_entries").fetchone()[0] == 15000
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT data FROM automation_trace_entries GROUP BY data HAVING count(*) > 1) d"
        ).fetchone()[0]
        assert dupes == 0


def test_a_foreign_automation_traces_table_is_a_clear_error(fresh_db_url):
    from tracedb.errors import TraceDBError

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE automation_traces (id int)")
        with pytest.raises(TraceDBError, match="neither tracedb's nor the seed's"):
            migrate(conn)


def _migrate_to(conn: psycopg.Connection, version: int) -> None:
    """Apply the migrations up to ``version`` as migrate does, recorded as applied."""
    from tracedb.migrations import CREATE_VERSION_TABLE

    with conn.transaction():
        conn.execute(CREATE_VERSION_TABLE)
        for mig in load_migrations():
            if mig.version > version:
                break
            conn.execute(mig.sql)
            conn.execute(
                "INSERT INTO tracedb_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.checksum),
            )


def test_entries_indexed_before_entry_words_get_theirs(fresh_db_url):
    """A database whose entries were indexed before searches of several words went through a
    row of words per entry gets those rows for every indexed entry when it is migrated (and
    none for entries not indexed yet, which searches read directly): a phrase is found in
    both traces at once."""
    import json
    import uuid

    from tracedb import AutomationTraceDB

    a, b = (f"w{uuid.uuid4().hex[:8]}" for _ in range(2))
    append = "SELECT trace_id FROM tracedb_append(NULL, 'u', NULL, %s, NULL, %s::jsonb, NULL, NULL, NULL)"
    index = "SELECT tracedb_index_traces(%s::uuid[])"
    previous = 19  # the last migration before the entry rows
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _migrate_to(conn, previous)
        docs = [{"d": {"output": f"{a} {b}"}, "n": "x"}, {"d": {"output": a}, "n": "y"}]
        indexed = conn.execute(append, ("th-1", json.dumps(docs))).fetchone()[0]
        conn.execute(index, ([indexed],))
        partly = conn.execute(append, ("th-2", json.dumps(docs[1:]))).fetchone()[0]
        conn.execute(index, ([partly],))
        conn.execute(append, ("th-2", json.dumps(docs[:1])))  # not indexed yet
        applied = migrate(conn)
        assert applied == [m.name for m in load_migrations() if m.version > previous]
        rows = conn.execute(
            "SELECT trace_id, seq, words IS NOT NULL FROM automation_trace_entry_words ORDER BY trace_id, seq"
        ).fetchall()
        assert sorted(rows) == sorted([(indexed, 0, True), (indexed, 1, True), (partly, 0, True)])
    with AutomationTraceDB(fresh_db_url) as db:
        phrase = TraceFilter(text=f'"{a} {b}"')
        assert {s.id for s in db.list_traces(phrase).items} == {str(indexed), str(partly)}
        db.index_pending()
        assert {s.id for s in db.list_traces(phrase).items} == {str(indexed), str(partly)}
        assert db.count_traces(TraceFilter(text=f'"{b} {a}"')) == 0


def test_functions_that_handle_errors_never_run_in_a_parallel_worker(fresh_db_url):
    """A PL/pgSQL function with an EXCEPTION clause cannot run while a parallel plan runs
    (in a worker or in its leader); those of tracedb are parallel unsafe, so a query that
    calls them is planned without workers instead of failing."""
    import base64
    import os

    from tracedb import AutomationTraceDB, filters

    with AutomationTraceDB(fresh_db_url) as db:
        db.save_trace("u", None, "th", [{"node": "a", "output": "b c"}])
        # too big to keep its words: its confirmation calls tracedb_entry_matches
        db.save_trace(
            "u",
            None,
            "th-2",
            [{"node": "a", "output": "b c " + base64.b64encode(os.urandom(70_000)).decode()}],
        )
        db.index_pending()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        unsafe = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE l.lanname = 'plpgsql' AND p.proparallel <> 'u' AND p.proname LIKE 'tracedb%%'"
            " AND p.prosrc ~* '\\mEXCEPTION\\M'"
        ).fetchall()
        assert unsafe == []
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        setting = "debug_parallel_query" if int(version) >= 160000 else "force_parallel_mode"
        with conn.transaction():  # SET LOCAL: also behind a transaction-mode pooler
            conn.execute(f"SET LOCAL {setting} = on")
            rows = conn.execute(
                "SELECT tracedb_entry_words(e.data) IS NOT NULL,"
                " tracedb_entry_matches(e.data, 'b <-> c'::tsquery),"
                " tracedb_block_vector(ARRAY[e.seq], ARRAY[e.data]) IS NOT NULL"
                " FROM automation_trace_entries e WHERE e.trace_id IN (SELECT id FROM automation_traces WHERE thread_id = 'th')"
            ).fetchall()
            count = conn.execute(*filters.count_query(TraceFilter(text='"b c"'))).fetchone()[0]
        assert rows == [(True, True, True)]
        assert count == 2
