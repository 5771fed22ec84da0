"""pandas frames the dashboard shows and plots. Pure functions of store results: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from dashboard import human
from tracedb.models import TraceSummary

ENTRY_COLUMNS = (
    "seq",
    "node",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "turn",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
)
# Statuses of a step that has started and not ended: running now, or when its writer went
# silent (the trace is abandoned).
OPEN_STATUSES = ("running", "abandoned")
INPUT_KEYS = ("input", "inputs", "args", "arguments", "tool_input", "messages", "request")
OUTPUT_KEYS = ("output", "outputs", "result", "response", "content", "error")
PREVIEW_CHARS = 160
# The space drawn between two turns of a conversation, as a share of the time they worked.
TURN_GAP = 0.04
TRACE_COLUMNS = [
    "name",
    "status",
    "entries",
    "duration",
    "updated",
    "user",
    "thread",
    "turns",
    "work",
    "span",
    "errors",
    "created",
    "provider",
    "tokens",
    "cost",
    "lost",
    "id",
]
_STATUS_MARKS = {"completed": "✓", "failed": "✗", "running": "●", "interrupted": "‖", "abandoned": "○"}


def status_text(summary: TraceSummary, hint: str | None = None) -> str:
    """A trace's status as words a person scans: a mark that does not need colour, the
    status, and what went wrong (``"✗ failed: TimeoutError: …"``, ``"⚠ completed, 1 error
    step"``, ``"✓ completed, 140 entries lost"`` when the recorder could not store some)."""
    mark = _STATUS_MARKS.get(summary.status, "?")
    text = f"{mark} {summary.status}"
    if summary.status == "completed" and summary.error_count:
        text = f"⚠ completed, {human.count(summary.error_count, 'error step')}"
    if summary.dropped_count:
        text += f", {human.count(summary.dropped_count, 'entry')} lost"
    if hint:
        text += f": {hint}"
    return text


def button_label(text: str) -> str:
    """``text`` as a table button shows it: the icon syntax ``:material/…:`` kept as text."""
    return text.replace(":material/", ":\u200bmaterial/")


def traces_frame(items: Sequence[TraceSummary], hints: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per trace, in the order given: what a person scans first (name, status with
    an error hint, entries, duration, last update, user), then the rest."""
    hints = hints or {}
    rows = [
        {
            "name": s.name or s.thread_id,
            "status": status_text(s, hints.get(s.id)),
            "entries": s.entry_count,
            "duration": human.duration(human.trace_duration_ms(s)),
            "updated": s.updated_at,
            "user": s.user_id,
            "thread": s.thread_id,
            "turns": s.turns or None,
            "work": human.duration(s.work_ms),
            "span": human.duration(s.duration_ms),
            "errors": s.error_count,
            "created": s.created_at,
            "provider": s.provider_id,
            "tokens": s.total_tokens,
            "cost": s.cost_usd,
            "lost": s.dropped_count or None,
            "id": s.id,
        }
        for s in items
    ]
    frame = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    return frame.astype(
        {
            "entries": "int64",
            "errors": "int64",
            "turns": "Int64",
            "tokens": "Int64",
            "cost": "float64",
            "lost": "Int64",
        }
    )


def entries_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Entry columns (as returned by ``AutomationTraceDB.entry_columns``) as a typed frame.

    ``turn`` is the run of a conversation an entry belongs to (missing when the writer
    marks no turns). Steps running now come last, without a ``seq`` (``<NA>``); the
    ``open`` column marks them. Columns a store did not return are missing values.
    """
    n = len(columns.get("seq", []))
    data = {name: list(columns.get(name) or [None] * n) for name in ENTRY_COLUMNS}
    frame = pd.DataFrame(data, columns=list(ENTRY_COLUMNS))
    for name in ("started_at", "ended_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["seq"] = pd.to_numeric(frame["seq"], errors="coerce").astype("Int64")
    for name in ("duration_ms", "cost_usd"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in ("turn", "input_tokens", "output_tokens", "total_tokens"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
    for name in ("node", "kind", "name", "status", "model"):
        frame[name] = frame[name].astype("object")
    frame["open"] = frame["seq"].isna().to_numpy(dtype=bool)
    return frame


def finished(entries: pd.DataFrame) -> pd.DataFrame:
    """The stored steps of an entries frame, without those running now."""
    return entries[~entries["open"]] if "open" in entries else entries


def running_now(entries: pd.DataFrame, now: datetime) -> list[tuple[str, float | None]]:
    """The steps running now, as ``(what, how long so far in ms)``, longest first."""
    out = []
    for row in entries[entries["open"]].itertuples(index=False):
        what = str(row.node or row.name or row.kind or "a step")
        so_far = (now - row.started_at).total_seconds() * 1000.0 if pd.notna(row.started_at) else None
        out.append((what, so_far))
    return sorted(out, key=lambda item: -(item[1] or 0.0))


def lane_of(frame: pd.DataFrame) -> pd.Series:
    """The row a step is drawn on: its node, else its kind, else its name."""
    lane = frame["node"].where(frame["node"].notna() & (frame["node"] != ""), frame["kind"])
    lane = lane.where(lane.notna() & (lane != ""), frame["name"])
    return lane.fillna("(none)").astype(str)


def took_text(entries: pd.DataFrame, now: datetime) -> pd.Series:
    """How long each step took, with its unit; ``"running 3.20 s"`` for a step running now."""
    took = entries["duration_ms"].map(human.duration)
    if entries["open"].any():
        so_far = (pd.Timestamp(now) - entries["started_at"]).dt.total_seconds() * 1000.0
        took = took.where(~entries["open"], "running " + so_far.map(human.duration))
    return took


def timeline_frame(entries: pd.DataFrame, now: datetime | None = None) -> tuple[pd.DataFrame, str]:
    """Where each step sits on the timeline, and the axis: ``"time"`` or ``"step"``.

    Adds ``lane``, ``at`` (seconds since the first step, as it happened), ``start`` and
    ``end`` (where the step is drawn) and ``turn`` (1 when the writer marks no turns).
    Steps without a start follow the previous step; steps without an end last their
    ``duration_ms``, or nothing when that is missing too. A step running now (``open``)
    reaches ``now``; its time so far is ``open_ms``. On a time axis, the pause between
    two turns of a conversation is cut to a small gap, so each turn's steps keep their
    width; ``turn_bands`` tells where each turn is drawn.
    """
    out = entries.copy()
    if "open" not in out:
        out["open"] = False
    if now is not None:
        # A running step ends now, as far as anyone knows (never before it started).
        is_open = out["open"].to_numpy(dtype=bool) & out["ended_at"].isna().to_numpy()
        stamp = pd.Timestamp(now)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        out.loc[is_open, "ended_at"] = out.loc[is_open, "started_at"].where(
            out.loc[is_open, "started_at"] > stamp, stamp
        )
    out["open_ms"] = np.where(
        out["open"].to_numpy(dtype=bool),
        (out["ended_at"] - out["started_at"]).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
        * 1000.0,
        np.nan,
    )
    out["lane"] = lane_of(out)
    out["turn"] = out["turn"].fillna(1).astype("int64")
    n = len(out)
    has_time = bool(out["started_at"].notna().any() or out["ended_at"].notna().any())
    has_duration = bool(out["duration_ms"].notna().any())
    if n == 0 or not (has_time or has_duration):
        out["start"] = np.arange(n, dtype="float64")
        out["end"] = out["start"] + 1.0
        out["at"] = np.nan  # no times: where a step is in time is unknown
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
    out["at"] = starts - origin
    out["start"], out["end"] = _without_pauses(out["turn"].to_numpy(), starts - origin, ends - origin)
    return out, "time"


def _without_pauses(turns: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each turn after the previous one with a small gap instead of the real pause."""
    order = list(dict.fromkeys(turns.tolist()))
    if len(order) < 2:
        return starts, ends
    spans = {t: (starts[turns == t].min(), ends[turns == t].max()) for t in order}
    gap = TURN_GAP * sum(high - low for low, high in spans.values()) or 1.0
    shift = np.zeros(len(starts))
    drawn_end = None
    for t in order:
        low, high = spans[t]
        offset = 0.0 if drawn_end is None else drawn_end + gap - low
        # a turn that overlaps the previous one (concurrent writers) keeps its place
        offset = min(offset, 0.0) if drawn_end is not None and low <= drawn_end else offset
        shift[turns == t] = offset
        drawn_end = high + offset if drawn_end is None else max(drawn_end, high + offset)
    return starts + shift, ends + shift


def turn_bands(timeline: pd.DataFrame) -> pd.DataFrame:
    """One row per turn: where it is drawn (``start``, ``end``), its steps, the work of its
    steps (``work_ms``) and the pause before it (``idle_ms``, as it happened)."""
    columns = ["turn", "start", "end", "steps", "work_ms", "idle_ms"]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    grouped = timeline.assign(at_end=timeline["at"] + (timeline["end"] - timeline["start"])).groupby(
        "turn", sort=False
    )
    bands = grouped.agg(
        start=("start", "min"),
        end=("end", "max"),
        steps=("seq", "size"),
        work_ms=("duration_ms", "sum"),
        first_at=("at", "min"),
        last_at=("at_end", "max"),
    ).reset_index()
    bands["idle_ms"] = (bands["first_at"] - bands["last_at"].shift(1)).clip(lower=0) * 1000.0
    return bands[columns]


def _seconds(series: pd.Series) -> np.ndarray:
    """Epoch seconds as floats, NaN where missing."""
    values = np.full(len(series), np.nan)
    mask = series.notna().to_numpy()
    if mask.any():
        stamps = series[mask]
        values[mask] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return values


def node_stats(entries: pd.DataFrame) -> pd.DataFrame:
    """Per lane: steps, errors, total/mean/p50/p95 duration (ms), share of total time; of
    the stored steps (a step running now has no duration yet)."""
    entries = finished(entries)
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


def readable_node_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """``node_stats`` with headers in words and durations with their units."""
    out = pd.DataFrame(
        {
            "node": stats["node"],
            "steps": stats["steps"],
            "errors": stats["errors"],
            "total time": stats["total_ms"].map(human.duration),
            "mean": stats["mean_ms"].map(human.duration),
            "median": stats["p50_ms"].map(human.duration),
            "95th percentile": stats["p95_ms"].map(human.duration),
            "share of time": stats["share"],
        }
    )
    return out


# Columns of the entries table that only a trace with model usage shows.
USAGE_VIEW = ("model", "tokens", "cost")


def has_usage(entries: pd.DataFrame) -> bool:
    """Whether any step of the trace names its model or reports tokens or a cost."""
    return bool(
        entries["model"].notna().any()
        or entries["total_tokens"].notna().any()
        or entries["cost_usd"].notna().any()
    )


def entries_view(rows: pd.DataFrame) -> pd.DataFrame:
    """Timeline rows (``timeline_frame``) as the entries table shows them: durations with
    units, a running step's time so far, tokens and cost."""
    took = rows["duration_ms"].map(human.duration)
    if rows["open"].any():
        took = took.where(~rows["open"], "running " + rows["open_ms"].map(human.duration))
    return pd.DataFrame(
        {
            "seq": rows["seq"],
            "turn": rows["turn"],
            "node": rows["node"],
            "kind": rows["kind"],
            "name": rows["name"],
            "status": rows["status"],
            "started": (rows["at"] * 1000).map(human.duration),
            "took": took,
            "model": rows["model"],
            "tokens": rows["total_tokens"],
            "cost": rows["cost_usd"].map(lambda v: human.cost(v) if pd.notna(v) else None),
        }
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


def entry_fields(data: Any) -> Mapping[str, Any]:
    """An entry's data as fields: a JSON object as it is; any other JSON value an entry may
    be (a list, a text, a number, null) as its ``output``."""
    return data if isinstance(data, Mapping) else {"output": data}


def entry_previews(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """seq, input and output previews of entries that carry their ``data``."""
    out = []
    for row in rows:
        data = entry_fields(row.get("data"))
        out.append(
            {
                "seq": row["seq"],
                "input": short_text(pick(data, INPUT_KEYS)),
                "output": short_text(pick(data, OUTPUT_KEYS)),
            }
        )
    return pd.DataFrame(out, columns=["seq", "input", "output"])


def conversation_from_entries(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The questions and answers of a recorded conversation, in order: a plan step's
    ``input.request`` is a question, a model step's text without tool calls an answer."""
    said: list[tuple[str, str]] = []
    for row in rows:
        data = row.get("data") if isinstance(row.get("data"), Mapping) else {}
        kind, given, output = data.get("kind"), data.get("input"), data.get("output")
        if kind == "plan" and isinstance(given, Mapping) and isinstance(given.get("request"), str):
            said.append(("user", given["request"]))
        elif kind == "llm" and isinstance(output, Mapping) and not output.get("tool_calls"):
            text = output.get("content")
            if isinstance(text, str) and text.strip():
                said.append(("assistant", text))
    return said


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


def latency_frames(rows: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's ``latency`` rows as two frames of ``bucket``, ``p50_ms``, ``p95_ms`` and
    ``n`` (how many values each was computed from): one of step durations, one of trace work."""
    frame = pd.DataFrame(
        list(rows),
        columns=["bucket", "traces", "trace_p50_ms", "trace_p95_ms", "step_p50_ms", "step_p95_ms", "steps"],
    )
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    out = []
    for prefix, count in (("step", "steps"), ("trace", "traces")):
        out.append(
            pd.DataFrame(
                {
                    "bucket": frame["bucket"],
                    "p50_ms": pd.to_numeric(frame[f"{prefix}_p50_ms"], errors="coerce").astype("float64"),
                    "p95_ms": pd.to_numeric(frame[f"{prefix}_p95_ms"], errors="coerce").astype("float64"),
                    "n": pd.to_numeric(frame[count], errors="coerce").fillna(0).astype("int64"),
                }
            )
        )
    return out[0], out[1]


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
