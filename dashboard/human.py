"""Values as a person reads them: durations with units, thousands separators, plurals,
"—" where there is nothing to show."""

from __future__ import annotations

import math
from datetime import datetime

from tracedb.models import TraceSummary

MISSING = "—"
# Irregular plurals of the words the dashboard counts.
_PLURALS = {"entry": "entries", "match": "matches", "is": "are", "was": "were", "this": "these"}


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plural(n: int, word: str, many: str | None = None) -> str:
    """``word`` for one, its plural otherwise: ``plural(1, "trace")`` is ``"trace"``."""
    if n == 1:
        return word
    return many or _PLURALS.get(word) or word + "s"


def count(n: int | None, word: str, many: str | None = None) -> str:
    """``"1 trace"``, ``"1,204 traces"``, ``"0 entries"``; "—" for an unknown count."""
    if n is None:
        return MISSING
    return f"{n:,} {plural(n, word, many)}"


def number(value: float | None, decimals: int = 0) -> str:
    """A number with thousands separators, or "—"."""
    if _missing(value):
        return MISSING
    return f"{value:,.{decimals}f}"


def cost(usd: float | None) -> str:
    """A cost in US dollars with the digits that matter: ``"$1.24"``, ``"$0.0031"``,
    ``"<$0.0001"``, ``"$0"``; "—" when unknown."""
    if _missing(usd):
        return MISSING
    assert usd is not None
    if usd < 0:
        return "−" + cost(-usd)
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    if usd < 0.01:
        return f"${usd:.4f}".rstrip("0")
    return f"${usd:,.2f}"


def tokens(n: float | None) -> str:
    """A token count as it is read: ``"950"``, ``"12.3k"``, ``"4.1M"``; "—" when unknown."""
    if _missing(n):
        return MISSING
    assert n is not None
    if abs(n) < 10_000:
        return f"{n:,.0f}"
    if abs(n) < 999_950:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def percent(value: float | None) -> str:
    """A share as a percentage: ``0.125`` is ``"12.5%"``; "—" when there is none."""
    if _missing(value):
        return MISSING
    return f"{value:.1%}" if value < 0.1 and value != 0 else f"{value:.0%}"


def duration(ms: float | None) -> str:
    """A duration in the largest unit that keeps it short: ``"0.4 ms"``, ``"15 ms"``,
    ``"1.25 s"``, ``"2 min 5 s"``, ``"3 h 20 min"``, ``"2 d 4 h"``; "—" when unknown."""
    if _missing(ms):
        return MISSING
    assert ms is not None
    if ms < 0:
        return "−" + duration(-ms)
    if ms < 0.05:
        return "0 ms" if ms == 0 else "<0.1 ms"
    if ms < 10:
        return f"{ms:.1f} ms".replace(".0 ms", " ms")
    if ms < 999.5:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 59.5:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for big, small, name_big, name_small in ((86_400, 3600, "d", "h"), (3600, 60, "h", "min")):
        if whole >= big:
            high, rest = divmod(whole, big)
            low = round(rest / small)
            if low * small >= big:
                high, low = high + 1, 0
            return f"{high} {name_big} {low} {name_small}" if low else f"{high} {name_big}"
    minutes, secs = divmod(whole, 60)
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def delta(ms: float | None) -> str:
    """A change of duration with its sign: ``"+800 ms"``, ``"−1.20 s"``, ``"±0 ms"``."""
    if _missing(ms):
        return MISSING
    assert ms is not None
    if abs(ms) < 0.05:
        return "±0 ms"
    return ("+" if ms > 0 else "−") + duration(abs(ms))


def metric_delta(change: str | None) -> str | None:
    """A change (``"−1.20 s vs A"``) as ``st.metric`` should show it: Streamlit reads a change
    as a decrease only when its text starts with an ASCII hyphen-minus, so a leading
    typographic minus is written as one; no change (``"±0 ms"``) is shown as none."""
    if change is None or change.startswith("±"):
        return None
    return "-" + change[1:] if change.startswith("−") else change


def work_and_span(summary: TraceSummary) -> str:
    """How long a trace took: its work (the steps' time added up) and its span (first
    start to last end, pauses between turns included), e.g. ``"work 15 ms · span 2 min"``;
    one figure when they tell the same."""
    work, span = summary.work_ms, summary.duration_ms
    if work is None or span is None:
        return duration(span if work is None else work)
    if summary.turns > 1 or span > 2 * work + 1000:
        return f"work {duration(work)} · span {duration(span)}"
    return duration(span)


def trace_duration_ms(summary: TraceSummary) -> float | None:
    """The one figure for how long a trace took: its span for a single run, its work for a
    conversation of several turns (the idle time between turns is not the agent's)."""
    return summary.work_ms if summary.turns > 1 else summary.duration_ms


def when(moment: datetime | None) -> str:
    """A timestamp to the second, in UTC, or "—"."""
    return MISSING if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"
