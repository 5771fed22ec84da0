"""Where the database is: TRACEDB_URL, or an embedded server reused across starts."""

from __future__ import annotations

import psycopg
import pytest

from tracedb import server


@pytest.mark.parametrize(
    "url,label",
    [
        ("postgresql://ana:secret@db.example:6543/traces", "postgresql://ana@db.example:6543/traces"),
        ("postgresql:///tracedb", "postgresql://local socket/tracedb"),
        ("postgresql://postgres:@/postgres?host=/tmp/pg", "postgresql://postgres@/tmp/pg/postgres"),
        ("host=db port=5432 dbname=t user=u password=secret", "host=db port=5432 dbname=t user=u"),
    ],
)
def test_describe_url_never_shows_a_password(url, label):
    assert server.describe_url(url) == label
    assert "secret" not in server.describe_url(url)


def test_env_url_wins(monkeypatch):
    monkeypatch.setenv("TRACEDB_URL", "postgresql://u:pw@h/db")
    info = server.resolve_url()
    assert info.url == "postgresql://u:pw@h/db" and not info.embedded and "pw" not in info.label


def test_embedded_server_starts_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.delenv("TRACEDB_URL", raising=False)
    monkeypatch.setenv("TRACEDB_DATA_DIR", str(tmp_path / "pgdata"))
    info = server.resolve_url()
    try:
        assert info.embedded and str(tmp_path) in info.label
        with psycopg.connect(info.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        again = server.resolve_url()
        assert again.url == info.url
        assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    finally:
        server.stop_embedded(tmp_path / "pgdata")


def test_read_url_follows_the_primary_it_belongs_to(monkeypatch):
    monkeypatch.setenv("TRACEDB_URL", "postgresql://h/db")
    monkeypatch.setenv("TRACEDB_READ_URL", "postgresql://replica/db")
    assert server.resolve_read_url() == "postgresql://replica/db"
    assert server.resolve_read_url("postgresql://h/db") == "postgresql://replica/db"
    # another server than TRACEDB_URL: the replica of TRACEDB_URL is not its replica
    assert server.resolve_read_url("postgresql://other/db") is None
    assert server.resolve_read_url("postgresql://other/db", "postgresql://r2/db") == "postgresql://r2/db"
    monkeypatch.delenv("TRACEDB_URL")
    assert server.resolve_read_url() is None  # the embedded server has no replica


def test_read_label_never_shows_a_password():
    info = server.ServerInfo(
        "postgresql://h/db", False, "h", read_url="postgresql://u:secret@replica:5433/db"
    )
    assert info.read_label == "postgresql://u@replica:5433/db"
