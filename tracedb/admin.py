"""What ``python -m tracedb status`` reports: server, version, tables, indexes, functions."""

from __future__ import annotations

from typing import Any

TABLES = ("automation_traces", "automation_trace_entries", "automation_trace_search", "tracedb_migrations")

STATUS_QUERIES = {
    "version": "SELECT version() AS v",
    "migrations": "SELECT name FROM tracedb_migrations ORDER BY version",
    "indexes": """
        SELECT indexname FROM pg_indexes
         WHERE schemaname = current_schema() AND tablename = ANY(%s) ORDER BY tablename, indexname""",
    "functions": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS f
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = current_schema() AND p.proname LIKE 'tracedb%%' ORDER BY 1""",
}


def server_status(db: Any) -> dict[str, Any]:
    """Server label, version, migrations, exact row counts per table, indexes, functions."""
    from psycopg import sql

    with db._conn() as conn:
        version = conn.execute(STATUS_QUERIES["version"]).fetchone()["v"]
        migrations = [r["name"] for r in conn.execute(STATUS_QUERIES["migrations"]).fetchall()]
        tables = {}
        for table in TABLES:
            row = conn.execute(
                sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
            ).fetchone()
            tables[table] = row["n"]
        indexes = [
            r["indexname"] for r in conn.execute(STATUS_QUERIES["indexes"], (list(TABLES),)).fetchall()
        ]
        functions = [r["f"] for r in conn.execute(STATUS_QUERIES["functions"]).fetchall()]
    return {
        "label": db.server.label,
        "version": version,
        "migrations": migrations,
        "tables": tables,
        "indexes": indexes,
        "functions": functions,
    }
