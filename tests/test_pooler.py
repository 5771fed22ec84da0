"""What working behind a transaction pooler asks of the code, checked without a pooler:
prepared statements can be turned off, and nothing relies on session state.

The suites of the store, the recorder, the migrations, the checkpointer and a dashboard page
also run through a real PgBouncer in transaction mode (``.ci/run``: ``pytest --pgbouncer``).
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from agent.checkpoint import connection_kwargs
from tracedb import AutomationTraceDB, TraceFilter
from tracedb.server import use_prepared_statements

ROOT = Path(__file__).resolve().parent.parent

# Session state a pooler in transaction mode does not keep: a statement of it names what
# a later transaction might find on another server connection, or not at all.
SESSION_STATE = re.compile(
    r"pg_(?:try_)?advisory_(?:un)?lock(?:_shared)?\s*\("  # session-level advisory locks
    # SET name = ... starting a statement (not SET LOCAL, not the SET of an UPDATE)
    r"|(?:;|\bBEGIN|\bTHEN|\bELSE|\bLOOP|[\"'])\s*SET\s+(?!LOCAL\b)(?:SESSION\s+)?\w+\s*(?:=|\bTO\b)"
    r"|set_config\s*\([^)]*,\s*false\s*\)"  # set_config(..., false)
    r"|(?-i:\b(?:LISTEN|PREPARE)\s+\w+|\bWITH\s+HOLD\b)"  # SQL keywords, not Python names
    r"|CREATE\s+TEMP(?:ORARY)?\s+TABLE",
    re.IGNORECASE,
)


# Session settings that only tune a session of the store's own: applied where prepared
# statements are on (never behind a transaction pooler), and nothing depends on them.
TUNING_ONLY = {("tracedb/queries.py", '"SET jit =')}


def _sources() -> list[Path]:
    return [
        *sorted((ROOT / "sql").glob("*.sql")),
        *sorted((ROOT / "tracedb").glob("*.py")),
        *sorted((ROOT / "agent").glob("*.py")),
        *sorted((ROOT / "dashboard").glob("*.py")),
        *sorted((ROOT / "pages").glob("*.py")),
    ]


def test_no_statement_relies_on_session_state() -> None:
    found = []
    for path in _sources():
        text = path.read_text()
        # comments say why, and may name what is avoided
        comment = re.compile(r"--[^\n]*" if path.suffix == ".sql" else r"#[^\n]*")
        code = comment.sub(lambda m: " " * len(m.group()), text)
        for match in SESSION_STATE.finditer(code):
            if (str(path.relative_to(ROOT)), match.group().strip()) in TUNING_ONLY:
                continue
            line = code.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {match.group().strip()}")
    assert found == []


def test_the_pattern_finds_session_state() -> None:
    for statement in (
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock(%s)",
        'conn.execute("SET statement_timeout = 1000")',
        "SELECT set_config('statement_timeout', '1s', false)",
        "LISTEN traces",
        "CREATE TEMP TABLE x (i int)",
        "BEGIN\n    SET search_path = x;",
    ):
        assert SESSION_STATE.search(statement), statement
    for statement in (
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT set_config('statement_timeout', %(timeout)s, true)",
        'conn.execute("SET LOCAL statement_timeout = 1000")',
        "prepare if conn.prepare_threshold is not None",
        "UPDATE automation_traces t SET name = %(name)s",
        "ON CONFLICT (trace_id, block) DO UPDATE\n       SET words = s.words",
    ):
        assert not SESSION_STATE.search(statement), statement


def test_no_function_takes_a_session_lock(db_url: str) -> None:
    with AutomationTraceDB(db_url):
        pass
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = current_schema() AND p.prosrc ~* 'pg_(try_)?advisory_lock(_shared)?\\s*\\('"
        ).fetchall()
    assert rows == []


@pytest.mark.parametrize(
    "value,expected",
    [("", True), ("1", True), ("on", True), ("TRUE", True), ("0", False), ("off", False), ("no", False)],
)
def test_prepare_setting(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("TRACEDB_PREPARE", value)
    assert use_prepared_statements() is expected
    assert use_prepared_statements(not expected) is (not expected)
    assert connection_kwargs()["prepare_threshold"] == (0 if expected else None)


def test_a_wrong_prepare_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("TRACEDB_PREPARE", "sometimes")
    with pytest.raises(ValueError, match="TRACEDB_PREPARE must be"):
        AutomationTraceDB(db_url)


@pytest.mark.server_sessions
@pytest.mark.parametrize("prepare", [False, True])
def test_without_prepared_statements_nothing_is_prepared(db_url: str, ids, entries, prepare: bool) -> None:
    """With prepare=False the store's one connection holds no prepared statement after every
    kind of statement ran many times; with prepare=True it does (so the check can fail)."""
    with AutomationTraceDB(db_url, min_size=1, max_size=1, prepare=prepare) as db:
        user = ids("u")
        for _ in range(8):
            tid = db.save_trace(user, None, ids("t"), entries(2))
            db.append_entries(entries(1), trace_id=tid, status="completed")
            db.load_trace_by_id(tid)
            db.get_summary(tid)
            db.entry_columns(tid)
            db.list_traces(TraceFilter(user_id=user))
            db.count_traces_bounded(TraceFilter(user_id=user))
        with db.pool.connection() as conn:
            held = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"]
    assert (held > 0) is prepare


@pytest.mark.server_sessions
def test_migrations_prepare_nothing_on_any_connection(fresh_db_url: str) -> None:
    """Even on a connection that prepares every statement, migrating (one INSERT per
    migration, the same statements per converted row) leaves nothing prepared, and the
    connection keeps its setting."""
    from tracedb.migrations import migrate, seed_conversion

    with psycopg.connect(fresh_db_url, autocommit=True, prepare_threshold=0) as conn:
        assert migrate(conn) and migrate(conn) == []
        for _ in range(3):
            seed_conversion(conn)
        held = conn.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()[0]
        assert held == 0
        assert conn.prepare_threshold == 0
