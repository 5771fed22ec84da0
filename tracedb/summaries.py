"""Entries the recorder makes itself: one per node execution of a graph that keeps no
trace of its own, and entries for errors, interrupts, entries the database refused and
entries that could not be stored (gaps). Short summaries, never whole states, so an entry
stays small whatever the graph carries.

A derived entry of a model step carries the model's ``usage`` (tokens, as LangChain's
``usage_metadata`` reports them, added up over the step's replies) and ``model`` (from the
reply's ``response_metadata``), where the store reads token and cost totals from.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .jsonsafe import unconvertible

TEXT_LIMIT = 500


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _repr(value: Any) -> str:
    try:
        return repr(value)
    # an object whose repr fails is named, not allowed to stop the recording
    except Exception as exc:  # noqa: BLE001
        return unconvertible(value, exc)


def _short(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = text if isinstance(text, str) else _repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - an exception whose text fails still names its type
        return type(exc).__name__


def summarize_message(msg: Any) -> dict[str, Any]:
    """Type, short content and tool calls of a LangChain message (or anything else)."""
    out: dict[str, Any] = {"type": getattr(msg, "type", type(msg).__name__)}
    content = getattr(msg, "content", None)
    if content is None and isinstance(msg, Mapping):
        content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) if isinstance(part, Mapping) else str(part) for part in content
        )
    if content:
        out["content"] = _short(content)
    calls = getattr(msg, "tool_calls", None)
    if calls:
        out["tool_calls"] = [
            {"name": c.get("name"), "args": c.get("args")} for c in calls if isinstance(c, Mapping)
        ]
    name = getattr(msg, "name", None)
    if name:
        out["name"] = name
    status = getattr(msg, "status", None)
    if status and status != "success":
        out["status"] = status
    return out


def _summarize_value(value: Any) -> Any:
    if isinstance(value, list) and value and all(hasattr(m, "content") for m in value[:5]):
        return [summarize_message(m) for m in value[-20:]]
    if hasattr(value, "content") and hasattr(value, "type"):
        return summarize_message(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return _short(value) if isinstance(value, str) else value
    return _short(_repr(value))


def derive_entry(
    ns: tuple[str, ...], node: str, update: Any, started: float, ended: float, step: int
) -> dict[str, Any]:
    """One entry for a node execution of a graph without its own trace key."""
    updates = update if isinstance(update, list) else [update]
    keys: list[str] = []
    summary: dict[str, Any] = {}
    for upd in updates:
        if isinstance(upd, Mapping):
            for key, value in upd.items():
                keys.append(str(key))
                summary[str(key)] = _summarize_value(value)
    entry: dict[str, Any] = {
        "node": node,
        "kind": _kind(node, summary),
        "name": node,
        "step": step,
        "changed_keys": keys,
        "output": summary,
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "duration_ms": round((ended - started) * 1000.0, 3),
        "status": "ok",
    }
    if ns:
        entry["namespace"] = "/".join(ns)
    if entry["kind"] == "llm":
        usage, model = usage_of_messages(updates)
        if usage:
            entry["usage"] = usage
        if model:
            entry["model"] = model
    tool_errors = [
        m for m in summary.get("messages", []) if isinstance(m, dict) and m.get("status") == "error"
    ]
    if tool_errors:
        entry["status"] = "error"
        entry["error"] = tool_errors[0].get("content", "tool error")
    return entry


def _add_counts(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, Mapping):
            _add_counts(total.setdefault(str(key), {}), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            previous = total.get(str(key))
            total[str(key)] = value + (previous if isinstance(previous, int) else 0)


def usage_of_messages(updates: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Token usage added up over the AI messages of a node's updates, and their model."""
    usage: dict[str, Any] = {}
    model: str | None = None
    for upd in updates:
        if not isinstance(upd, Mapping):
            continue
        messages = upd.get("messages")
        for msg in messages if isinstance(messages, list) else [messages]:
            if getattr(msg, "type", None) not in ("ai", "AIMessageChunk"):
                continue
            reported = getattr(msg, "usage_metadata", None)
            if isinstance(reported, Mapping):
                _add_counts(usage, reported)
            meta = getattr(msg, "response_metadata", None)
            if isinstance(meta, Mapping):
                name = meta.get("model_name") or meta.get("model")
                if isinstance(name, str) and name:
                    model = name[:200]
    return usage or None, model


def _kind(node: str, summary: Mapping[str, Any]) -> str:
    messages = summary.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict):
            if last.get("type") == "tool":
                return "tool"
            if last.get("type") in ("ai", "AIMessageChunk"):
                return "llm"
    return "node"


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:  # noqa: BLE001 - see _error_text
        return _error_text(exc)


def error_entry(node: str | None, exc: BaseException) -> dict[str, Any]:
    """The entry stored when a run raises."""
    now = datetime.now(UTC).isoformat()
    return {
        "node": node or "__graph__",
        "kind": "error",
        "name": type(exc).__name__,
        "status": "error",
        "error": _short(_error_text(exc), 2000),
        "traceback": _short(_traceback(exc), 8000),
        "started_at": now,
        "ended_at": now,
        "duration_ms": 0.0,
    }


def interrupt_entry(ns: tuple[str, ...], value: Any, ts: float) -> dict[str, Any]:
    """The entry stored when the graph pauses on an interrupt."""
    items = value if isinstance(value, list | tuple) else [value]
    entry: dict[str, Any] = {
        "node": "__interrupt__",
        "kind": "interrupt",
        "name": "interrupt",
        "status": "ok",
        "output": [
            _short(getattr(i, "value", i), 2000)
            if not isinstance(getattr(i, "value", i), dict | list)
            else getattr(i, "value", i)
            for i in items
        ],
        "started_at": _iso(ts),
        "ended_at": _iso(ts),
        "duration_ms": 0.0,
    }
    if ns:
        entry["namespace"] = "/".join(ns)
    return entry


def gap_entry(count: int, first: float, last: float, reasons: Mapping[str, int]) -> dict[str, Any]:
    """The entry stored where entries could not be (dropped for a full buffer, or a write
    that failed): how many, why, and from when to when they were produced."""
    return {
        "node": "__recorder__",
        "kind": "gap",
        "name": "entries not recorded",
        "status": "gap",
        "dropped": count,
        "reasons": dict(reasons),
        "first_dropped_at": _iso(first),
        "last_dropped_at": _iso(last),
        "started_at": _iso(first),
        "ended_at": _iso(last),
        # the gap is time the run went on, not work of a step
        "duration_ms": 0.0,
    }


def refused_entry(entry: Any, exc: BaseException, index: int | None) -> dict[str, Any]:
    """The error entry stored instead of an entry the database refused: why, and which
    entry it was (its node, kind, name and keys, and its position in the run)."""
    original = entry if isinstance(entry, Mapping) else {}

    def label(key: str) -> str | None:
        value = original.get(key)
        return value[:100] if isinstance(value, str) and value else None

    node = label("node")
    now = datetime.now(UTC).isoformat()
    started = original.get("started_at")
    where: dict[str, Any] = {
        "node": node,
        "kind": label("kind"),
        "name": label("name"),
        "namespace": label("namespace"),
        "keys": sorted(k[:100] if isinstance(k, str) else f"<{type(k).__name__}>" for k in original)[:50],
        "index": index,
    }
    return {
        "node": node or "__recorder__",
        "kind": "error",
        "name": "entry not recorded",
        "status": "error",
        "error": _short(f"the database refused this entry: {_error_text(exc)}", 2000),
        "refused": {k: v for k, v in where.items() if v is not None},
        "started_at": started if isinstance(started, str) and len(started) <= 64 else now,
        "ended_at": now,
        "duration_ms": 0.0,
    }


# A graph drawn with its subgraphs expanded is kept when it has at most this many nodes;
# otherwise the top level alone is stored.
MAX_GRAPH_NODES = 500


def _drawn(graph: Any, xray: bool) -> dict[str, Any] | None:
    drawn = graph.get_graph(xray=xray).to_json()
    nodes = []
    for node in drawn.get("nodes", []):
        data = node.get("data")
        name = data.get("name") if isinstance(data, Mapping) else None
        nodes.append(
            {"id": str(node.get("id")), "name": str(name or node.get("id")), "type": node.get("type")}
        )
    edges = []
    for edge in drawn.get("edges", []):
        out = {"source": str(edge.get("source")), "target": str(edge.get("target"))}
        if edge.get("conditional"):
            out["conditional"] = True
        if isinstance(edge.get("data"), str):
            out["label"] = edge["data"]
        edges.append(out)
    return {"nodes": nodes, "edges": edges}


def graph_structure(graph: Any) -> dict[str, Any] | None:
    """The nodes and edges of a LangGraph graph (``get_graph().to_json()``, subgraphs
    expanded as ``parent:child`` nodes when that works and stays small), each node as
    ``{"id", "name", "type"}`` and each edge as ``{"source", "target"}`` plus
    ``conditional`` and ``label`` when set; None for something that cannot be drawn."""
    if not callable(getattr(graph, "get_graph", None)):
        return None
    for xray in (True, False):
        # Drawing runs user code (subgraphs are compiled, schemas read): any failure just
        # means this view is not available.
        try:
            drawn = _drawn(graph, xray)
        except Exception:  # noqa: BLE001
            continue
        if drawn is not None and (not xray or len(drawn["nodes"]) <= MAX_GRAPH_NODES):
            return drawn
    return None
