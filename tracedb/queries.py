"""Every fixed SQL statement tracedb runs, and the columns they read.

SQL is written one way: fixed statements are constants with named placeholders
(``%(name)s``), composed with :mod:`psycopg.sql` where a shared fragment (the summary
columns, the scope condition) goes into several; statements that depend on a filter are
built in :mod:`tracedb.filters`. No value is ever formatted into SQL text.
"""

from __future__ import annotations

from psycopg import sql

from .errors import InvalidTraceData

# -- the columns of a trace summary ----------------------------------------------------

SUMMARY_FIELDS = (
    "id",
    "user_id",
    "provider_id",
    "thread_id",
    "name",
    "status",
    "entry_count",
    "error_count",
    "nodes",
    "metadata",
    "first_started_at",
    "last_ended_at",
    "total_duration_ms",
    "turns",
    "dropped_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "last_error",
    "running",
    "heartbeat_at",
    "created_at",
    "updated_at",
)

# A running trace whose writer has not been heard from for %(abandon_after)s seconds (no
# append, no heartbeat) reads as abandoned: its process died or lost the database.
STALE = sql.SQL("coalesce(t.heartbeat_at, t.updated_at) < now() - make_interval(secs => %(abandon_after)s)")
STATUS = sql.SQL("CASE WHEN t.status = 'running' AND {stale} THEN 'abandoned' ELSE t.status END").format(
    stale=STALE
)


# A trace's tail: the entries quick appends stored that its row does not count yet (see
# sql/025), read by the primary key. Only a pending trace can have one: the others cost
# one test of a column, never a read.
_TAIL = "FROM automation_trace_entries e WHERE e.trace_id = t.id AND e.seq >= t.entry_count"


def _pending(column: str, with_tail: str) -> str:
    return f"CASE WHEN t.index_pending THEN {with_tail} ELSE t.{column} END"


def _summed(column: str) -> str:
    """A column of ``automation_traces t`` that adds up its entries' ``column``, with the
    tail's added (NULL stays NULL, as the row keeps it, while no entry had a value)."""
    return _pending(
        column, f"coalesce((SELECT coalesce(t.{column}, 0) + sum(e.{column}) {_TAIL}), t.{column})"
    )


# The columns of a trace that its tail changes, as they are with the tail. Every read of
# these columns goes through these expressions; the others (errors, nodes, first start,
# status, times) a quick append never changes.
LIVE = {
    "entry_count": _pending("entry_count", f"coalesce((SELECT max(e.seq) + 1 {_TAIL}), t.entry_count)"),
    "last_ended_at": _pending(
        "last_ended_at",
        f"greatest(t.last_ended_at, (SELECT max(coalesce(e.ended_at, e.started_at)) {_TAIL}))",
    ),
    "total_duration_ms": _pending(
        "total_duration_ms", f"t.total_duration_ms + coalesce((SELECT sum(e.duration_ms) {_TAIL}), 0)"
    ),
    "input_tokens": _summed("input_tokens"),
    "output_tokens": _summed("output_tokens"),
    "total_tokens": _summed("total_tokens"),
    "cost_usd": _summed("cost_usd"),
}
_LIVE_SQL = {name: sql.SQL(text) for name, text in LIVE.items()}


def summary_columns() -> sql.Composed:
    """The summary columns of ``automation_traces t`` (the id as text, the status as read)."""
    columns: list[sql.Composable] = []
    for name in SUMMARY_FIELDS:
        if name == "id":
            columns.append(sql.SQL("t.id::text AS id"))
        elif name == "status":
            columns.append(sql.SQL("{} AS status").format(STATUS))
        elif name in LIVE:
            columns.append(sql.SQL("{} AS {}").format(_LIVE_SQL[name], sql.Identifier(name)))
        else:
            columns.append(sql.Identifier("t", name))
    return sql.SQL(", ").join(columns)


SUMMARY = summary_columns()
SUMMARY_NAMES = sql.SQL(", ").join(sql.Identifier(name) for name in SUMMARY_FIELDS)

ENTRY_FIELDS = (
    "seq",
    "node",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "turn",
    "checkpoint_id",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
)
_ENTRY_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in ENTRY_FIELDS)

# -- fixed statements -------------------------------------------------------------------

APPEND = """
SELECT trace_id::text AS trace_id, first_seq, entry_count, written, in_sync, created, turn,
       duplicate, replaced, fingerprint, epoch
  FROM tracedb_append(%(trace_id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s,
                      %(entries)s::jsonb, %(offset)s, %(status)s, %(new_id)s, %(new_turn)s,
                      %(scope)s, %(batch)s, %(chain)s, %(replace)s, %(running)s, %(dropped)s)
"""

# Appends to traces given by id, many in one statement and transaction (see
# :mod:`tracedb.combine` and sql/019): each element of the arrays is one append; a row with
# a NULL trace_id is an append that was not run (its trace was held by another transaction,
# or is not there for its user to see). The entries of all come as one JSON array (an array
# of large texts costs more to send than the appends save).
APPEND_MANY = """
SELECT ord, trace_id::text AS trace_id, first_seq, entry_count, written, in_sync, created, turn,
       duplicate, replaced, fingerprint, epoch
  FROM tracedb_append_many(%(ord)s::integer[], %(trace_id)s::uuid[], %(name)s::text[],
                           %(entries)s::jsonb, %(status)s::text[], %(new_turn)s::boolean[],
                           %(scope)s::text[], %(batch)s::uuid[], %(running)s::text[],
                           %(dropped)s::integer[])
"""

# One entry appended by one INSERT, the per-event write (see sql/025): to the trace
# %(trace_id)s, as its entry %(seq)s, only when that follows its last entry: of entries
# seq - 1 and seq, only seq - 1 is there (a trace's entries are numbered without a gap and
# are only ever deleted all together, so this is seq = max(seq) + 1, read from at most two
# keys of the primary key; when another writer stores entry seq meanwhile, the primary key
# refuses this one: the caller reads that refusal as "none"); its index_epoch is still
# %(epoch)s; and the entry changes nothing of the row but what its tail adds (see LIVE):
# not an error, no new node, no earlier start. The entry comes as its columns (the keys of
# tracedb_append's elements) and its JSON (data). Returns the entry's seq and turn (the
# rest of APPEND's row is known: see core._quick_row), or none: the append is then sent as
# APPEND.
_QUICK_APPEND = """
INSERT INTO automation_trace_entries AS e
    (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data, turn,
     checkpoint_id, model, input_tokens, output_tokens, total_tokens, cost_usd, digest)
SELECT t.id, %(seq)s, %(n)s, %(k)s, %(nm)s, %(s)s, %(a)s::timestamptz, %(b)s::timestamptz,
       %(ms)s::double precision, %(data)s::jsonb, nullif(t.turns, 0), %(c)s, %(m)s,
       %(it)s::integer, %(ot)s::integer, %(tt)s::integer, %(usd)s::double precision, %(h)s
  FROM automation_traces t
 WHERE t.id = %(trace_id)s AND (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
   AND t.index_epoch = %(epoch)s AND t.index_pending
   AND t.updated_at > clock_timestamp() - interval '1 second'
   AND (t.status <> 'running' OR t.heartbeat_at > clock_timestamp() - interval '1 second')
   AND %(s)s::text IS DISTINCT FROM 'error'
   AND (%(n)s::text IS NULL OR %(n)s::text = ANY(t.nodes))
   AND (%(a)s::timestamptz IS NULL OR t.first_started_at <= %(a)s::timestamptz)
   AND (SELECT max(p.seq) FROM automation_trace_entries p
         WHERE p.trace_id = t.id AND p.seq BETWEEN %(seq)s - 1 AND %(seq)s) = %(seq)s - 1
   {thread}
   FOR SHARE OF t
RETURNING e.seq, e.turn
"""
QUICK_APPEND = _QUICK_APPEND.replace("{thread}", "")
# The same for an upsert of a thread's list: only while the trace is the most recent of the
# thread %(thread_id)s and the user %(user_id)s (the trace an upsert by thread writes to).
QUICK_UPSERT = _QUICK_APPEND.replace(
    "{thread}",
    """AND t.thread_id = %(thread_id)s AND t.user_id = %(user_id)s
   AND NOT EXISTS (SELECT 1 FROM automation_traces y
                    WHERE y.thread_id = t.thread_id AND y.user_id = t.user_id
                      AND (y.created_at, y.id) > (t.created_at, t.id))""",
)
# The columns QUICK_APPEND takes from an entry's element (NULL when it has none).
QUICK_COLUMNS = ("n", "k", "nm", "s", "a", "b", "ms", "c", "m", "it", "ot", "tt", "usd", "h")

# Where the most recent trace of a thread and user stands: its entry count and fingerprint,
# with its tail folded in (the fingerprint chains the tail's digests).
THREAD_STATE = """
SELECT t.id::text AS id, f.entry_count, f.fingerprint
  FROM (SELECT t.id FROM automation_traces t
         WHERE t.thread_id = %(thread_id)s AND t.user_id = %(user_id)s
         ORDER BY t.created_at DESC, t.id DESC LIMIT 1) t,
       LATERAL tracedb_fold(t.id) f
 WHERE f.entry_count IS NOT NULL
"""

# The writer of a running trace is alive: moves its heartbeat (and, at most once a second,
# its updated_at through the touch trigger).
TOUCH = """
UPDATE automation_traces t SET heartbeat_at = clock_timestamp()
 WHERE t.id = %(id)s AND t.status = 'running' AND (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
"""

INSERT_TRACE = """
INSERT INTO automation_traces (id, user_id, provider_id, thread_id, name, status, metadata)
VALUES (%(id)s, %(user_id)s, %(provider_id)s, %(thread_id)s, %(name)s, %(status)s, %(metadata)s)
"""

# Every statement that reads or changes traces by id takes %(scope)s: NULL for a store that
# may see every user's traces, else the only user whose traces it may see
# (``AutomationTraceDB.as_user``). Another user's trace is then as absent as one that does
# not exist.
SCOPED = sql.SQL("(%(scope)s::text IS NULL OR t.user_id = %(scope)s)")
OWNED_TRACE = sql.SQL(
    "(%(scope)s::text IS NULL OR EXISTS (SELECT 1 FROM automation_traces t"
    " WHERE t.id = %(trace_id)s AND t.user_id = %(scope)s))"
)


def _scoped(text: str) -> sql.Composed:
    return sql.SQL(text).format(
        columns=SUMMARY, scoped=SCOPED, owned=OWNED_TRACE, entry_columns=_ENTRY_COLUMNS, status=STATUS
    )


LOAD_BY_ID = _scoped(
    "SELECT {columns}, ARRAY(SELECT e.data FROM automation_trace_entries e WHERE e.trace_id = t.id ORDER BY e.seq) AS trace_data FROM automation_traces t"
    " WHERE t.id = %(id)s AND {scoped}"
)
SUMMARY_BY_ID = _scoped("SELECT {columns} FROM automation_traces t WHERE t.id = %(id)s AND {scoped}")
LOAD_BY_THREAD = _scoped(
    "SELECT {columns}, ARRAY(SELECT e.data FROM automation_trace_entries e WHERE e.trace_id = t.id ORDER BY e.seq) AS trace_data FROM automation_traces t"
    " WHERE t.thread_id = %(thread_id)s AND {scoped} ORDER BY t.created_at DESC, t.id DESC LIMIT 1"
)
USER_TRACES = _scoped(
    "SELECT {columns} FROM automation_traces t WHERE t.user_id = %(user_id)s AND {scoped}"
    " AND (%(provider_id)s::text IS NULL OR t.provider_id = %(provider_id)s)"
    " ORDER BY t.updated_at DESC, t.id DESC LIMIT %(limit)s OFFSET %(offset)s"
)
# NO KEY UPDATE: the key never changes, and key-share locks (rows that refer to the trace,
# such as search rows an indexer is adding) must not be waited for
LOCK_TRACE = _scoped(
    "SELECT t.id FROM automation_traces t WHERE t.id = %(id)s AND {scoped} FOR NO KEY UPDATE"
)
RENAME = _scoped("UPDATE automation_traces t SET name = %(name)s WHERE t.id = %(id)s AND {scoped}")
SET_STATUS = _scoped("UPDATE automation_traces t SET status = %(status)s WHERE t.id = %(id)s AND {scoped}")
MERGE_METADATA = _scoped(
    "UPDATE automation_traces t SET metadata = t.metadata || %(metadata)s WHERE t.id = %(id)s AND {scoped}"
)
# Traces run again from a step of this one (the replays record where they started in
# metadata.forked_from); both conditions are the partial index's (automation_traces_forked_from_idx).
FORKS = _scoped(
    "SELECT {columns} FROM automation_traces t WHERE t.metadata ? 'forked_from'"
    " AND t.metadata -> 'forked_from' ->> 'trace_id' = %(forked_from)s AND {scoped}"
    " ORDER BY t.created_at DESC, t.id DESC LIMIT %(limit)s"
)
DELETE_ONE = _scoped("DELETE FROM automation_traces t WHERE t.id = %(id)s AND {scoped}")
PING = "SELECT 1 AS ok"

ENTRIES = _scoped(
    """
SELECT {entry_columns}, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq > %(after_seq)s AND {owned}
 ORDER BY seq LIMIT %(limit)s
"""
)

# Everything the timeline and the per-node table need, without ``data``: decoding 10,000
# JSONB documents would cost more than drawing them.
ENTRY_COLUMNS = _scoped(
    """
SELECT {entry_columns}
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq > %(after_seq)s AND {owned}
 ORDER BY seq LIMIT %(limit)s
"""
)

ENTRIES_BY_SEQ = _scoped(
    """
SELECT {entry_columns}, data
  FROM automation_trace_entries
 WHERE trace_id = %(trace_id)s AND seq = ANY(%(seqs)s) AND {owned}
 ORDER BY seq
"""
)

# The nodes running right now in a trace (markers kept on the trace row while a node runs):
# shown as steps with status "running" (or "abandoned" when the trace's writer is gone).
RUNNING = _scoped(
    """
SELECT r.key AS task_id, r.value AS marker, t.turns, {status} AS trace_status
  FROM automation_traces t, jsonb_each(t.running) AS r
 WHERE t.id = %(trace_id)s AND {scoped}
 ORDER BY r.value->>'started_at', r.key
"""
)

# Distinct users through the (user_id, ...) index, one index probe per user.
DISTINCT_USERS = """
WITH RECURSIVE u AS (
    (SELECT user_id FROM automation_traces ORDER BY user_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.user_id FROM automation_traces t WHERE t.user_id > u.user_id
             ORDER BY t.user_id LIMIT 1)
      FROM u WHERE u.user_id IS NOT NULL
)
SELECT user_id FROM u WHERE user_id IS NOT NULL LIMIT %(limit)s
"""

# Nodes seen in the most recently updated traces: bounded work on any table size.
RECENT_NODES = """
SELECT DISTINCT n AS node
  FROM (SELECT t.nodes FROM automation_traces t WHERE (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
         ORDER BY t.updated_at DESC, t.id DESC LIMIT 5000) t,
       unnest(t.nodes) AS n
 ORDER BY 1 LIMIT %(limit)s
"""

# The traces an overview covers: created in [since, until), of one user or all.
_RANGE = sql.SQL(
    "t.created_at >= %(since)s AND t.created_at < %(until)s"
    " AND (%(user_id)s::text IS NULL OR t.user_id = %(user_id)s)"
)


def _overview(text: str) -> sql.Composed:
    """An overview's statement: ``{range}``, ``{status}``, ``{stale}`` and the columns of
    LIVE (``{entry_count}``, ...) filled in."""
    return sql.SQL(text).format(range=_RANGE, status=STATUS, stale=STALE, **_LIVE_SQL)


OVERVIEW_PER_DAY = _overview(
    """
SELECT date_trunc(%(bucket)s, t.created_at) AS day, {status} AS status, count(*) AS traces,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       coalesce(sum({entry_count}), 0) AS entries,
       sum({input_tokens}) AS input_tokens, sum({output_tokens}) AS output_tokens,
       sum({total_tokens}) AS total_tokens, sum({cost_usd}) AS cost_usd
  FROM automation_traces t
 WHERE {range}
 GROUP BY 1, 2 ORDER BY 1, 2
"""
)

# Latency over time: per bucket (hour, day or week), the work of a trace (its steps'
# durations added up) and the duration of a step, at the median and the 95th percentile.
OVERVIEW_LATENCY = _overview(
    """
SELECT d.day AS bucket, d.traces, d.trace_p50_ms, d.trace_p95_ms, s.step_p50_ms, s.step_p95_ms, s.steps
  FROM (SELECT date_trunc(%(bucket)s, t.created_at) AS day, count(*) AS traces,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {total_duration_ms})
                   FILTER (WHERE {total_duration_ms} > 0) AS trace_p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {total_duration_ms})
                   FILTER (WHERE {total_duration_ms} > 0) AS trace_p95_ms
          FROM automation_traces t WHERE {range} GROUP BY 1) d
  LEFT JOIN (SELECT date_trunc(%(bucket)s, t.created_at) AS day, count(e.duration_ms) AS steps,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS step_p50_ms,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS step_p95_ms
               FROM automation_traces t JOIN automation_trace_entries e ON e.trace_id = t.id
              WHERE {range} GROUP BY 1) s ON s.day = d.day
 ORDER BY d.day
"""
)

OVERVIEW_PER_NODE = _overview(
    """
SELECT coalesce(e.node, '(none)') AS node, count(*) AS entries,
       count(*) FILTER (WHERE e.status = 'error') AS errors,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms,
       avg(e.duration_ms) AS mean_ms, coalesce(sum(e.duration_ms), 0) AS total_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range}
 GROUP BY 1 ORDER BY entries DESC, node LIMIT 50
"""
)

# Tokens and cost per model, from the steps that report usage.
OVERVIEW_PER_MODEL = _overview(
    """
SELECT e.model, count(*) AS steps, sum(e.input_tokens) AS input_tokens,
       sum(e.output_tokens) AS output_tokens, sum(e.total_tokens) AS total_tokens,
       sum(e.cost_usd) AS cost_usd
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range} AND e.model IS NOT NULL
 GROUP BY 1 ORDER BY total_tokens DESC NULLS LAST, e.model LIMIT 50
"""
)

OVERVIEW_PER_USER = _overview(
    """
SELECT t.user_id, count(*) AS traces, coalesce(sum({entry_count}), 0) AS entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       coalesce(sum(t.error_count), 0) AS error_entries, max(t.updated_at) AS last_active,
       sum({total_tokens}) AS total_tokens, sum({cost_usd}) AS cost_usd
  FROM automation_traces t
 WHERE {range}
 GROUP BY 1 ORDER BY traces DESC, entries DESC, t.user_id LIMIT %(top)s
"""
)

OVERVIEW_TOTALS = _overview(
    """
SELECT count(*) AS traces, coalesce(sum({entry_count}), 0) AS entries,
       coalesce(sum(t.error_count), 0) AS error_entries,
       count(*) FILTER (WHERE t.status = 'failed') AS failed,
       count(*) FILTER (WHERE t.error_count > 0 OR t.status = 'failed') AS with_errors,
       count(*) FILTER (WHERE t.status = 'running' AND NOT {stale}) AS running,
       count(*) FILTER (WHERE t.status = 'running' AND {stale}) AS abandoned,
       count(DISTINCT t.user_id) AS users,
       sum({input_tokens}) AS input_tokens, sum({output_tokens}) AS output_tokens,
       sum({total_tokens}) AS total_tokens, sum({cost_usd}) AS cost_usd,
       coalesce(sum(t.dropped_count), 0) AS dropped
  FROM automation_traces t
 WHERE {range}
"""
)

OVERVIEW_STEP_PERCENTILES = _overview(
    """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms) AS p95_ms
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id
 WHERE {range}
"""
)

# created_at/updated_at of several traces at once, as given: history for imported or demo
# data. The touch trigger keeps the given times while ``tracedb.keep_times`` is on, which
# is set for this transaction only.
KEEP_TIMES = "SELECT set_config('tracedb.keep_times', 'on', true)"
SET_TIMES = """
UPDATE automation_traces t SET created_at = v.created_at, updated_at = v.updated_at
  FROM unnest(%(ids)s::uuid[], %(created)s::timestamptz[], %(updated)s::timestamptz[])
       AS v(id, created_at, updated_at)
 WHERE t.id = v.id AND (%(scope)s::text IS NULL OR t.user_id = %(scope)s)
"""

# The traces whose newest entries are not indexed yet and whose content last changed more
# than %(age)s ago, oldest first, with the entries each has: what an indexer takes into its
# rounds, and what an index_pending call leaves indexed (up to those entries, or all of a
# trace replaced or shortened meanwhile).
STALE_TRACES = sql.SQL(
    """
SELECT t.id, {entry_count} AS n FROM automation_traces t
 WHERE t.index_pending AND t.updated_at < now() - %(age)s::interval
 ORDER BY t.updated_at LIMIT %(limit)s
"""
).format(entry_count=_LIVE_SQL["entry_count"])
# Of those, the ones not indexed that far yet.
LEFT_PENDING = sql.SQL(
    """
SELECT t.id::text AS id
  FROM unnest(%(ids)s::uuid[], %(counts)s::integer[]) AS p(id, n)
  JOIN automation_traces t ON t.id = p.id
 WHERE t.index_pending AND t.indexed_count < least(p.n, {entry_count})
"""
).format(entry_count=_LIVE_SQL["entry_count"])
# A wait until nothing keeps an indexer from a trace: another indexer at work on it (its
# lock is held until it commits; the indexers skip a trace one of them holds), or a
# transaction deleting it (they skip a row locked for that). Writers are not waited for.
# One trace per statement: holding one while waiting for another could close a cycle
# with a delete of several.
WAIT_FOR_INDEXER = """
SELECT count(pg_advisory_xact_lock(hashtextextended('tracedb.index:' || t.id, 0))) AS n
  FROM (SELECT x.id FROM automation_traces x WHERE x.id = %(id)s::uuid FOR KEY SHARE OF x) AS t
"""
# Index these traces, up to %(max)s entries of each (only complete blocks of a trace whose
# content changed within %(live)s, when given); the ones left pending. The store's indexer
# calls it a few entries at a time, index_pending for whole traces.
INDEX_TRACES = "SELECT tracedb_index_traces(%(ids)s::uuid[], %(max)s, %(live)s) AS id"
# The entries quick appends stored, counted in their traces' rows (sql/025), before those
# traces are indexed: a call then indexes up to the trace's last entry, not to where the
# row stood at the last fold. A statement of its own: the rows are locked only while it runs.
FOLD_TRACES = "SELECT count(tracedb_fold(d.id)) AS n FROM unnest(%(ids)s::uuid[]) AS d(id)"

# JIT compilation costs tracedb's queries more than it saves: PostgreSQL compiles a query
# whose estimated cost is high (a count over every search block), which here took about
# 0.55 s, and a statement timeout cannot fire while it compiles: a count allowed 100 ms took
# 600 ms. Without it, exact counts at 200,000 traces ran 1.2-2.4x faster. Off for each pooled
# session (not behind a transaction pooler, where a session setting would reach other
# clients), and for every statement run under a time limit.
NO_JIT = "SET jit = off"
# A statement's time limit, and no JIT compilation, for this transaction only (the store
# sets it before a statement that carries ``timeout_ms``).
STATEMENT_TIMEOUT = (
    "SELECT set_config('statement_timeout', %(timeout)s, true), set_config('jit', 'off', true)"
)

# -- what `python -m tracedb status` reports --------------------------------------------

STATUS_TABLES = (
    "automation_traces",
    "automation_trace_entries",
    "automation_trace_search",
    "automation_trace_entry_words",
    "tracedb_api_keys",
    "tracedb_migrations",
)
# Reported when present: the seed's table, kept renamed after its rows were converted
# (tracedb/migrations.py), and the conversion's progress.
OPTIONAL_STATUS_TABLES = ("automation_traces_seed", "tracedb_seed_conversion")
STATUS_COLUMNS = """
SELECT c.relname AS table_name,
       a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS col
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relname = ANY(%(tables)s) AND c.relkind = 'r'
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum
"""
STATUS_VERSION = "SELECT version() AS version"
STATUS_MIGRATIONS = "SELECT name FROM tracedb_migrations ORDER BY version"
STATUS_INDEXES = """
SELECT indexname FROM pg_indexes
 WHERE schemaname = current_schema() AND tablename = ANY(%(tables)s) ORDER BY tablename, indexname
"""
STATUS_FUNCTIONS = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = current_schema() AND p.proname LIKE 'tracedb%%' ORDER BY 1
"""


def count_rows(table: str) -> sql.Composed:
    """``SELECT count(*)`` of one of :data:`STATUS_TABLES`."""
    if table not in STATUS_TABLES + OPTIONAL_STATUS_TABLES:
        raise InvalidTraceData(f"unknown table {table!r}")
    return sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))


# -- API keys (tracedb/keys.py) ---------------------------------------------------------

_KEY_COLUMNS = sql.SQL("id::text AS id, user_id, admin, label, created_at, last_used_at, revoked_at")


def _keys(text: str) -> sql.Composed:
    return sql.SQL(text).format(columns=_KEY_COLUMNS)


INSERT_KEY = _keys(
    """
INSERT INTO tracedb_api_keys (id, user_id, admin, label, secret_hash)
VALUES (%(id)s, %(user_id)s, %(admin)s, %(label)s, %(secret_hash)s)
RETURNING {columns}
"""
)
LIST_KEYS = _keys(
    """
SELECT {columns} FROM tracedb_api_keys
 WHERE (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
 ORDER BY user_id, created_at, id
"""
)
REVOKE_KEY = """
UPDATE tracedb_api_keys SET revoked_at = now()
 WHERE id = %(id)s AND revoked_at IS NULL AND (%(scope)s::text IS NULL OR user_id = %(scope)s)
"""
FIND_KEY = _keys(
    "SELECT {columns} FROM tracedb_api_keys WHERE secret_hash = %(secret_hash)s AND revoked_at IS NULL"
)
# last_used_at is a hint for `api-key list`, not an audit log: written at most once a minute
# per key, so that a busy key does not turn every request into a write.
TOUCH_KEY = """
UPDATE tracedb_api_keys SET last_used_at = now()
 WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
"""
ANY_ACTIVE_KEY = "SELECT EXISTS (SELECT 1 FROM tracedb_api_keys WHERE revoked_at IS NULL) AS found"
