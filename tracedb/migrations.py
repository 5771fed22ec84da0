"""Apply the numbered SQL migrations in ``sql/`` once each, in order."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psycopg

from .errors import MigrationChanged

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^(\d{3})_[\w-]+\.sql$")
# Any constant works; it only has to be the same in every process.
_MIGRATION_LOCK = 0x7472616365_6462

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS tracedb_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@lru_cache(maxsize=1)
def load_migrations(sql_dir: Path = SQL_DIR) -> tuple[Migration, ...]:
    """The migrations found in ``sql_dir``, ordered by number."""
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number in {sql_dir}")
    return tuple(found)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied.

    Safe to run from several processes at once: an advisory lock serialises them.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(CREATE_VERSION_TABLE)
        conn.execute("ALTER TABLE tracedb_migrations ADD COLUMN IF NOT EXISTS checksum text")
        rows = conn.execute("SELECT version, checksum FROM tracedb_migrations").fetchall()
        done = {(r[0], r[1]) if isinstance(r, tuple) else (r["version"], r["checksum"]) for r in rows}
        done_sums = dict(done)
        for mig in load_migrations():
            if mig.version in done_sums:
                recorded = done_sums[mig.version]
                # Migrations are never edited once applied: a changed file would leave this
                # database with a schema the code no longer expects.
                if recorded is not None and recorded != mig.checksum:
                    raise MigrationChanged(
                        f"{mig.name} differs from the version applied to this database; "
                        "migrations must not change once applied (add a new one instead)"
                    )
                continue
            conn.execute(mig.sql)
            conn.execute(
                "INSERT INTO tracedb_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.checksum),
            )
            applied.append(mig.name)
    return applied
