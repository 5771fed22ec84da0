"""Operations over many traces: deleting by filter, retention, history for imported data,
search indexing left behind, the dashboard's aggregates and the server's status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from . import checks, filters
from . import queries as q
from .core import (
    Op,
    StoreBase,
    _all,
    _count,
    _one,
    operation,
)
from .errors import AccessDenied, InvalidTraceData
from .limits import DASHBOARD_TIMEOUT_MS, MAX_CHOICES
from .models import Overview, ServerStatus, TraceFilter

# Entries of a trace one call of index_pending indexes: a whole trace, in practice (a longer
# one is taken again on the next round).
WHOLE_TRACE = 100_000


class MaintenanceOperations(StoreBase):
    """Operations over many traces: deleting by filter, retention, history for imported data,."""

    @operation(read=True)
    def filter_choices(self, limit: int = MAX_CHOICES) -> Op[dict[str, list[str]]]:
        """Users and node names to offer in filter widgets (bounded, fast on large tables)."""
        params = {
            "limit": checks.require_int("limit", limit, minimum=1, maximum=10_000),
            "scope": self._scope,
        }
        nodes = yield _all(q.RECENT_NODES, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
        if self._scope is not None:
            users = [self._scope]
        else:
            rows = yield _all(q.DISTINCT_USERS, params, timeout_ms=DASHBOARD_TIMEOUT_MS)
            users = [r["user_id"] for r in rows]
        return {"users": users, "nodes": [r["node"] for r in nodes]}

    @operation(read=True)
    def overview(
        self,
        since: datetime,
        until: datetime,
        user_id: str | None = None,
        top_users: int = 15,
        bucket: str = "day",
    ) -> Op[Overview]:
        """Over the traces created in ``[since, until)``: totals, traces per day and status
        (with tokens and cost), latency per ``bucket`` ("hour", "day" or "week": trace work
        and step duration, p50 and p95),
        entries and step durations per node, tokens and cost per model, busiest users.

        Raises:
            InvalidTraceData: ``since``/``until`` are not timezone-aware datetimes in order.
        """
        for label, value in (("since", since), ("until", until)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise InvalidTraceData(f"{label} must be a timezone-aware datetime")
        if since >= until:
            raise InvalidTraceData("since must be before until")
        if bucket not in ("hour", "day", "week"):
            raise InvalidTraceData(f"bucket must be hour, day or week, got {bucket!r}")
        checks.require_text("user_id", user_id, optional=True)
        if self._scope is not None:
            if user_id not in (None, "", self._scope):
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            user_id = self._scope
        params = {
            "since": since,
            "until": until,
            "user_id": user_id or None,
            "top": checks.require_int("top_users", top_users, minimum=1, maximum=1000),
            "abandon_after": self.abandon_after,
            "bucket": bucket,
        }
        limit = DASHBOARD_TIMEOUT_MS
        totals = dict((yield _one(q.OVERVIEW_TOTALS, params, timeout_ms=limit)) or {})
        totals.update((yield _one(q.OVERVIEW_STEP_PERCENTILES, params, timeout_ms=limit)) or {})
        per_day = yield _all(q.OVERVIEW_PER_DAY, params, timeout_ms=limit)
        latency = yield _all(q.OVERVIEW_LATENCY, params, timeout_ms=limit)
        per_node = yield _all(q.OVERVIEW_PER_NODE, params, timeout_ms=limit)
        per_model = yield _all(q.OVERVIEW_PER_MODEL, params, timeout_ms=limit)
        per_user = yield _all(q.OVERVIEW_PER_USER, params, timeout_ms=limit)
        return Overview(since, until, totals, per_day, per_node, per_user, latency, per_model)

    @operation
    def delete_traces(
        self,
        filter: TraceFilter | None = None,
        *,
        allow_all: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> Op[int]:
        """Delete every matching trace (not one page), in batches; return how many.

        A filter that can match every trace (no condition, an empty ``contains``, a text of
        negations only) deletes only with ``allow_all=True``. ``progress`` is called with the
        running total after each batch. The batches run one after another on one connection.
        """
        if filters.is_empty_filter(filter) and not allow_all:
            raise InvalidTraceData(
                "refusing to delete every trace: this filter can match them all; pass allow_all=True"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        query, params = filters.delete_batch_query(filter, batch_size, self._scope, self.abandon_after)
        total = 0
        try:
            while True:
                n = yield _count(query, params, prepare=False)
                total += n
                if progress:
                    progress(total)
                if n < batch_size:
                    break
        finally:
            self._sent.forget()
        return total

    @operation
    def prune(
        self,
        older_than: timedelta,
        *,
        keep_last: int = 0,
        status: str | tuple[str, ...] | list[str] | None = None,
        dry_run: bool = False,
        batch_size: int = 1000,
    ) -> Op[int]:
        """Delete the traces not updated for ``older_than``, with their entries: retention.

        Args:
            older_than: age (since the last update) from which a trace goes.
            keep_last: keep this many of the most recently updated traces of each user, however
                old.
            status: only traces of this status (or these), e.g. ``"completed"``.
            dry_run: count what would go, delete nothing.

        Returns:
            How many traces were deleted (or would be, with ``dry_run``).
        """
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise InvalidTraceData(f"older_than must be a positive timedelta, got {older_than!r}")
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise InvalidTraceData(f"keep_last must be a non-negative integer, got {keep_last!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        flt = TraceFilter(status=status) if status else None
        query, params = filters.prune_query(
            flt, older_than, keep_last, batch_size, dry_run, self._scope, self.abandon_after
        )
        if dry_run:
            return int((yield _one(query, params, prepare=False))["n"])
        total = 0
        try:
            while True:
                n = yield _count(query, params, prepare=False)
                total += n
                if n < batch_size:
                    break
        finally:
            self._sent.forget()
        return total

    @operation(transaction=True)
    def set_trace_times(self, times: list[tuple[str, datetime, datetime]]) -> Op[int]:
        """Set ``created_at``/``updated_at`` of traces, given as ``(id, created, updated)``:
        history for imported or demo data. Returns how many traces exist among them.

        Only these rows are locked, and only for this transaction; no table-owner rights
        are needed.
        """
        if not isinstance(times, (list, tuple)):
            raise InvalidTraceData("times must be a list of (trace id, created, updated)")
        if not times:
            return 0
        ids, created, updated = [], [], []
        for item in times:
            tid = checks.parse_uuid(item[0]) if isinstance(item, (tuple, list)) and len(item) == 3 else None
            if tid is None or not all(isinstance(t, datetime) and t.tzinfo for t in item[1:]):
                raise InvalidTraceData(
                    f"times must be (trace id, aware created, aware updated), got {item!r}"
                )
            ids.append(tid)
            created.append(item[1])
            updated.append(item[2])
        yield _one(q.KEEP_TIMES)
        params = {"ids": ids, "created": created, "updated": updated, "scope": self._scope}
        return (yield _count(q.SET_TIMES, params))

    @operation
    def index_pending(self, limit: int = 1000) -> Op[int]:
        """Index for search the entries of up to ``limit`` traces whose newest entries are not
        indexed yet, whoever wrote them; returns how many traces were indexed. Each store
        does this in the background for what it writes (see :mod:`tracedb.indexer`); this is
        for a database whose writers stopped before their indexer ran. It returns once every
        trace pending when it was called is indexed up to the entries it had then, waiting
        where another store's indexer is at work on one."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidTraceData("limit must be a positive integer")
        pending = yield _all(q.STALE_TRACES, {"limit": limit, "age": timedelta(0)})
        # A trace another store's indexer is indexing is skipped, and so is one a
        # transaction is deleting: wait until nothing keeps each from being indexed, then
        # index what is left of them, until what was pending when this was called is
        # indexed. That indexer works a call of entries at a time: it may take a trace again
        # before this does, or leave it between two calls. Each round indexes or waits for
        # a lock holder.
        left = {"ids": [r["id"] for r in pending], "counts": [r["n"] for r in pending]}
        done = 0
        while pending:
            ids = [r["id"] for r in pending]
            yield _one(q.FOLD_TRACES, {"ids": sorted(ids)})
            still = yield _all(q.INDEX_TRACES, {"ids": ids, "max": WHOLE_TRACE, "live": None})
            done += len(ids) - len(still)
            pending = yield _all(q.LEFT_PENDING, left)
            for r in pending:
                yield _one(q.WAIT_FOR_INDEXER, {"id": r["id"]})
        return done

    @operation(changes=False)
    def server_status(self) -> Op[ServerStatus]:
        """Server label, version, migrations, exact row counts per table, indexes, functions.

        Raises:
            AccessDenied: the store is seen by one user (:meth:`as_user`); this is every user's.
        """
        if self._scope is not None:
            raise AccessDenied("the server status covers every user's traces")
        version = (yield _one(q.STATUS_VERSION))["version"]
        migrations = [r["name"] for r in (yield _all(q.STATUS_MIGRATIONS))]
        columns: dict[str, list[str]] = {}
        every_table = list(q.STATUS_TABLES + q.OPTIONAL_STATUS_TABLES)
        for r in (yield _all(q.STATUS_COLUMNS, {"tables": every_table})):
            columns.setdefault(r["table_name"], []).append(r["col"])
        tables = {}
        for table in q.STATUS_TABLES + tuple(t for t in q.OPTIONAL_STATUS_TABLES if t in columns):
            tables[table] = int((yield _one(q.count_rows(table)))["n"])
        indexes = yield _all(q.STATUS_INDEXES, {"tables": list(q.STATUS_TABLES)})
        functions = yield _all(q.STATUS_FUNCTIONS, {})
        return ServerStatus(
            label=self.server.label,
            version=version,
            migrations=migrations,
            tables=tables,
            indexes=[r["indexname"] for r in indexes],
            functions=[r["function"] for r in functions],
            columns=columns,
        )
