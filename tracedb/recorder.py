"""Record any LangGraph graph's run into the trace store while it streams.

``TraceRecorder.stream`` runs the graph and yields exactly what ``graph.stream`` would yield
for the same arguments. Internally it also asks LangGraph for ``updates``, ``tasks`` and
(with a checkpointer) ``checkpoints``, with subgraphs, so that it sees every node start and
end (see :mod:`tracedb.steps`), and drops what the caller did not ask for.

Writes never block or break the run: entries go through a bounded in-memory buffer to a
writer thread (:mod:`tracedb.writer`) that sends everything pending in one append, keeps
entries while the database is unreachable and retries them in order, and survives whatever
the database or the entries do.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from .buffer import Batch
from .limits import HEARTBEAT_S
from .link import StoreLink
from .steps import RunWatcher
from .summaries import error_entry, graph_structure
from .writer import FlushReport, Writer

log = logging.getLogger("tracedb.recorder")
DEFAULT_BUFFER_LIMIT = 10_000

TRACE_KEY = "automation_trace"
DEFAULT_FLUSH_TIMEOUT = 10.0
# What the recorder asks LangGraph for besides what the caller asks for.
WATCHED_MODES = ("updates", "tasks")


class _TraceSink:
    """Where one writer sends: the trace of one thread, over the writer's own connection."""

    def __init__(self, rec: TraceRecorder, thread_id: str, trace_id: str | None) -> None:
        self.rec = rec
        self.thread_id: str | None = thread_id
        self.trace_id = trace_id
        self.link = StoreLink(rec.db)
        self.graph: Any = None
        self._described: tuple[str, int] | None = None

    def append(self, batch: Batch) -> None:
        kwargs: dict[str, Any] = {
            "status": batch.status,
            "new_turn": batch.new_turn,
            "batch_id": batch.batch_id,
            "checkpoint_ids": batch.checkpoint_ids,
            "running_start": batch.running_start or None,
            "running_end": batch.running_end or None,
            "dropped": batch.dropped,
        }
        if self.trace_id is not None:
            self.link.call("append_entries", batch.entries, trace_id=self.trace_id, **kwargs)
            return
        result = self.link.call(
            "append_entries",
            batch.entries,
            thread_id=self.thread_id,
            user_id=self.rec.user_id,
            provider_id=self.rec.provider_id,
            name=self.rec.name,
            **kwargs,
        )
        self.trace_id = result.trace_id

    def touch(self) -> None:
        if self.trace_id is not None:
            self.link.call("touch", self.trace_id)

    def after_append(self) -> None:
        """Once per trace (and graph): store the graph's structure and the recorder's
        metadata on it."""
        if self.trace_id is None:
            return
        key = (self.trace_id, id(self.graph))
        if self._described == key:
            return
        metadata: dict[str, Any] = {}
        if self.rec.record_graph and self.graph is not None:
            structure = graph_structure(self.graph)
            if structure is not None:
                metadata["graph"] = structure
        metadata.update(self.rec.metadata)
        if metadata:
            self.link.call("update_metadata", self.trace_id, metadata)
        self._described = key

    def forget_trace(self) -> None:
        self.trace_id = None

    def idle(self) -> None:
        self.link.close()


class TraceRecorder:
    """Run a LangGraph graph and store its trace as it grows.

    Args:
        db: an ``AutomationTraceDB`` (or a view of it from ``as_user``).
        user_id: owner of the trace.
        provider_id: optional provider (model) label stored on the trace.
        name: trace name; None keeps the stored one.
        buffer_limit: most entries held in memory while the database is unreachable;
            beyond it the oldest waiting entries are dropped, counted
            (``FlushReport.dropped``) and marked on the trace by a gap entry.
        flush_timeout: seconds ``flush`` waits for pending entries at the end of a run.
        trace_key: the state key nodes append entries to.
        heartbeat_s: seconds between heartbeats while a run writes nothing (a trace not
            heard from for ``TRACEDB_ABANDON_AFTER`` seconds reads as abandoned).
        metadata: keys merged into the trace's metadata once per trace (for example
            ``forked_from``).
        record_graph: store the graph's nodes and edges in ``metadata["graph"]``.

    Every turn of a thread (``config["configurable"]["thread_id"]``) goes into the
    thread's one trace.
    """

    def __init__(
        self,
        db: Any,
        user_id: str,
        provider_id: str | None = None,
        name: str | None = None,
        *,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        trace_key: str = TRACE_KEY,
        heartbeat_s: float = HEARTBEAT_S,
        metadata: Mapping[str, Any] | None = None,
        record_graph: bool = True,
    ) -> None:
        self.db = db
        self.user_id = user_id
        self.provider_id = provider_id
        self.name = name
        self.buffer_limit = buffer_limit
        self.flush_timeout = flush_timeout
        self.trace_key = trace_key
        self.heartbeat_s = heartbeat_s
        self.metadata = dict(metadata or {})
        self.record_graph = record_graph
        self.thread_id: str | None = None
        self.status: str | None = None
        self._sink: _TraceSink | None = None
        self._writer: Writer | None = None

    @property
    def trace_id(self) -> str | None:
        """The trace being written (None until the first write reached the database)."""
        return self._sink.trace_id if self._sink is not None else None

    # -- writing -------------------------------------------------------------------

    def _begin(self, graph: Any, config: Mapping[str, Any] | None) -> dict[str, Any]:
        config = dict(config or {})
        configurable = dict(config.get("configurable") or {})
        if not configurable.get("thread_id"):
            configurable["thread_id"] = self.thread_id or str(uuid.uuid4())
        thread_id = str(configurable["thread_id"])
        config["configurable"] = configurable
        same_thread = self._sink is not None and self._sink.thread_id == thread_id
        if not same_thread or self._writer is None or not self._writer.restart():
            if self._writer is not None:
                self._writer.close()  # it finishes sending its own thread's entries
            self._sink = _TraceSink(self, thread_id, self.trace_id if same_thread else None)
            self._writer = Writer(self._sink, self.buffer_limit, heartbeat_s=self.heartbeat_s)
            self._writer.start()
        assert self._sink is not None
        self._sink.graph = graph
        self.thread_id = thread_id
        self.status = "running"
        # Mark the trace running straight away so the dashboard sees the turn start.
        self._writer.put([], status="running", new_turn=True)
        return config

    def flush(self, timeout: float | None = None) -> FlushReport:
        """Wait (at most ``timeout``, default ``flush_timeout``) until pending entries are
        stored; report what was and was not."""
        writer = self._writer
        if writer is None:
            return FlushReport(self.trace_id, 0, 0, 0)
        writer.drain(self.flush_timeout if timeout is None else timeout)
        report = writer.report(self.trace_id)
        if report.pending:
            log.error(
                "trace of thread %s: %d entries could not be written yet (still buffered)",
                self.thread_id,
                report.pending,
            )
        return report

    def close(self, timeout: float | None = None) -> FlushReport:
        """Flush and let the writer thread end (once nothing is left to send)."""
        report = self.flush(timeout)
        if self._writer is not None:
            self._writer.close()
        return report

    # -- streaming ------------------------------------------------------------------

    def _plan(self, graph: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, bool, str]:
        requested = kwargs.get("stream_mode")
        if requested is None:
            requested = getattr(graph, "stream_mode", "values")
        modes = [requested] if isinstance(requested, str) else list(requested)
        watched = list(WATCHED_MODES)
        if getattr(graph, "checkpointer", None) not in (None, False):
            watched.append("checkpoints")
        inner = dict(kwargs)
        inner["stream_mode"] = list(dict.fromkeys([*modes, *watched]))
        inner["subgraphs"] = True
        return inner, requested, bool(kwargs.get("subgraphs")), kwargs.get("version", "v1")

    @staticmethod
    def _shape(part: Any, requested: Any, subgraphs: bool, version: str) -> tuple[bool, Any]:
        """(keep, chunk) for the caller, from an internal (ns, mode, data) or v2 part."""
        if version == "v2":
            ns, mode = part["ns"], part["type"]
            chunk = part
        else:
            ns, mode, data = part
            if isinstance(requested, str):
                chunk = (ns, data) if subgraphs else data
            else:
                chunk = (ns, mode, data) if subgraphs else (mode, data)
        wanted = mode == requested if isinstance(requested, str) else mode in requested
        return wanted and (subgraphs or not ns), chunk

    @staticmethod
    def _unpack(part: Any, version: str) -> tuple[tuple[str, ...], str, Any]:
        if version == "v2":
            return tuple(part["ns"]), part["type"], part["data"]
        ns, mode, data = part
        return tuple(ns), mode, data

    def _finish(self, run: _Run, exc: BaseException | None) -> None:
        writer = self._writer
        assert writer is not None
        if exc is None:
            final = "interrupted" if run.watcher.interrupted else "completed"
        elif isinstance(exc, GeneratorExit | KeyboardInterrupt | asyncio.CancelledError):
            final = "interrupted"
        else:
            final = "failed"
            node = run.watcher.failed_node or run.watcher.last_node
            writer.put([error_entry(node, exc)], [run.watcher.checkpoint])
        self.status = final
        writer.put([], status=final)

    def _run(
        self, graph: Any, config: Mapping[str, Any] | None, stream_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], _Run]:
        config = self._begin(graph, config)
        inner, requested, subgraphs, version = self._plan(graph, stream_kwargs)
        return config, inner, _Run(self, requested, subgraphs, version)

    def stream(
        self, graph: Any, input: Any, config: Mapping[str, Any] | None = None, **stream_kwargs: Any
    ) -> Iterator[Any]:
        """Run ``graph.stream(input, config, **stream_kwargs)``, recording as chunks pass.

        Yields exactly the chunks ``graph.stream`` yields with the same arguments. A graph
        error is stored as an entry, the trace marked failed, and the error re-raised.
        """
        config, inner, run = self._run(graph, config, stream_kwargs)
        try:
            for part in graph.stream(input, config, **inner):
                keep, chunk = run.consume(part)
                if keep:
                    yield chunk
        except BaseException as exc:
            self._finish(run, exc)
            self.flush()
            raise
        self._finish(run, None)
        self.flush()

    async def astream(
        self, graph: Any, input: Any, config: Mapping[str, Any] | None = None, **stream_kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async twin of :meth:`stream`, over ``graph.astream``."""
        config, inner, run = self._run(graph, config, stream_kwargs)
        try:
            async for part in graph.astream(input, config, **inner):
                keep, chunk = run.consume(part)
                if keep:
                    yield chunk
        except BaseException as exc:
            self._finish(run, exc)
            await asyncio.to_thread(self.flush)
            raise
        self._finish(run, None)
        await asyncio.to_thread(self.flush)


class _Run:
    """One streamed run: records each part and shapes it for the caller."""

    def __init__(self, rec: TraceRecorder, requested: Any, subgraphs: bool, version: str) -> None:
        self.rec = rec
        self.requested = requested
        self.subgraphs = subgraphs
        self.version = version
        writer = rec._writer
        assert writer is not None
        self.writer = writer
        self.watcher = RunWatcher(writer.put, rec.trace_key)

    def consume(self, part: Any) -> tuple[bool, Any]:
        ns, mode, data = self.rec._unpack(part, self.version)
        try:
            self.watcher.consume(ns, mode, data)
        # Recording must never break the caller's run: a part that cannot be read is
        # counted and reported, and the stream goes on.
        except Exception as exc:  # noqa: BLE001
            self.writer.failed_to_record(mode, exc)
        return self.rec._shape(part, self.requested, self.subgraphs, self.version)


__all__: Sequence[str] = ("FlushReport", "TraceRecorder")
