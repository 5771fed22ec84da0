"""Trace entries: the record each node appends to ``automation_trace``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["plan", "llm", "tool", "summary"]
ENTRY_KEYS = ("node", "kind", "name", "input", "output", "started_at", "ended_at", "duration_ms", "status")
MAX_TEXT_CHARS = 4000


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked when cut, so one entry never grows huge."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Step:
    """Times one unit of work and turns it into an entry.

    Start it just before the work, then call :meth:`entry` when the work has finished or
    failed. Wall-clock timestamps go in ``started_at``/``ended_at``; the duration comes
    from a monotonic clock, so a clock adjustment cannot make it negative.
    """

    node: str
    kind: Kind
    name: str
    input: Any = None
    started_at: datetime = field(default_factory=utc_now)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def entry(self, output: Any = None, error: BaseException | str | None = None) -> dict[str, Any]:
        """The finished entry: ``status`` ``ok``, or ``error`` with the ``error`` text."""
        duration_ms = (time.perf_counter() - self._t0) * 1000
        entry: dict[str, Any] = {
            "node": self.node,
            "kind": self.kind,
            "name": self.name,
            "input": self.input,
            "output": output,
            "started_at": self.started_at.isoformat(),
            "ended_at": utc_now().isoformat(),
            "duration_ms": round(duration_ms, 3),
            "status": "ok" if error is None else "error",
        }
        if error is not None:
            entry["error"] = clip(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        return entry
