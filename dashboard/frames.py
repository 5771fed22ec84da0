"""pandas frames the dashboard shows and plots. Pure functions of store results: no I/O."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tracedb.models import TraceSummary

ENTRY_COLUMNS = ("seq", "node", "kind", "name", "status", "started_at", "ended_at", "duration_ms")
INPUT_KEYS = ("input", "inputs", "args", "arguments", "tool_input", "messages", "request")
OUTPUT_KEYS = ("output", "outputs", "result", "response", "content", "error")
PREVIEW_CHARS = 160


def thread_link(trace_id: str) -> str:
    """Relative URL of a trace's thread page."""
    return f"thread?trace={trace_id}"


def traces_frame(items: Sequence[TraceSummary]) -> pd.DataFrame:
    """One row per trace, in the order given, with a link to its thread page."""
    rows = [
        {
            "open": thread_link(s.id),
            "name": s.name or "",
            "thread": s.thread_id,
            "user": s.user_id,
            "status": s.status,
            "entries": s.entry_count,
            "errors": s.error_count,
            "duration_s": None if s.duration_ms is None else round(s.duration_ms / 1000.0, 3),
            "created": s.created_at,
            "updated": s.updated_at,
            "id": s.id,
        }
        for s in items
    ]
    columns = [
        "open",
        "name",
        "thread",
        "user",
        "status",
        "entries",
        "errors",
        "duration_s",
        "created",
        "updated",
        "id",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"entries": "int64", "errors": "int64", "duration_s": "float64"})


def entries_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Entry columns (as returned by ``AutomationTraceDB.entry_columns``) as a typed frame."""
    data = {name: list(columns.get(name, [])) for name in ENTRY_COLUMNS}
    frame = pd.DataFrame(data, columns=list(ENTRY_COLUMNS))
    for name in ("started_at", "ended_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["seq"] = frame["seq"].astype("int64")
    frame["duration_ms"] = pd.to_numeric(frame["duration_ms"], errors="coerce").astype("float64")
    for name in ("node", "kind", "name", "status"):
        frame[name] = frame[name].astype("object")
    return frame


def lane_of(frame: pd.DataFrame) -> pd.Series:
    """The row a step is drawn on: its node, else its kind, else its name."""
    lane = frame["node"].where(frame["node"].notna() & (frame["node"] != ""), frame["kind"])
    lane = lane.where(lane.notna() & (lane != ""), frame["name"])
    return lane.fillna("(none)").astype(str)


def timeline_frame(entries: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Where each step sits on the timeline, and the axis: ``"time"`` or ``"step"``.

    Adds ``lane``, ``start`` and ``end`` (seconds since the first step when the entries carry
    times or durations, else step numbers). Steps without a start follow the previous step;
    steps without an end last their ``duration_ms``, or nothing when that is missing too.
    """
    out = entries.copy()
    out["lane"] = lane_of(out)
    n = len(out)
    has_time = bool(out["started_at"].notna().any() or out["ended_at"].notna().any())
    has_duration = bool(out["duration_ms"].notna().any())
    if n == 0 or not (has_time or has_duration):
        out["start"] = np.arange(n, dtype="float64")
        out["end"] = out["start"] + 1.0
        return out, "step"
    nan = np.nan
    started = _seconds(out["started_at"])
    ended = _seconds(out["ended_at"])
    duration = out["duration_ms"].to_numpy(dtype="float64") / 1000.0
    starts = np.empty(n)
    ends = np.empty(n)
    cursor = nan
    for i in range(n):
        s, e, d = started[i], ended[i], duration[i]
        if s != s:  # NaN: no start of its own
            s = e - d if (e == e and d == d) else cursor
        if e != e:
            e = s + d if d == d else s
        if s != s:  # nothing known before this step: it starts the trace
            s = 0.0 if cursor != cursor else cursor
            e = s + (d if d == d else 0.0)
        starts[i], ends[i] = s, max(e, s)
        cursor = max(ends[i], cursor) if cursor == cursor else ends[i]
    origin = np.nanmin(starts)
    out["start"] = starts - origin
    out["end"] = ends - origin
    return out, "time"


def _seconds(series: pd.Series) -> np.ndarray:
    """Epoch seconds as floats, NaN where missing."""
    values = np.full(len(series), np.nan)
    mask = series.notna().to_numpy()
    if mask.any():
        stamps = series[mask]
        values[mask] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return values


def node_stats(entries: pd.DataFrame) -> pd.DataFrame:
    """Per lane: steps, errors, total/mean/p50/p95 duration (ms), share of total time."""
    if entries.empty:
        return pd.DataFrame(
            columns=["node", "steps", "errors", "total_ms", "mean_ms", "p50_ms", "p95_ms", "share"]
        )
    frame = entries.assign(
        lane=lane_of(entries), is_error=entries["status"].astype(str).str.lower().isin(["error", "failed"])
    )
    grouped = frame.groupby("lane", sort=False)
    stats = pd.DataFrame(
        {
            "steps": grouped.size(),
            "errors": grouped["is_error"].sum().astype("int64"),
            "total_ms": grouped["duration_ms"].sum(min_count=1),
            "mean_ms": grouped["duration_ms"].mean(),
            "p50_ms": grouped["duration_ms"].quantile(0.5),
            "p95_ms": grouped["duration_ms"].quantile(0.95),
        }
    )
    total = stats["total_ms"].sum()
    stats["share"] = stats["total_ms"] / total if total else np.nan
    stats = stats.rename_axis("node").reset_index()
    return stats.sort_values(["total_ms", "steps"], ascending=False, na_position="last").reset_index(
        drop=True
    )


def filter_entries(
    entries: pd.DataFrame, nodes: Sequence[str] = (), kinds: Sequence[str] = (), statuses: Sequence[str] = ()
) -> pd.DataFrame:
    """Rows whose node, kind and status are among those chosen (an empty choice keeps all)."""
    mask = pd.Series(True, index=entries.index)
    for column, chosen in (("node", nodes), ("kind", kinds), ("status", statuses)):
        if chosen:
            mask &= entries[column].fillna("(none)").isin(list(chosen))
    return entries[mask]


def choices(entries: pd.DataFrame, column: str) -> list[str]:
    """Sorted distinct values of a column, ``(none)`` for missing ones."""
    return sorted(entries[column].fillna("(none)").astype(str).unique().tolist())


def pick(data: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """The value of the first of ``keys`` present in ``data``, else None."""
    for key in keys:
        if key in data and data[key] not in (None, "", [], {}):
            return data[key]
    return None


def _gist(value: Any) -> Any:
    """What a person reads first in a model output: its tool calls, else its text."""
    if isinstance(value, Mapping):
        calls = value.get("tool_calls")
        if isinstance(calls, list) and calls and all(isinstance(c, Mapping) for c in calls):
            return "→ " + ", ".join(
                f"{c.get('name', '?')}({json.dumps(c.get('args', {}), ensure_ascii=False, default=str)})"
                for c in calls
            )
        for key in ("content", "answer", "text"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key]
    return value


def short_text(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line text of a JSON value, cut to ``limit`` characters."""
    value = _gist(value)
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_previews(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """seq, input and output previews of entries that carry their ``data``."""
    out = []
    for row in rows:
        data = row.get("data") if isinstance(row.get("data"), Mapping) else {}
        out.append(
            {
                "seq": row["seq"],
                "input": short_text(pick(data, INPUT_KEYS)),
                "output": short_text(pick(data, OUTPUT_KEYS)),
            }
        )
    return pd.DataFrame(out, columns=["seq", "input", "output"])


# -- comparing two traces -----------------------------------------------------------------


def _step_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return (str(entry.get("node") or entry.get("kind") or ""), str(entry.get("name") or ""))


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _duration(entry: Mapping[str, Any] | None) -> float | None:
    if entry is None:
        return None
    value = entry.get("duration_ms")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def align_traces(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], duration_tolerance: float = 0.25
) -> pd.DataFrame:
    """Align two traces' entries step by step on their (node, name) sequence.

    Entries are dicts with at least ``seq`` and ``data`` (as from ``get_entries``). Each row
    is one aligned step: ``op`` is equal, changed, only A or only B; ``differs`` names what
    differs between matched steps (node, input, output, duration beyond the tolerance).
    """
    da = [r.get("data") or {} for r in a]
    db_ = [r.get("data") or {} for r in b]
    matcher = difflib.SequenceMatcher(
        a=[_step_key(e) for e in da], b=[_step_key(e) for e in db_], autojunk=False
    )
    rows: list[dict[str, Any]] = []

    def add(i: int | None, j: int | None, op: str) -> None:
        ea = da[i] if i is not None else None
        eb = db_[j] if j is not None else None
        differs: list[str] = []
        if ea is not None and eb is not None:
            if _step_key(ea) != _step_key(eb):
                differs.append("node")
            if not _same(pick(ea, INPUT_KEYS), pick(eb, INPUT_KEYS)):
                differs.append("input")
            if not _same(pick(ea, OUTPUT_KEYS), pick(eb, OUTPUT_KEYS)):
                differs.append("output")
            ma, mb = _duration(ea), _duration(eb)
            if ma is not None and mb is not None and abs(ma - mb) > duration_tolerance * max(ma, mb, 1.0):
                differs.append("duration")
            if op == "equal" and differs:
                op = "changed"
        ma, mb = _duration(ea), _duration(eb)
        rows.append(
            {
                "step": len(rows),
                "op": op,
                "differs": ", ".join(differs),
                "a_seq": a[i]["seq"] if i is not None else None,
                "a_node": _step_key(ea)[0] if ea is not None else "",
                "a_name": _step_key(ea)[1] if ea is not None else "",
                "a_ms": ma,
                "b_seq": b[j]["seq"] if j is not None else None,
                "b_node": _step_key(eb)[0] if eb is not None else "",
                "b_name": _step_key(eb)[1] if eb is not None else "",
                "b_ms": mb,
                "delta_ms": (mb - ma) if ma is not None and mb is not None else None,
                "a_input": short_text(pick(ea, INPUT_KEYS)) if ea is not None else "",
                "b_input": short_text(pick(eb, INPUT_KEYS)) if eb is not None else "",
                "a_output": short_text(pick(ea, OUTPUT_KEYS)) if ea is not None else "",
                "b_output": short_text(pick(eb, OUTPUT_KEYS)) if eb is not None else "",
            }
        )

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                add(i1 + k, j1 + k, "equal")
        elif tag == "replace":
            # Pair the overlapping part so that a changed tool stays on one row.
            for k in range(max(i2 - i1, j2 - j1)):
                i = i1 + k if i1 + k < i2 else None
                j = j1 + k if j1 + k < j2 else None
                add(
                    i,
                    j,
                    "changed" if i is not None and j is not None else ("only A" if j is None else "only B"),
                )
        elif tag == "delete":
            for i in range(i1, i2):
                add(i, None, "only A")
        else:
            for j in range(j1, j2):
                add(None, j, "only B")
    frame = pd.DataFrame(
        rows,
        columns=[
            "step",
            "op",
            "differs",
            "a_seq",
            "a_node",
            "a_name",
            "a_ms",
            "b_seq",
            "b_node",
            "b_name",
            "b_ms",
            "delta_ms",
            "a_input",
            "b_input",
            "a_output",
            "b_output",
        ],
    )
    for col in ("a_seq", "b_seq"):
        frame[col] = frame[col].astype("Int64")
    for col in ("a_ms", "b_ms", "delta_ms"):
        frame[col] = frame[col].astype("float64")
    return frame


def alignment_counts(aligned: pd.DataFrame) -> dict[str, int]:
    """How many aligned steps are equal, changed, only in A, only in B."""
    counts = aligned["op"].value_counts()
    return {op: int(counts.get(op, 0)) for op in ("equal", "changed", "only A", "only B")}


# -- overview -----------------------------------------------------------------------------


def per_day_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Traces per day and status (long form) plus each day's error rate."""
    frame = pd.DataFrame(list(rows), columns=["day", "status", "traces", "with_errors", "entries"])
    if frame.empty:
        return frame.assign(error_rate=pd.Series(dtype="float64"))
    frame["day"] = pd.to_datetime(frame["day"], utc=True)
    for col in ("traces", "with_errors", "entries"):
        frame[col] = frame[col].astype("int64")
    daily = frame.groupby("day")[["traces", "with_errors"]].transform("sum")
    frame["error_rate"] = daily["with_errors"] / daily["traces"]
    return frame


def error_rate_frame(per_day: pd.DataFrame) -> pd.DataFrame:
    """One row per day: traces, traces with errors, error rate."""
    if per_day.empty:
        return pd.DataFrame(columns=["day", "traces", "with_errors", "error_rate"])
    daily = per_day.groupby("day", as_index=False)[["traces", "with_errors"]].sum()
    daily["error_rate"] = daily["with_errors"] / daily["traces"]
    return daily


def merge_steps(timeline: pd.DataFrame, by: str, tolerance: float) -> pd.DataFrame:
    """Steps of one lane and one ``by`` value that overlap or lie less than ``tolerance``
    apart, joined into one bar: what a big timeline draws when single steps would be narrower
    than a pixel. Columns: lane, value, start, end, steps, first_seq, last_seq, busy_ms."""
    columns = ["lane", "value", "start", "end", "steps", "first_seq", "last_seq", "busy_ms"]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "lane": timeline["lane"].to_numpy(),
            "value": timeline[by].fillna("(none)").astype(str).to_numpy(),
            "start": timeline["start"].to_numpy(dtype="float64"),
            "end": timeline["end"].to_numpy(dtype="float64"),
            "seq": timeline["seq"].to_numpy(),
            "ms": (timeline["end"] - timeline["start"]).to_numpy() * 1000.0,
        }
    ).sort_values(["lane", "value", "start"], kind="stable")
    reach = frame.groupby(["lane", "value"], sort=False)["end"].cummax()
    previous = reach.groupby([frame["lane"], frame["value"]], sort=False).shift(1)
    new_bar = previous.isna() | (frame["start"] > previous + tolerance)
    frame["bar"] = new_bar.cumsum()
    merged = frame.groupby("bar", sort=False).agg(
        lane=("lane", "first"),
        value=("value", "first"),
        start=("start", "min"),
        end=("end", "max"),
        steps=("seq", "size"),
        first_seq=("seq", "min"),
        last_seq=("seq", "max"),
        busy_ms=("ms", "sum"),
    )
    return merged.reset_index(drop=True)[columns]
