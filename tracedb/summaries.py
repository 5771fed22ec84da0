"""Entries the recorder makes itself: one per node execution of a graph that keeps no
trace of its own, and entries for errors and interrupts. Short summaries, never whole
states, so an entry stays small whatever the graph carries."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

TEXT_LIMIT = 500


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _short(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    return _short(repr(value))


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
    tool_errors = [
        m for m in summary.get("messages", []) if isinstance(m, dict) and m.get("status") == "error"
    ]
    if tool_errors:
        entry["status"] = "error"
        entry["error"] = tool_errors[0].get("content", "tool error")
    return entry


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


def error_entry(node: str | None, exc: BaseException) -> dict[str, Any]:
    """The entry stored when a run raises."""
    now = datetime.now(UTC).isoformat()
    return {
        "node": node or "__graph__",
        "kind": "error",
        "name": type(exc).__name__,
        "status": "error",
        "error": _short(f"{type(exc).__name__}: {exc}", 2000),
        "traceback": _short("".join(traceback.format_exception(exc)), 8000),
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
