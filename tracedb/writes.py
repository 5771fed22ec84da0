"""Writing traces: the seed's save, update and exact upsert, appends (exactly once, with
running nodes, checkpoints, drops), heartbeats, renames, statuses and metadata."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from . import checks
from . import queries as q
from .core import (
    PROBE_AFTER,
    Op,
    Statement,
    StoreBase,
    _append_params,
    _count,
    _one,
    _running_param,
    operation,
)
from .errors import InvalidTraceData, TraceNotFound
from .jsonsafe import chain, check_trace_data, unwrap_trace_data
from .models import AppendResult, TraceSummary
from .rows import summary_from_row


class WriteOperations(StoreBase):
    """Writing traces: the seed's save, update and exact upsert, appends (exactly once, with."""

    @operation(transaction=True)
    def save_trace(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> Op[str]:
        """Store ``trace_data`` as a new trace of the thread and return its id.

        Raises:
            InvalidTraceData: an argument or an entry cannot be stored (nothing is written).
        """
        user_id = self._writer_id(user_id)
        checks.require_text("provider_id", provider_id, optional=True)
        checks.require_text("thread_id", thread_id)
        checks.require_text("name", name, optional=True)
        prepared = self._prepare(check_trace_data(trace_data))
        trace_id = str(uuid.uuid4())
        insert = {
            "id": trace_id,
            "user_id": user_id,
            "provider_id": provider_id,
            "thread_id": thread_id,
            "name": name,
            "status": "completed",
            "metadata": checks.metadata_param(None),
        }
        yield Statement(q.INSERT_TRACE, insert, fetch="none")
        self._wrote((yield _one(q.APPEND, _append_params(trace_id=trace_id, entries=prepared.payload()))))
        # the thread's most recent trace is this one now: what was sent before is stale
        self._sent.forget((user_id, thread_id))
        return trace_id

    @operation(transaction=True)
    def update_trace(
        self, trace_id: str, name: str | None = None, trace_data: list[dict[str, Any]] | None = None
    ) -> Op[bool]:
        """Rename a trace and/or replace all its entries with ``trace_data``. False when it
        does not exist. Both happen in one transaction, or nothing does.

        Raises:
            InvalidTraceData: the new name or data cannot be stored (nothing is changed).
        """
        checks.require_text("name", name, optional=True)
        prepared = self._prepare(check_trace_data(trace_data)) if trace_data is not None else None
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        if (yield _one(q.LOCK_TRACE, self._by_id(id=tid))) is None:
            return False
        if name is not None:
            yield _count(q.RENAME, self._by_id(name=name, id=tid))
        if prepared is not None:
            params = _append_params(
                trace_id=tid,
                entries=prepared.payload(),
                offset=0,
                chain=chain("", prepared.digests),
                replace=True,
                scope=self._scope,
            )
            self._wrote((yield _one(q.APPEND, params)))
            self._sent.forget_trace(tid)
        return True

    @operation(transaction=True)
    def patch_trace(
        self,
        trace_id: str,
        *,
        name: str | None = None,
        trace_data: list[Any] | None = None,
        status: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Op[TraceSummary | None]:
        """Rename, replace the entries, set the status and merge metadata in one transaction:
        every value is checked before anything is written, so one bad field changes nothing.
        Returns the trace's header afterwards, or None when it does not exist.

        Raises:
            InvalidTraceData: a value cannot be stored (nothing is changed).
        """
        if status is not None:
            checks.require_status(status)
        meta = checks.metadata_param(metadata) if metadata is not None else None
        # The rename and the replacement are update_trace's, run in this transaction.
        found = yield from type(self).update_trace.fn(self, trace_id, name, trace_data)
        if not found:
            return None
        tid = checks.parse_uuid(trace_id)
        if status is not None:
            yield _count(q.SET_STATUS, self._by_id(status=status, id=tid))
        if meta is not None:
            yield _count(q.MERGE_METADATA, self._by_id(metadata=meta, id=tid))
        row = yield _one(q.SUMMARY_BY_ID, self._by_id(id=tid))
        return summary_from_row(row) if row else None

    @operation
    def delete_trace(self, trace_id: str) -> Op[bool]:
        """Delete one trace and its entries. False when it did not exist."""
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        deleted = yield _count(q.DELETE_ONE, self._by_id(id=tid))
        self._sent.forget_trace(tid)
        return deleted > 0

    @operation
    def upsert_trace_by_thread(
        self,
        user_id: str,
        provider_id: str | None,
        thread_id: str,
        trace_data: list[dict[str, Any]],
        name: str | None = None,
    ) -> Op[str]:
        """Make the thread's trace exactly ``trace_data``; create it if the thread has none.

        ``trace_data`` is the complete trace so far. When it extends what is stored (the
        streaming case), only the new entries are converted, sent and written, and nothing
        stored is read: a call costs O(new entries). When it differs (shorter, another
        prefix, an entry edited), the stored entries are replaced by it in one transaction.
        Concurrent upserts of different lists leave one of the lists, never a mix.
        ``name=None`` keeps the stored name. Returns the trace id, the same for the whole
        thread.

        This process remembers the list it stored last per thread (see
        :mod:`tracedb.sent`); the database checks every claim against a fingerprint of the
        stored entries, so a stale memory (another process wrote) only costs a second round
        trip.

        Raises:
            InvalidTraceData: an argument or an entry cannot be stored (nothing is changed).
        """
        user_id = self._writer_id(user_id)
        checks.require_text("provider_id", provider_id, optional=True)
        checks.require_text("thread_id", thread_id)
        checks.require_text("name", name, optional=True)
        entries = unwrap_trace_data(trace_data)
        key = (user_id, thread_id)
        who = {"user_id": user_id, "provider_id": provider_id, "thread_id": thread_id, "name": name}
        n = len(entries)

        sent = self._sent.get(key)
        if sent is not None and sent.extended_by(entries):
            # Only the new entries: the database appends them if its fingerprint still is
            # that of the list this process stored.
            start = len(sent.refs)
            new = self._prepare(entries[start:], start)
            tail = chain(sent.chain[start], new.digests)
            params = _append_params(entries=new.lazy_payload(), offset=start, chain=tail, **who)
            quick = None
            if n - start == 1 and name is None:  # one more entry: the per-event write
                quick = self._quick(sent.trace_id, new, start, thread_id=thread_id, user_id=user_id)
            row = yield Statement(q.APPEND, params, fetch="one", quick=quick)
            if row["in_sync"]:
                self._wrote(row)
                self._sent.put(key, row["trace_id"], entries, sent.chain[:start] + tail, extended=True)
                return row["trace_id"]
            state: tuple[int, str | None] | None = (row["entry_count"], row["fingerprint"])
        else:
            state = None

        # The whole list: fingerprint it (once per thread and process), then send what the
        # stored trace lacks, or everything to replace it.
        whole = self._prepare(entries)
        fingerprints = chain("", whole.digests)
        if state is None and n > PROBE_AFTER:
            probe = yield _one(q.THREAD_STATE, {"thread_id": thread_id, "user_id": user_id})
            state = (probe["entry_count"], probe["fingerprint"]) if probe else (0, "")
        start = 0
        if state is not None and state[0] <= n and state[1] == fingerprints[state[0]]:
            start = state[0]
        params = _append_params(
            entries=whole.payload(start), offset=start, chain=fingerprints[start:], replace=start == 0, **who
        )
        row = yield _one(q.APPEND, params)
        if not row["in_sync"]:
            # another writer changed the trace between the probe and this call: replace
            params = _append_params(
                entries=whole.payload(), offset=0, chain=fingerprints, replace=True, **who
            )
            row = yield _one(q.APPEND, params)
        self._wrote(row)
        self._sent.put(key, row["trace_id"], entries, fingerprints, extended=False)
        return row["trace_id"]

    @operation
    def append_entries(
        self,
        entries: list[dict[str, Any]],
        *,
        trace_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        provider_id: str | None = None,
        name: str | None = None,
        status: str | None = None,
        new_trace_id: str | None = None,
        new_turn: bool = False,
        batch_id: str | None = None,
        checkpoint_ids: list[str | None] | None = None,
        running_start: Mapping[str, Mapping[str, Any]] | None = None,
        running_end: list[str] | None = None,
        dropped: int = 0,
    ) -> Op[AppendResult]:
        """Append entries to a trace in one round trip; costs O(len(entries)).

        Give ``trace_id``, or ``thread_id`` and ``user_id`` to append to the most recent
        trace of that thread and user (created, with ``new_trace_id`` if given, when there is
        none). ``status`` and ``name``, when given, are set in the same statement.

        Args:
            entries: the entries, in order.
            new_turn: start the next turn of the conversation: these entries and every later
                one carry its number (``turn``) until the next turn starts.
            batch_id: a UUID naming this batch. Sending the same batch again (after a reply
                was lost) writes nothing and answers ``duplicate=True``: no entry is stored
                twice. The last 16 batch ids of a trace are remembered.
            checkpoint_ids: the checkpoint each entry's step started from, one per entry
                (None where unknown); stored in the entries' ``checkpoint_id`` column.
            running_start: nodes that started running, as ``{task id: marker}``; a marker is
                a dict with at least ``node`` and ``started_at``. Readers see them as steps
                with status ``running`` until ``running_end`` names their task or the trace
                ends.
            running_end: task ids of nodes that stopped running.
            dropped: entries the writer had to drop (counted on the trace).

        Raises:
            InvalidTraceData: bad arguments or entries (nothing is written).
            TraceNotFound: ``trace_id`` does not exist (or this view may not see it).
        """
        entries = check_trace_data(entries)
        if status is not None:
            checks.require_status(status)
        checks.require_text("name", name, optional=True)
        if checkpoint_ids is not None and (
            not isinstance(checkpoint_ids, list) or len(checkpoint_ids) != len(entries)
        ):
            raise InvalidTraceData("checkpoint_ids must be a list with one item per entry")
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise InvalidTraceData(f"dropped must be a non-negative integer, got {dropped!r}")
        batch = None
        if batch_id is not None:
            batch = checks.parse_uuid(batch_id)
            if batch is None:
                raise InvalidTraceData(f"batch_id must be a UUID, got {batch_id!r}")
        prepared = self._prepare(entries, checkpoint_ids=checkpoint_ids)
        params = _append_params(
            entries=prepared.lazy_payload(),
            status=status,
            name=name,
            new_turn=bool(new_turn),
            scope=self._scope,
            batch=batch,
            running=_running_param(running_start, running_end),
            dropped=dropped,
        )
        if trace_id is not None:
            tid = checks.parse_uuid(trace_id)
            if tid is None:
                raise TraceNotFound(f"no trace has the id {trace_id!r}")
            params["trace_id"] = tid
        else:
            params["thread_id"] = checks.require_text("thread_id", thread_id)
            params["user_id"] = self._writer_id(user_id)
            params["provider_id"] = checks.require_text("provider_id", provider_id, optional=True)
            if new_trace_id is not None:
                params["new_id"] = checks.parse_uuid(new_trace_id)
        quick = None
        if (
            trace_id is not None
            and len(entries) == 1
            and status is None
            and name is None
            and not new_turn
            and batch is None
            and params["running"] is None
            and not dropped
        ):  # one entry to a trace by id: the per-event write
            quick = self._quick(params["trace_id"], prepared)
        row = yield Statement(q.APPEND, params, fetch="one", combine=trace_id is not None, quick=quick)
        if row["written"]:
            self._wrote(row)
            self._sent.forget_trace(row["trace_id"])
        return AppendResult(
            row["trace_id"],
            row["first_seq"],
            row["entry_count"],
            row["written"],
            row["created"],
            row["turn"],
            row["duplicate"],
        )

    @operation
    def touch(self, trace_id: str) -> Op[bool]:
        """Beat a running trace's heartbeat: its writer is alive (a node may run for minutes
        without producing entries). False when the trace is not running or does not exist."""
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.TOUCH, self._by_id(id=tid))) > 0

    @operation
    def set_status(self, trace_id: str, status: str) -> Op[bool]:
        """Set a trace's status: running, completed, failed or interrupted."""
        checks.require_status(status)
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.SET_STATUS, self._by_id(status=status, id=tid))) > 0

    @operation
    def rename_trace(self, trace_id: str, name: str) -> Op[bool]:
        """Give a trace a new name. False when it does not exist."""
        checks.require_text("name", name)
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.RENAME, self._by_id(name=name, id=tid))) > 0

    @operation
    def update_metadata(self, trace_id: str, metadata: dict[str, Any]) -> Op[bool]:
        """Merge keys into a trace's metadata."""
        param = checks.metadata_param(metadata)
        tid = checks.parse_uuid(trace_id)
        if tid is None:
            return False
        return (yield _count(q.MERGE_METADATA, self._by_id(metadata=param, id=tid))) > 0
