"""A trace that is being recorded: its latest steps, read a few at a time, and the steps
running now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common, frames, human
from tracedb.models import TraceSummary

LIVE_ROWS = 30


def recent_steps(
    db: Any, summary: TraceSummary, kept: dict[str, pd.DataFrame], rows: int = LIVE_ROWS
) -> pd.DataFrame:
    """The trace's last ``rows`` stored steps (``frames.entries_frame`` columns), then the
    steps running now.

    ``kept`` holds the stored steps an earlier call read (one trace at a time); only steps
    after the last one kept are read, so redrawing after every step of a run costs what that
    step added, however long the trace has grown. The first read of a trace starts from its
    last ``rows`` steps. Running steps are read afresh each time: they change as nodes start
    and end.
    """
    shown = kept.get(summary.id)
    if shown is None or shown.empty:
        after, shown = max(-1, summary.entry_count - rows - 1), None
    else:
        after = int(shown["seq"].iloc[-1])
    new = frames.entries_frame(db.entry_columns(summary.id, after_seq=after))
    stored, running = frames.finished(new), new[new["open"]]
    both = stored if shown is None else pd.concat([shown, stored], ignore_index=True)
    latest = both.tail(rows).reset_index(drop=True)
    kept.clear()
    kept[summary.id] = latest
    return pd.concat([latest, running], ignore_index=True) if not running.empty else latest


def clock(summary: TraceSummary) -> datetime:
    """Where steps that have not ended end: now while the trace runs, the last sign of its
    writer when it was abandoned."""
    if summary.status == "abandoned":
        return summary.heartbeat_at or summary.updated_at
    return datetime.now(UTC)


def running_line(entries: pd.DataFrame, summary: TraceSummary) -> None:
    """Which steps are running, and for how long so far (nothing when none is)."""
    running = frames.running_now(entries, clock(summary))
    if not running:
        return
    listed = ", ".join(f"{common.as_plain_markdown(what)} for {human.duration(ms)}" for what, ms in running)
    if summary.status == "abandoned":
        st.markdown(f":violet[:material/link_off:] Running when its writer went silent: {listed}")
    else:
        st.markdown(f":blue[:material/progress_activity:] Running now: {listed}")
