"""What the synchronous and the asynchronous store share: argument checks, parameters,
error translation and the per-thread offset hints. No I/O here."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from . import queries as q
from .errors import DatabaseUnavailable, InvalidTraceData, TraceNotFound
from .jsonsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRY_BYTES, check_trace_data, prepare_entries
from .models import AppendResult, TraceFilter
from .server import ServerInfo

# Traces of fewer entries than this are sent whole on a process's first upsert of a thread;
# longer ones are probed first so that the payload stays O(new entries).
PROBE_AFTER = 50
KNOWN_THREADS = 10_000


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg errors caused by input into InvalidTraceData, a missing trace into
    TraceNotFound, and a lost server into DatabaseUnavailable."""
    try:
        yield
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        raise InvalidTraceData(f"the database refused the data: {exc.diag.message_primary or exc}") from exc
    except psycopg.errors.NoDataFound as exc:  # tracedb_append on a missing trace
        raise TraceNotFound(exc.diag.message_primary or str(exc)) from exc
    except psycopg.errors.QueryCanceled:
        raise
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"the database is unreachable: {exc}") from exc


class ThreadOffsets:
    """How many entries this process last saw stored per thread. Only a hint: the
    database checks it on every write and answers with the truth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[str, int] = OrderedDict()

    def get(self, thread_id: str) -> int | None:
        with self._lock:
            return self._known.get(thread_id)

    def put(self, thread_id: str, count: int) -> None:
        with self._lock:
            self._known[thread_id] = count
            self._known.move_to_end(thread_id)
            while len(self._known) > KNOWN_THREADS:
                self._known.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


APPEND_DEFAULTS: dict[str, Any] = {
    "trace_id": None,
    "user_id": None,
    "provider_id": None,
    "thread_id": None,
    "name": None,
    "offset": None,
    "status": None,
    "new_id": None,
}


class StoreBase:
    """Checks and parameters shared by AutomationTraceDB and AsyncAutomationTraceDB."""

    server: ServerInfo
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def _init_common(self, max_entry_bytes: int, max_depth: int, timeout: float) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.max_depth = max_depth
        self.timeout = timeout
        self._offsets = ThreadOffsets()

    def _prepare(self, entries: list[Any], start_index: int = 0) -> str:
        return prepare_entries(
            entries, max_entry_bytes=self.max_entry_bytes, max_depth=self.max_depth, start_index=start_index
        )

    @staticmethod
    def _append_params(**params: Any) -> dict[str, Any]:
        return {**APPEND_DEFAULTS, **params}

    def _save_plan(
        self, user_id: str, provider_id: str | None, thread_id: str, trace_data: Any, name: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(INSERT_TRACE params, APPEND params) of save_trace, after every check."""
        q.require_text("user_id", user_id)
        q.require_text("provider_id", provider_id, optional=True)
        q.require_text("thread_id", thread_id)
        q.require_text("name", name, optional=True)
        entries = self._prepare(check_trace_data(trace_data))
        trace_id = str(uuid.uuid4())
        insert = {
            "id": trace_id,
            "user_id": user_id,
            "provider_id": provider_id,
            "thread_id": thread_id,
            "name": name,
            "status": "completed",
            "metadata": q.metadata_param(None),
        }
        return insert, self._append_params(trace_id=trace_id, entries=entries)

    def _upsert_check(
        self, user_id: str, provider_id: str | None, thread_id: str, trace_data: Any, name: str | None
    ) -> dict[str, Any]:
        q.require_text("user_id", user_id)
        q.require_text("provider_id", provider_id, optional=True)
        q.require_text("thread_id", thread_id)
        q.require_text("name", name, optional=True)
        if not isinstance(trace_data, list):
            check_trace_data(trace_data)  # raises the usual message
        # Entries already stored are not looked at again (that would make each call O(n));
        # the new ones are checked one by one when they are prepared.
        return {"user_id": user_id, "provider_id": provider_id, "thread_id": thread_id, "name": name}

    def _upsert_params(self, base: dict[str, Any], trace_data: list[Any], offset: int) -> dict[str, Any]:
        return self._append_params(entries=self._prepare(trace_data[offset:], offset), offset=offset, **base)

    def _first_offset(self, thread_id: str, trace_data: list[Any]) -> int:
        known = self._offsets.get(thread_id)
        if known is None:
            return 0 if len(trace_data) <= PROBE_AFTER else len(trace_data)
        return min(known, len(trace_data))

    def _append_plan(
        self,
        entries: Any,
        trace_id: str | None,
        thread_id: str | None,
        user_id: str | None,
        provider_id: str | None,
        name: str | None,
        status: str | None,
        new_trace_id: str | None,
    ) -> dict[str, Any]:
        check_trace_data(entries)
        if status is not None:
            q.require_status(status)
        q.require_text("name", name, optional=True)
        params = self._append_params(entries=self._prepare(entries), status=status, name=name)
        if trace_id is not None:
            tid = q.parse_uuid(trace_id)
            if tid is None:
                raise TraceNotFound(f"no trace has the id {trace_id!r}")
            params["trace_id"] = tid
        else:
            params["thread_id"] = q.require_text("thread_id", thread_id)
            params["user_id"] = q.require_text("user_id", user_id)
            params["provider_id"] = q.require_text("provider_id", provider_id, optional=True)
            if new_trace_id is not None:
                params["new_id"] = q.parse_uuid(new_trace_id)
        return params

    @staticmethod
    def _append_result(row: dict[str, Any]) -> AppendResult:
        return AppendResult(
            row["trace_id"], row["first_seq"], row["entry_count"], row["written"], row["created"]
        )

    def _update_plan(self, trace_id: str, name: str | None, trace_data: Any) -> tuple[str | None, str | None]:
        q.require_text("name", name, optional=True)
        entries = self._prepare(check_trace_data(trace_data)) if trace_data is not None else None
        return q.parse_uuid(trace_id), entries

    @staticmethod
    def _delete_plan(flt: TraceFilter | None, allow_all: bool, batch_size: int) -> tuple[Any, list[Any]]:
        if q.is_empty_filter(flt) and not allow_all:
            raise InvalidTraceData("refusing to delete every trace: pass allow_all=True")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidTraceData("batch_size must be a positive integer")
        return q.delete_batch_query(flt, batch_size)

    @staticmethod
    def _valid_thread(thread_id: Any) -> bool:
        return isinstance(thread_id, str) and bool(thread_id) and "\x00" not in thread_id
