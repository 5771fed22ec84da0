"""The schema stays ready for a distributed PostgreSQL (Citus), checked over the catalog.

Citus enforces a primary key, a unique constraint or an exclusion constraint only when it
contains the table's distribution column, and a foreign key between distributed tables only
when both are co-located and the key joins their distribution columns. The plan in
docs/scaling.md distributes the trace tables by trace id and LangGraph's checkpoint tables
by thread id; everything else stays on the coordinator. A new table must be placed here
(and in docs/scaling.md) before this test passes.
"""

from __future__ import annotations

import psycopg
import pytest

from agent import make_checkpointer
from tracedb import AutomationTraceDB

# table -> (distribution column, co-location group)
DISTRIBUTED = {
    "automation_traces": ("id", "traces"),
    "automation_trace_entries": ("trace_id", "traces"),
    "automation_trace_search": ("trace_id", "traces"),
    "automation_trace_entry_words": ("trace_id", "traces"),
    "checkpoints": ("thread_id", "checkpoints"),
    "checkpoint_blobs": ("thread_id", "checkpoints"),
    "checkpoint_writes": ("thread_id", "checkpoints"),
}
# The schema's own bookkeeping, read and written by migrations and the conversion of the
# seed's table (which exist only while a seed database is converted): local tables on the
# coordinator.
LOCAL = {"tracedb_migrations", "checkpoint_migrations", "tracedb_seed_conversion", "automation_traces_seed"}
# Small, read by every node, written rarely: copied to every node.
REFERENCE = {"tracedb_api_keys"}


@pytest.fixture(scope="module")
def catalog(db_url: str) -> psycopg.Connection:
    with AutomationTraceDB(db_url), make_checkpointer(db_url):
        pass
    with psycopg.connect(db_url) as conn:
        yield conn


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
    ).fetchall()
    return {r[0] for r in rows}


def test_every_table_has_a_place(catalog) -> None:
    tables = _tables(catalog)
    assert set(DISTRIBUTED) <= tables, "a table of the plan is missing"
    unplaced = tables - set(DISTRIBUTED) - LOCAL - REFERENCE
    assert unplaced == set(), "place these tables in DISTRIBUTED, LOCAL or REFERENCE and in docs/scaling.md"


def test_every_unique_key_contains_the_distribution_column(catalog) -> None:
    """Primary keys, unique constraints, unique indexes and exclusion constraints."""
    rows = catalog.execute(
        """
        SELECT t.relname, i.relname,
               ARRAY(SELECT a.attname FROM unnest(x.indkey[0:x.indnkeyatts - 1]) k(attnum)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS keys
          FROM pg_index x
          JOIN pg_class t ON t.oid = x.indrelid
          JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema()
           AND (x.indisunique OR x.indisexclusion)
        """
    ).fetchall()
    checked = set()
    for table, index, keys in rows:
        if table in DISTRIBUTED:
            column = DISTRIBUTED[table][0]
            assert column in keys, f"{index} on {table} ({', '.join(keys)}) lacks {column}"
            checked.add(table)
    assert checked == set(DISTRIBUTED)  # each distributed table has its primary key


def test_foreign_keys_join_co_located_distribution_columns(catalog) -> None:
    rows = catalog.execute(
        """
        SELECT c.conname, src.relname, dst.relname,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY o),
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(attnum, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY o)
          FROM pg_constraint c
          JOIN pg_class src ON src.oid = c.conrelid
          JOIN pg_class dst ON dst.oid = c.confrelid
          JOIN pg_namespace n ON n.oid = src.relnamespace
         WHERE c.contype = 'f' AND n.nspname = current_schema()
        """
    ).fetchall()
    for name, src, dst, src_cols, dst_cols in rows:
        if dst in REFERENCE:
            continue
        assert src in DISTRIBUTED and dst in DISTRIBUTED, f"{name}: {src} -> {dst} crosses placements"
        (src_col, src_group), (dst_col, dst_group) = DISTRIBUTED[src], DISTRIBUTED[dst]
        assert src_group == dst_group, f"{name}: {src} and {dst} are not co-located"
        assert (src_col, dst_col) in zip(src_cols, dst_cols, strict=True), (
            f"{name} does not join {src}.{src_col} to {dst}.{dst_col}"
        )


def test_distribution_columns_are_not_null_and_co_located_by_type(catalog) -> None:
    types: dict[str, set[str]] = {}
    for table, (column, group) in DISTRIBUTED.items():
        row = catalog.execute(
            "SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a"
            " WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
            (table, column),
        ).fetchone()
        assert row is not None, f"{table}.{column} does not exist"
        assert row[1], f"{table}.{column} may be NULL"
        types.setdefault(group, set()).add(row[0])
    assert all(len(t) == 1 for t in types.values()), types


def test_no_sequence_feeds_a_distributed_table(catalog) -> None:
    """A sequence shared by every trace is a coordinator round trip per row on Citus (and a
    hot spot on one server): ids are UUIDs made by the client, seq numbers per trace."""
    rows = catalog.execute(
        "SELECT c.relname, a.attname FROM pg_attrdef d"
        " JOIN pg_class c ON c.oid = d.adrelid"
        " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%'"
    ).fetchall()
    assert [r for r in rows if r[0] in DISTRIBUTED] == []
