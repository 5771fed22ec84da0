"""Migrations on a real PostgreSQL: applied once each, in order, recorded."""

from __future__ import annotations

import threading

import psycopg
import pytest

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
