"""Files to download, made when the user clicks.

``st.download_button`` runs a callable given as its ``data`` on a thread of its own when
the button is clicked, and serves what it returns (Streamlit 1.67 reads a returned file
into its media store, keeps it while the session lives, and never in session state).
These callables write page by page from ``tracedb.export`` into a temporary file, so making
a download holds one page of traces in memory, and a page run holds nothing.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from tracedb import TraceFilter, export

MIME = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}


def _spooled(write: Callable[[io.TextIOBase], None]) -> BinaryIO:
    """Run ``write`` into a temporary file; the file, opened for reading from its start.

    The file has no name left on disk: it is removed as soon as it is open for reading,
    and its space is freed when Streamlit drops it.
    """
    handle, path = tempfile.mkstemp(prefix="tracedb-export-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            write(out)
        reader = open(path, "rb")  # noqa: SIM115 - Streamlit reads and drops it
    finally:
        os.unlink(path)
    return reader


def traces_file(db: Any, flt: TraceFilter, fmt: str) -> Callable[[], BinaryIO]:
    """A callable for ``st.download_button``: every trace matching ``flt`` in ``fmt``."""
    if fmt not in export.FORMATS:
        raise ValueError(f"format must be one of {', '.join(export.FORMATS)}")

    def make() -> BinaryIO:
        return _spooled(lambda out: export.write_traces(db, flt, fmt, out))

    return make


def trace_file(db: Any, trace_id: str) -> Callable[[], BinaryIO]:
    """A callable for ``st.download_button``: one whole trace as a JSON object."""

    def make() -> BinaryIO:
        def write(out: io.TextIOBase) -> None:
            trace = db.load_trace_by_id(trace_id)
            json.dump(export.trace_to_dict(trace) if trace else None, out, ensure_ascii=False, indent=1)

        return _spooled(write)

    return make
