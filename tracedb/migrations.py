"""Apply the numbered SQL migrations in ``sql/`` once each, in order; convert the seed's
table when a database holds it.

The seed stored each trace as one JSONB document in a table also called
``automation_traces`` (``id uuid, user_id, provider_id, thread_id, name, trace_data jsonb,
created_at, updated_at``). On a database that holds it and none of tracedb's schema, the
first migration renames it to ``automation_traces_seed`` (and its indexes) before creating
tracedb's tables; then every row becomes a trace with its entries, keeping its id, user,
provider, thread, name and times (see :func:`convert_seed_table`). The renamed table stays
until its owner drops it.

The migrations are ``sql/`` at the top of a checkout and ``tracedb/sql`` in an installed
wheel (see :func:`find_sql_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .errors import MigrationChanged, TraceDBError
from .jsonsafe import TRACE_KEY, dumps, entry_columns

log = logging.getLogger("tracedb")


def find_sql_dir() -> Path:
    """Where the migrations are: inside the installed package (a wheel carries them as
    ``tracedb/sql``), else at the top of the checkout this module runs from."""
    here = Path(__file__).resolve().parent
    packaged = here / "sql"
    return packaged if packaged.is_dir() else here.parent / "sql"


SQL_DIR = find_sql_dir()
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
    if not found:
        raise RuntimeError(f"no migrations in {sql_dir}: this tracedb installation is incomplete")
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number in {sql_dir}")
    return tuple(found)


@contextmanager
def _unprepared(conn: psycopg.Connection) -> Iterator[None]:
    """Run the block without server-side prepared statements, whatever the connection's
    setting: migrations run rarely, repeat statements (one per migration, one per converted
    row) and must work on any connection, also one behind a transaction pooler, where a
    statement prepared on one server connection is missing on the next."""
    saved = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        yield
    finally:
        conn.prepare_threshold = saved


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied.

    Safe to run from several processes at once: an advisory lock serialises them.
    """
    with _unprepared(conn):
        return _migrate(conn)


def _is_current(conn: psycopg.Connection) -> bool:
    """Whether every migration is recorded as applied (as it is, unchanged): then opening a
    store takes no lock and changes no schema, so a role with only the rights to read and
    write rows can open it."""
    with conn.transaction():
        row = conn.execute(
            "SELECT count(*) FROM pg_attribute"
            " WHERE attrelid = to_regclass('tracedb_migrations') AND attname = 'checksum' AND NOT attisdropped"
        ).fetchone()
        if not (row[0] if isinstance(row, tuple) else row["count"]):
            return False
        done = _recorded(conn)
    return all(m.version in done and done[m.version] in (None, m.checksum) for m in load_migrations())


def _recorded(conn: psycopg.Connection) -> dict[int, str | None]:
    """The migrations recorded as applied: version -> checksum (None for rows from before
    checksums were kept)."""
    rows = conn.execute("SELECT version, checksum FROM tracedb_migrations").fetchall()
    return dict((r[0], r[1]) if isinstance(r, tuple) else (r["version"], r["checksum"]) for r in rows)


def _migrate(conn: psycopg.Connection) -> list[str]:
    applied: list[str] = []
    if _is_current(conn):
        convert_seed_table(conn)  # a conversion that was interrupted goes on
        return applied
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(CREATE_VERSION_TABLE)
        conn.execute("ALTER TABLE tracedb_migrations ADD COLUMN IF NOT EXISTS checksum text")
        done_sums = _recorded(conn)
        if 1 not in done_sums:
            _set_seed_table_aside(conn)
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
    convert_seed_table(conn)
    return applied


# -- the seed's table ------------------------------------------------------------------------

SEED_TABLE = "automation_traces_seed"
# The seed's columns; any other column a seed table has is kept in the trace's metadata.
SEED_COLUMNS = ("id", "user_id", "provider_id", "thread_id", "name", "trace_data", "created_at", "updated_at")
SEED_BATCH = 200
# What a NULL user or thread of a seed row becomes (tracedb requires both).
SEED_UNKNOWN = "(none)"

CREATE_SEED_PROGRESS = """
CREATE TABLE IF NOT EXISTS tracedb_seed_conversion (
    source      text PRIMARY KEY,
    total       bigint      NOT NULL,
    converted   bigint      NOT NULL DEFAULT 0,
    last_id     uuid,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
)
"""


@dataclass(frozen=True)
class SeedConversion:
    """How far the conversion of the seed's table has come."""

    table: str
    total: int
    converted: int
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


def _one_value(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    if row is None:
        return None
    return row[0] if isinstance(row, tuple) else next(iter(row.values()))


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {r[0] if isinstance(r, tuple) else r["column_name"] for r in rows}


def _set_seed_table_aside(conn: psycopg.Connection) -> None:
    """Before tracedb's first migration: rename a seed table found under tracedb's name, with
    its indexes (their names would collide with tracedb's), and note what is to convert.
    Runs in the migrations' transaction, so either everything happens or nothing."""
    found = _columns(conn, "automation_traces")
    if not found:
        return
    if "trace_data" not in found:
        raise TraceDBError(
            "this database has a table automation_traces that is neither tracedb's nor the seed's "
            "(it has no trace_data column); rename or drop it, or use another database"
        )
    if _columns(conn, SEED_TABLE):
        raise TraceDBError(
            f"this database holds both the seed's automation_traces and a table {SEED_TABLE}; "
            f"rename or drop {SEED_TABLE} so that the seed's table can be kept under that name"
        )
    conn.execute(sql.SQL("ALTER TABLE automation_traces RENAME TO {}").format(sql.Identifier(SEED_TABLE)))
    indexes = conn.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass ORDER BY 1",
        (SEED_TABLE,),
    ).fetchall()
    for row in indexes:
        old = row[0] if isinstance(row, tuple) else row["relname"]
        new = old.replace("automation_traces", SEED_TABLE) if "automation_traces" in old else f"{old}_seed"
        new = new[:63]
        n = 1
        while _one_value(conn, "SELECT to_regclass(%s) IS NOT NULL", (new,)):
            n += 1
            new = f"{new[:58]}_{n}"
        # Renaming an index renames the constraint it backs (the primary key) too.
        conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))
    conn.execute(CREATE_SEED_PROGRESS)
    total = _one_value(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SEED_TABLE)))
    conn.execute(
        "INSERT INTO tracedb_seed_conversion (source, total) VALUES (%s, %s) ON CONFLICT (source) DO NOTHING",
        (SEED_TABLE, total),
    )
    log.info("found the seed's automation_traces (%d rows): kept as %s, converting it", total, SEED_TABLE)


def seed_conversion(conn: psycopg.Connection) -> SeedConversion | None:
    """The state of the seed table's conversion, or None when this database never had one."""
    with _unprepared(conn):  # polled by callers: it must not prepare behind a pooler either
        if _one_value(conn, "SELECT to_regclass('tracedb_seed_conversion') IS NULL"):
            return None
        row = conn.execute(
            "SELECT total, converted, finished_at FROM tracedb_seed_conversion WHERE source = %s",
            (SEED_TABLE,),
        ).fetchone()
    if row is None:
        return None
    values = row if isinstance(row, tuple) else (row["total"], row["converted"], row["finished_at"])
    return SeedConversion(SEED_TABLE, int(values[0]), int(values[1]), values[2])


def _seed_entries(trace_data: Any) -> list[Any]:
    """The entries of a seed row's trace_data (the rest of it goes to metadata in SQL)."""
    if isinstance(trace_data, list):
        return trace_data
    if isinstance(trace_data, dict) and isinstance(trace_data.get(TRACE_KEY), list):
        return trace_data[TRACE_KEY]
    return []


_SEED_BATCH_ROWS = sql.SQL(
    "SELECT id::text AS id, user_id::text AS user_id, provider_id::text AS provider_id,"
    " thread_id::text AS thread_id, name::text AS name, created_at, updated_at,"
    " trace_data::text AS trace_data, to_jsonb(s) - %(seed_columns)s::text[] AS extra"
    " FROM {} s WHERE (%(after)s::uuid IS NULL OR s.id > %(after)s::uuid) ORDER BY s.id LIMIT %(batch)s"
).format(sql.Identifier(SEED_TABLE))

# The seed's JSON is moved inside the database, never through Python, so every value stays
# exactly as stored (numbers keep every digit). What trace_data held besides its list of
# entries (other keys of a dict, or a value that is no list at all) is kept in metadata.
_INSERT_CONVERTED = sql.SQL(
    """
INSERT INTO automation_traces (id, user_id, provider_id, thread_id, name, status, metadata, created_at, updated_at)
SELECT s.id, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s, 'completed',
       %(metadata)s::jsonb || CASE
           WHEN s.trace_data IS NULL OR jsonb_typeof(s.trace_data) IN ('array', 'null') THEN '{{}}'::jsonb
           WHEN jsonb_typeof(s.trace_data -> 'automation_trace') = 'array' THEN
               CASE WHEN (s.trace_data - 'automation_trace') = '{{}}'::jsonb THEN '{{}}'::jsonb
                    ELSE jsonb_build_object('seed_trace_data', s.trace_data - 'automation_trace') END
           ELSE jsonb_build_object('seed_trace_data', s.trace_data) END,
       coalesce(%(created_at)s, %(updated_at)s, now()), coalesce(%(updated_at)s, %(created_at)s, now())
  FROM {seed} s WHERE s.id = %(id)s::uuid
ON CONFLICT (id) DO NOTHING
"""
).format(seed=sql.Identifier(SEED_TABLE))
# Each entry wrapped as tracedb_append expects it: {"d": entry} and the columns read from it
# in Python (times, duration, error flag), or none for a document Python cannot read.
_APPEND_CONVERTED = sql.SQL(
    "SELECT entry_count FROM tracedb_append(%(id)s::uuid, NULL, NULL, NULL, NULL, ("
    " SELECT coalesce(jsonb_agg(jsonb_build_object('d', e.x)"
    " || coalesce(%(columns)s::jsonb -> (e.o - 1)::integer, '{{}}'::jsonb) ORDER BY e.o), '[]'::jsonb)"
    " FROM {seed} s, jsonb_array_elements(CASE WHEN jsonb_typeof(s.trace_data) = 'array' THEN s.trace_data"
    " WHEN jsonb_typeof(s.trace_data -> 'automation_trace') = 'array' THEN s.trace_data -> 'automation_trace'"
    " ELSE '[]'::jsonb END) WITH ORDINALITY AS e(x, o) WHERE s.id = %(id)s::uuid),"
    " NULL, NULL, NULL)"
).format(seed=sql.Identifier(SEED_TABLE))


def _convert_row(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    metadata: dict[str, Any] = {}
    extra = {k: v for k, v in (row["extra"] or {}).items() if v is not None}
    if extra:
        metadata["seed_columns"] = extra
    nulls = [k for k in ("user_id", "thread_id") if row[k] is None]
    if nulls:
        metadata["seed_nulls"] = nulls
    params = {
        "id": row["id"],
        "user_id": row["user_id"] if row["user_id"] is not None else SEED_UNKNOWN,
        "provider_id": row["provider_id"],
        "thread_id": row["thread_id"] if row["thread_id"] is not None else SEED_UNKNOWN,
        "name": row["name"],
        "metadata": dumps(metadata),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if conn.execute(_INSERT_CONVERTED, params).rowcount == 0:
        return  # converted already (a trace of this id exists): never twice
    try:
        entries = _seed_entries(json.loads(row["trace_data"]) if row["trace_data"] is not None else None)
        columns: str | None = "[" + ",".join(dumps(entry_columns(e)) for e in entries) + "]"
    except (RecursionError, ValueError):  # deeper than Python follows, or a number of 4,300+ digits
        columns = None
    conn.execute(_APPEND_CONVERTED, {"id": row["id"], "columns": columns})


def _convert_seed_table(
    conn: psycopg.Connection, *, batch_size: int = SEED_BATCH, max_batches: int | None = None
) -> SeedConversion | None:
    state = seed_conversion(conn)
    if state is None or state.finished:
        return state
    batches = 0
    from psycopg.rows import dict_row

    while max_batches is None or batches < max_batches:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "SELECT last_id::text AS last_id, finished_at FROM tracedb_seed_conversion"
                " WHERE source = %s FOR UPDATE",
                (SEED_TABLE,),
            )
            progress = cur.fetchone()
            if progress is None or progress["finished_at"] is not None:
                break
            cur.execute(
                _SEED_BATCH_ROWS,
                {"seed_columns": list(SEED_COLUMNS), "after": progress["last_id"], "batch": batch_size},
            )
            rows = cur.fetchall()
            if not rows:
                cur.execute(
                    "UPDATE tracedb_seed_conversion SET finished_at = now() WHERE source = %s", (SEED_TABLE,)
                )
                break
            # The converted traces keep the seed's times (see sql/004).
            cur.execute("SELECT set_config('tracedb.keep_times', 'on', true)")
            for row in rows:
                _convert_row(cur.connection, row)
            cur.execute(
                "UPDATE tracedb_seed_conversion SET last_id = %s, converted = converted + %s WHERE source = %s",
                (rows[-1]["id"], len(rows), SEED_TABLE),
            )
        batches += 1
    state = seed_conversion(conn)
    if state is not None:
        log.info(
            "converted %d of %d rows of the seed's automation_traces into traces%s; the original "
            "is kept as %s until you drop it",
            state.converted,
            state.total,
            "" if state.finished else " so far (the next open of the store goes on)",
            SEED_TABLE,
        )
    return state


def convert_seed_table(
    conn: psycopg.Connection, *, batch_size: int = SEED_BATCH, max_batches: int | None = None
) -> SeedConversion | None:
    """Convert the seed table's rows not converted yet, in batches; return how far it got.

    Each batch is one transaction that also records its progress, so an interrupted
    conversion loses nothing and converts nothing twice: the next open of the store goes on
    where it stopped. Several processes may run it at once (an advisory lock takes turns).
    ``max_batches`` stops early (for tests of an interruption).
    """
    with _unprepared(conn):
        return _convert_seed_table(conn, batch_size=batch_size, max_batches=max_batches)
