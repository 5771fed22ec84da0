"""Record any LangGraph graph's run into the trace store while it streams.

``TraceRecorder.stream`` runs the graph and yields exactly what ``graph.stream`` would yield
for the same arguments. Internally it always asks LangGraph for ``updates`` (with
subgraphs) so that it sees every node execution, and drops what the caller did not ask for.

Writes never block the run: entries go through a bounded in-memory buffer to a writer
thread that sends all pending entries in one ``append_entries`` call (one round trip) and,
while the database is unreachable, keeps them and retries, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from .summaries import derive_entry, error_entry, interrupt_entry
from .writer import FlushReport, Writer

log = logging.getLogger("tracedb.recorder")
DEFAULT_BUFFER_LIMIT = 10_000

TRACE_KEY = "automation_trace"
DEFAULT_FLUSH_TIMEOUT = 10.0


class TraceRecorder:
    """Run a LangGraph graph and store its trace as it grows.

    Args:
        db: an ``AutomationTraceDB``.
        user_id: owner of the trace.
        provider_id: optional provider (model) label stored on the trace.
        name: trace name; None keeps the stored one.
        buffer_limit: most entries held in memory while the database is unreachable;
            beyond it entries are dropped and reported (``FlushReport.dropped``).
        flush_timeout: seconds ``flush`` waits for pending entries at the end of a run.
        trace_key: the state key nodes append entries to.

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
    ) -> None:
        self.db = db
        self.user_id = user_id
        self.provider_id = provider_id
        self.name = name
        self.buffer_limit = buffer_limit
        self.flush_timeout = flush_timeout
        self.trace_key = trace_key
        self.thread_id: str | None = None
        self.trace_id: str | None = None
        self.status: str | None = None
        self._writer: Writer | None = None
        self._echo: dict[str, int] = {}

    # -- writing -------------------------------------------------------------------

    def _write(
        self, entries: list[dict[str, Any]], status: str | None, new_turn: bool, batch_id: str
    ) -> None:
        if self.trace_id is not None:
            self.db.append_entries(
                entries, trace_id=self.trace_id, status=status, new_turn=new_turn, batch_id=batch_id
            )
        else:
            result = self.db.append_entries(
                entries,
                thread_id=self.thread_id,
                user_id=self.user_id,
                provider_id=self.provider_id,
                name=self.name,
                status=status,
                new_turn=new_turn,
                batch_id=batch_id,
            )
            self.trace_id = result.trace_id

    def _begin(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        config = dict(config or {})
        configurable = dict(config.get("configurable") or {})
        if not configurable.get("thread_id"):
            configurable["thread_id"] = self.thread_id or str(uuid.uuid4())
        if str(configurable["thread_id"]) != self.thread_id:
            self.trace_id = None
        self.thread_id = str(configurable["thread_id"])
        config["configurable"] = configurable
        self._echo = {}
        self.status = "running"
        if self._writer is None or not self._writer.is_alive():
            self._writer = Writer(self, self.buffer_limit)
            self._writer.start()
        # Mark the trace running straight away so the dashboard sees the turn start.
        self._writer.put([], status="running", new_turn=True)
        return config

    def _record(self, entries: list[dict[str, Any]]) -> None:
        if entries and self._writer is not None:
            self._writer.put(entries)

    def flush(self, timeout: float | None = None) -> FlushReport:
        """Wait (at most ``timeout``, default ``flush_timeout``) until pending entries are
        stored; report what was and was not."""
        writer = self._writer
        if writer is None:
            return FlushReport(self.trace_id, 0, 0, 0)
        writer.drain(self.flush_timeout if timeout is None else timeout)
        with writer.cond:
            report = FlushReport(
                self.trace_id,
                writer.written,
                len(writer.pending) + writer.in_flight,
                writer.dropped,
                list(writer.errors),
            )
        if report.pending:
            log.error(
                "trace of thread %s: %d entries could not be written yet (still buffered)",
                self.thread_id,
                report.pending,
            )
        return report

    def close(self, timeout: float | None = None) -> FlushReport:
        """Flush and stop the writer thread."""
        report = self.flush(timeout)
        if self._writer is not None:
            self._writer.close()
        return report

    # -- turning stream parts into entries --------------------------------------------

    def _on_update(
        self, ns: tuple[str, ...], data: Any, clock: dict[tuple[str, ...], float], step: int
    ) -> None:
        if not isinstance(data, Mapping):
            return
        now = time.time()
        started = clock.get(ns, clock[()])
        clock[ns] = now
        out: list[dict[str, Any]] = []
        for node, update in data.items():
            if node == "__interrupt__":
                out.append(interrupt_entry(ns, update, now))
                self.status = "interrupted"
                continue
            if node.startswith("__"):
                continue
            own = self._own_entries(ns, node, update)
            if own is None:
                out.append(derive_entry(ns, node, update, started, now, step))
            else:
                out.extend(own)
        self._record(out)

    def _own_entries(self, ns: tuple[str, ...], node: str, update: Any) -> list[dict[str, Any]] | None:
        """Entries a node put in the trace key, None when it has no such key."""
        updates = update if isinstance(update, list) else [update]
        found = False
        entries: list[dict[str, Any]] = []
        for upd in updates:
            if isinstance(upd, Mapping) and self.trace_key in upd:
                found = True
                value = upd[self.trace_key]
                if isinstance(value, list):
                    entries.extend(e if isinstance(e, Mapping) else {"node": node, "value": e} for e in value)
        if not found:
            return None
        if ns:
            # A subgraph's entries reach the parent again in the parent's update of the
            # subgraph node: remember them to store them only once.
            for e in entries:
                key = _fingerprint(e)
                self._echo[key] = self._echo.get(key, 0) + 1
            return [dict(e, namespace="/".join(ns)) if "namespace" not in e else dict(e) for e in entries]
        if not self._echo:  # no subgraph entries pending: nothing to compare
            return [dict(e) for e in entries]
        kept = []
        for e in entries:
            key = _fingerprint(e)
            if self._echo.get(key):
                self._echo[key] -= 1
                if not self._echo[key]:
                    del self._echo[key]
                continue
            kept.append(dict(e))
        return kept

    # -- streaming ------------------------------------------------------------------

    def _plan(self, graph: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, bool, str]:
        requested = kwargs.get("stream_mode")
        if requested is None:
            requested = getattr(graph, "stream_mode", "values")
        modes = [requested] if isinstance(requested, str) else list(requested)
        inner = dict(kwargs)
        inner["stream_mode"] = list(dict.fromkeys([*modes, "updates"]))
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

    def _finish(self, exc: BaseException | None, node_hint: str | None) -> None:
        if exc is None:
            final = "interrupted" if self.status == "interrupted" else "completed"
        elif isinstance(exc, GeneratorExit | KeyboardInterrupt | asyncio.CancelledError):
            final = "interrupted"
        else:
            final = "failed"
            self._record([error_entry(node_hint, exc)])
        self.status = final
        if self._writer is not None:
            self._writer.put([], status=final)

    def _run(
        self, graph: Any, config: Mapping[str, Any] | None, stream_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], _Run]:
        config = self._begin(config)
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
            self._finish(exc, run.last_node)
            self.flush()
            raise
        self._finish(None, run.last_node)
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
            self._finish(exc, run.last_node)
            await asyncio.to_thread(self.flush)
            raise
        self._finish(None, run.last_node)
        await asyncio.to_thread(self.flush)


class _Run:
    """One streamed run: records each part and shapes it for the caller."""

    def __init__(self, rec: TraceRecorder, requested: Any, subgraphs: bool, version: str) -> None:
        self.rec = rec
        self.requested = requested
        self.subgraphs = subgraphs
        self.version = version
        self.clock: dict[tuple[str, ...], float] = {(): time.time()}
        self.last_node: str | None = None
        self.step = 0

    def consume(self, part: Any) -> tuple[bool, Any]:
        ns, mode, data = self.rec._unpack(part, self.version)
        if mode == "updates":
            self.step += 1
            if isinstance(data, Mapping) and data:
                self.last_node = next(iter(data))
            self.rec._on_update(ns, data, self.clock, self.step)
        return self.rec._shape(part, self.requested, self.subgraphs, self.version)


def _fingerprint(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=repr)


__all__: Sequence[str] = ("FlushReport", "TraceRecorder")
