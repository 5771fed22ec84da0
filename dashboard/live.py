"""The latest steps of a trace that is being recorded, read a few at a time."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard import frames
from tracedb.models import TraceSummary

LIVE_ROWS = 30


def recent_steps(
    db: Any, summary: TraceSummary, kept: dict[str, pd.DataFrame], rows: int = LIVE_ROWS
) -> pd.DataFrame:
    """The trace's last ``rows`` steps (``frames.entries_frame`` columns).

    ``kept`` holds what an earlier call read (one trace at a time); only steps after the
    last one kept are read, so redrawing after every step of a run costs what that step
    added, however long the trace has grown. The first read of a trace starts from its
    last ``rows`` steps.
    """
    shown = kept.get(summary.id)
    if shown is None or shown.empty:
        after, shown = max(-1, summary.entry_count - rows - 1), None
    else:
        after = int(shown["seq"].iloc[-1])
    new = frames.entries_frame(db.entry_columns(summary.id, after_seq=after))
    both = new if shown is None else pd.concat([shown, new], ignore_index=True)
    latest = both.tail(rows).reset_index(drop=True)
    kept.clear()
    kept[summary.id] = latest
    return latest
