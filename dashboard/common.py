"""What every page shares: one store per process, the current user, the server's label."""

from __future__ import annotations

import os
import re
import sys
import time

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from tracedb import AutomationTraceDB, TraceDBError, TraceSummary
from tracedb.server import default_data_dir, describe_url

CONNECT_TIMEOUT_S = float(os.environ.get("TRACEDB_CONNECT_TIMEOUT") or 5.0)
STATUS_BADGES = {"running": "blue", "completed": "green", "failed": "red", "interrupted": "orange"}
RETRY_AFTER_S = 5.0
_FAILURE_KEY = "tracedb_db_failure"


@st.cache_resource(show_spinner="Connecting to the database…", on_release=AutomationTraceDB.close)
def _open_store(url: str | None) -> AutomationTraceDB:
    return AutomationTraceDB(url, timeout=CONNECT_TIMEOUT_S)


def database_url() -> str | None:
    return os.environ.get("TRACEDB_URL") or None


def get_db() -> AutomationTraceDB | None:
    """The process's store, or None when it cannot be opened (the reason in ``db_problem``).

    A failure is remembered for a few seconds so that one page run waits for the server
    once, not once per caller.
    """
    failed = st.session_state.get(_FAILURE_KEY)
    if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
        return None
    try:
        db = _open_store(database_url())
    except TraceDBError as exc:
        st.session_state[_FAILURE_KEY] = (time.monotonic(), f"The trace database cannot be reached: {exc}")
        return None
    except OSError as exc:  # the embedded server failed to start
        st.session_state[_FAILURE_KEY] = (
            time.monotonic(),
            f"The embedded database could not be started: {exc}",
        )
        return None
    st.session_state.pop(_FAILURE_KEY, None)
    return db


def db_problem() -> str:
    failed = st.session_state.get(_FAILURE_KEY)
    return failed[1] if failed else "The trace database cannot be reached."


def use_navigation() -> None:
    """Make sure app.py's navigation frames this page.

    A fresh server whose first visitor opens a deep link such as ``/thread?trace=…`` runs
    ``pages/thread.py`` on its own (Streamlit's older folder-based multipage mode, chosen
    because a ``pages/`` folder exists) until some run calls ``st.navigation``. Switch the
    process to ``st.navigation`` and run again, so the same URL goes through app.py.
    ``AppTest`` picks the mode again before every run, so under it the page just runs.
    """
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if "streamlit.testing.v1.app_test" not in sys.modules:
            st.rerun()


def require_db() -> AutomationTraceDB:
    """The store; show why and stop the page when there is none."""
    use_navigation()
    db = get_db()
    if db is None:
        st.error(db_problem())
        st.stop()
    return db


def server_label() -> str:
    """Where the database is, without ever opening it and never with a password."""
    url = database_url()
    if url:
        return describe_url(url)
    return f"embedded PostgreSQL ({default_data_dir()})"


def current_user() -> str:
    return os.environ.get("TRACEDB_USER") or "local"


def trace_label(summary: TraceSummary) -> str:
    """How a trace is named in pickers: name, user, status and a short id."""
    name = summary.name or summary.thread_id
    return f"{name[:60]} · {summary.user_id} · {summary.status} · {summary.id[:8]}"


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def as_plain_markdown(text: str) -> str:
    """``text`` escaped so that Markdown shows it as typed: every ASCII punctuation character
    backslash-escaped (no links, HTML, emphasis, math or directives), line breaks kept.

    Works on any slice of a text, so streamed pieces can be escaped one by one.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def status_badge(status: str) -> None:
    """A trace status as a coloured badge (statuses come from a fixed list)."""
    st.badge(status, color=STATUS_BADGES.get(status, "gray"))  # type: ignore[arg-type]
