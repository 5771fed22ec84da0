"""Turning a graph's stream into what the recorder stores.

The recorder asks LangGraph for ``updates`` (what each node produced), ``tasks`` (a node
starts; its result) and, when the graph has a checkpointer, ``checkpoints`` (the checkpoint
the next tasks start from), always with subgraphs. From them:

- a task start marks its node as running (``running_start``: node, start time, namespace
  and checkpoint), so readers see the node while it runs;
- a node's update gives its entries (its own ``automation_trace`` entries, else one derived
  entry), stored in the same append that ends its running mark (``running_end``), each with
  the checkpoint its step started from;
- an update LangGraph repeats from saved writes when a run resumes (``cached``) was stored
  by the run that made it: it only ends its running mark.

The checkpoint of a step is that of the top-level graph: for a step inside a subgraph, the
one its top-level node started from. That is a point a thread can be forked from and
replayed (the whole subgraph node runs again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import EntryTooLarge
from .jsonsafe import to_jsonable
from .summaries import derive_entry, interrupt_entry

Put = Callable[..., None]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _fingerprint(entry: Mapping[str, Any]) -> str:
    try:
        return json.dumps(entry, sort_keys=True, default=repr)
    # keys of mixed types, a repr that raises, an int too long for text: compare converted
    except Exception:  # noqa: BLE001
        try:
            return json.dumps(to_jsonable(entry), sort_keys=True)
        except (EntryTooLarge, RecursionError):
            return f"id:{id(entry)}"


class RunWatcher:
    """Reads the parts of one streamed run and hands entries and marks to ``put`` (the
    writer's)."""

    def __init__(self, put: Put, trace_key: str) -> None:
        self.put = put
        self.trace_key = trace_key
        self.clock: dict[tuple[str, ...], float] = {(): time.time()}
        self.step = 0
        self.last_node: str | None = None
        self.failed_node: str | None = None
        self.interrupted = False
        self.checkpoint: str | None = None
        # task id -> (namespace, node, start time) of the nodes running now
        self.running: dict[str, tuple[tuple[str, ...], str, float]] = {}
        self._echo: dict[str, int] = {}

    def consume(self, ns: tuple[str, ...], mode: str, data: Any) -> None:
        if mode == "updates":
            self.step += 1
            if isinstance(data, Mapping) and data:
                self.last_node = next(iter(data))
            self._on_update(ns, data)
        elif mode == "tasks" and isinstance(data, Mapping):
            self._on_task(ns, data)
        elif mode == "checkpoints" and not ns and isinstance(data, Mapping):
            config = data.get("config")
            configurable = config.get("configurable") if isinstance(config, Mapping) else None
            if isinstance(configurable, Mapping) and configurable.get("checkpoint_id"):
                self.checkpoint = str(configurable["checkpoint_id"])

    # -- tasks ------------------------------------------------------------------------

    def _on_task(self, ns: tuple[str, ...], data: Mapping[str, Any]) -> None:
        task_id, name = data.get("id"), data.get("name")
        if not isinstance(task_id, str) or not isinstance(name, str):
            return
        if "result" not in data and "error" not in data:  # the task starts
            if name.startswith("__"):
                return
            now = time.time()
            marker: dict[str, Any] = {"node": name, "started_at": _iso(now)}
            if ns:
                marker["namespace"] = "/".join(ns)
            if self.checkpoint:
                marker["checkpoint_id"] = self.checkpoint
            self.running[task_id] = (ns, name, now)
            self.put([], starts={task_id: marker})
            return
        if data.get("error") is not None:
            self.failed_node = name
        # Its update (if it had one) ended it already; a task that failed, was interrupted or
        # wrote nothing ends here.
        if self.running.pop(task_id, None) is not None:
            self.put([], ends=[task_id])

    def _task_of(self, ns: tuple[str, ...], node: str) -> tuple[str | None, float | None]:
        """The running task a node's update belongs to: the only task of that node in that
        namespace (several of the same name, as with Send, end at their results)."""
        found = [(tid, t[2]) for tid, t in self.running.items() if t[0] == ns and t[1] == node]
        if len(found) != 1:
            return None, None
        task_id, started = found[0]
        del self.running[task_id]
        return task_id, started

    # -- updates ----------------------------------------------------------------------

    def _on_update(self, ns: tuple[str, ...], data: Any) -> None:
        if not isinstance(data, Mapping):
            return
        now = time.time()
        started = self.clock.get(ns, self.clock[()])
        self.clock[ns] = now
        meta = data.get("__metadata__")
        cached = isinstance(meta, Mapping) and bool(meta.get("cached"))
        cps = self.checkpoint
        for node, update in data.items():
            if node == "__interrupt__":
                self.put([interrupt_entry(ns, update, now)], [cps])
                self.interrupted = True
                continue
            if not isinstance(node, str) or node.startswith("__"):
                continue
            task_id, task_started = self._task_of(ns, node)
            ends = [task_id] if task_id else None
            if cached:
                if ends:
                    self.put([], ends=ends)
                continue
            own = self._own_entries(ns, node, update)
            if own is None:
                began = task_started if task_started is not None else started
                own = [derive_entry(ns, node, update, began, now, self.step)]
            self.put(own, [cps] * len(own), ends=ends)

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
