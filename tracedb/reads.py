"""Reading traces: by id, by thread, a user's, their entries (as rows or as columns), and
listings and counts by filter. Every one of these may run on a read replica (``read=True``)."""

from __future__ import annotations

from typing import Any

from . import checks, filters
from . import queries as q
from .core import (
    Op,
    StoreBase,
    _all,
    _one,
    _valid_thread,
    operation,
)
from .errors import DatabaseUnavailable, InvalidTraceData, QueryTimeout
from .jsonsafe import _parse_time
from .limits import DASHBOARD_TIMEOUT_MS, MAX_ENTRY_ROWS
from .models import Trace, TraceFilter, TracePage, TraceSummary
from .rows import page_from_rows, summary_from_row, trace_from_row


class ReadOperations(StoreBase):
    """Reading traces: by id, by thread, a user's, their entries (as rows or as columns), and."""

    @operation(changes=False)
    def ping(self) -> Op[bool]:
        """True when the server answers."""
        try:
            yield _one(q.PING)
        except DatabaseUnavailable:
            return False
        return True

    @operation(read=True)
    def load_trace_by_id(self, trace_id: str) -> Op[Trace | None]:
        """The trace with this id, entries included; None for an unknown or malformed id."""
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.LOAD_BY_ID, self._by_id(id=tid))
        return trace_from_row(row) if row else None

    @operation(read=True)
    def load_trace_by_thread(self, thread_id: str) -> Op[Trace | None]:
        """The thread's most recently created trace, entries included, or None."""
        if not _valid_thread(thread_id):
            return None
        row = yield _one(q.LOAD_BY_THREAD, self._by_id(thread_id=thread_id))
        return trace_from_row(row) if row else None

    @operation(read=True)
    def get_user_traces(
        self, user_id: str, provider_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Op[list[TraceSummary]]:
        """A user's traces (of one provider, if given), most recently updated first, without
        entries."""
        checks.require_text("user_id", user_id)
        checks.require_text("provider_id", provider_id, optional=True)
        limit, offset = checks.require_limit(limit, offset)
        params = self._by_id(user_id=user_id, provider_id=provider_id, limit=limit, offset=offset)
        rows = yield _all(q.USER_TRACES, params)
        return [summary_from_row(r) for r in rows]

    @operation(read=True)
    def get_summary(self, trace_id: str) -> Op[TraceSummary | None]:
        """A trace's header without entries, or None."""
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return None
        row = yield _one(q.SUMMARY_BY_ID, self._by_id(id=tid))
        return summary_from_row(row) if row else None

    @operation(read=True)
    def get_forks(self, trace_id: str, limit: int = 50) -> Op[list[TraceSummary]]:
        """The traces run again from a step of this one (their ``metadata["forked_from"]``
        names it), most recently created first, without entries. Empty for an unknown or
        malformed id."""
        tid = checks.parse_uuid(trace_id)
        limit, _ = checks.require_limit(limit, 0)
        if tid is None:
            return []
        rows = yield _all(q.FORKS, self._by_id(forked_from=str(tid), limit=limit))
        return [summary_from_row(r) for r in rows]

    def _running_rows(self, markers: list[dict[str, Any]], with_data: bool) -> list[dict[str, Any]]:
        """Steps that are running now, as entry rows (no seq yet)."""
        rows = []
        for m in markers:
            marker = m["marker"] if isinstance(m["marker"], dict) else {}
            status = "running" if m["trace_status"] == "running" else "abandoned"
            row: dict[str, Any] = dict.fromkeys(q.ENTRY_FIELDS)
            row.update(
                node=marker.get("node"),
                kind=marker.get("kind") or "node",
                name=marker.get("name") or marker.get("node"),
                status=status,
                started_at=_parse_time(marker.get("started_at")),
                turn=m["turns"] or None,
                checkpoint_id=marker.get("checkpoint_id"),
            )
            if with_data:
                row["data"] = {"task_id": m["task_id"], "status": status, **marker}
            rows.append(row)
        return rows

    @operation(read=True)
    def get_entries(
        self, trace_id: str, *, after_seq: int = -1, limit: int = 100_000, running: bool = True
    ) -> Op[list[dict[str, Any]]]:
        """Entries with their columns (seq, node, kind, name, status, started_at, ended_at,
        duration_ms, turn, checkpoint_id, model, input_tokens, output_tokens, total_tokens,
        cost_usd, data), in seq order, after ``after_seq``.

        With ``running``, the nodes running right now follow as rows with ``seq`` None and
        status ``running`` (``abandoned`` when the trace's writer is gone).
        """
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return []
        params = self._by_id(
            trace_id=tid,
            after_seq=checks.require_int("after_seq", after_seq, minimum=-1),
            limit=checks.require_int("limit", limit, minimum=1),
        )
        rows = yield _all(q.ENTRIES, params)
        if running:
            rows = rows + self._running_rows((yield _all(q.RUNNING, params)), with_data=True)
        return rows

    @operation(read=True)
    def entry_columns(
        self, trace_id: str, *, after_seq: int = -1, limit: int = MAX_ENTRY_ROWS, running: bool = True
    ) -> Op[dict[str, list[Any]]]:
        """A trace's entries as columns (those of :meth:`get_entries` but ``data``), in seq
        order, after ``after_seq``, without their JSON: what a timeline or a table of steps
        needs, read in one go. The running nodes follow as in :meth:`get_entries`. Empty lists
        for an unknown id."""
        columns: dict[str, list[Any]] = {name: [] for name in q.ENTRY_FIELDS}
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return columns
        params = self._by_id(
            trace_id=tid,
            after_seq=checks.require_int("after_seq", after_seq, minimum=-1),
            limit=checks.require_int("limit", limit, minimum=1),
        )
        rows = yield _all(q.ENTRY_COLUMNS, params, rows="tuple", timeout_ms=DASHBOARD_TIMEOUT_MS)
        if rows:
            columns = {
                name: list(values)
                for name, values in zip(q.ENTRY_FIELDS, zip(*rows, strict=True), strict=True)
            }
        if running:
            for row in self._running_rows((yield _all(q.RUNNING, params)), with_data=False):
                for name in q.ENTRY_FIELDS:
                    columns[name].append(row[name])
        return columns

    @operation(read=True)
    def entries_by_seq(self, trace_id: str, seqs: list[int]) -> Op[list[dict[str, Any]]]:
        """The chosen entries of a trace, with their data, in seq order."""
        tid = checks.parse_uuid(trace_id)
        if tid is None or not seqs:
            return []
        if not isinstance(seqs, (list, tuple)):
            raise InvalidTraceData(f"seqs must be a list of integers, got {type(seqs).__name__}")
        clean = [checks.require_int("seq", s, minimum=0) for s in seqs]
        rows = yield _all(q.ENTRIES_BY_SEQ, self._by_id(trace_id=tid, seqs=clean))
        return rows

    @operation(read=True)
    def get_entry(self, trace_id: str, seq: int) -> Op[dict[str, Any] | None]:
        """One entry of a trace with its columns and data, or None."""
        tid = checks.parse_uuid(trace_id)
        if tid is None or isinstance(seq, bool) or not isinstance(seq, int):
            return None
        rows = yield _all(q.ENTRIES_BY_SEQ, self._by_id(trace_id=tid, seqs=[seq]))
        return rows[0] if rows else None

    @operation(read=True)
    def list_traces(
        self,
        filter: TraceFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
        offset: int = 0,
    ) -> Op[TracePage]:
        """One page of matching traces, most recently updated first.

        Pass the returned ``next_cursor`` back for the next page; keyset pagination makes a
        deep page as fast as the first. ``offset`` skips that many matches (as the seed's
        listing did); it costs what it skips.
        """
        limit, offset = checks.require_limit(limit, offset)
        # Several terms in one entry: start from the search index when the planner expects
        # few candidate rows (it cannot choose that itself, see filters._CANDIDATES_FIRST).
        index_first = False
        estimate = filters.candidate_estimate(filter, self._scope, self.abandon_after)
        if estimate is not None:
            plan = yield _one(estimate.query, estimate.params, prepare=False)
            every = yield _one(estimate.every, prepare=False)
            index_first = estimate.starts_from_index(plan, every)
        query, params = filters.list_query(
            filter, limit, cursor, self._scope, self.abandon_after, offset=offset, index_first=index_first
        )
        # Never prepared: a prepared statement soon gets a generic plan that cannot see the
        # filter's values, and the best plan here depends on them (how rare a word is).
        rows = yield _all(query, params, prepare=False)
        return page_from_rows(rows, limit)

    @operation(read=True)
    def count_traces(self, filter: TraceFilter | None = None) -> Op[int]:
        """How many traces match."""
        query, params = filters.count_query(filter, self._scope, self.abandon_after)
        row = yield _one(query, params, prepare=False)
        return int(row["n"]) if row else 0

    @operation(read=True)
    def count_traces_bounded(
        self, filter: TraceFilter | None = None, *, budget_ms: int = 100
    ) -> Op[tuple[int, bool]]:
        """``(n, True)`` when the exact count takes at most ``budget_ms``, else the planner's
        estimate as ``(n, False)``: for a page that must answer at once on any table size."""
        budget_ms = checks.require_int("budget_ms", budget_ms, minimum=1, maximum=3_600_000)
        query, params = filters.count_query(filter, self._scope, self.abandon_after)
        try:
            row = yield _one(query, params, prepare=False, timeout_ms=budget_ms)
            return (int(row["n"]) if row else 0), True
        except QueryTimeout:
            pass
        equery, eparams = filters.count_estimate_query(filter, self._scope, self.abandon_after)
        plan = yield _one(equery, eparams, prepare=False)
        return filters.estimate_from_plan(plan), False
