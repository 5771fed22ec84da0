"""The dashboard's frame: its pages, the sidebar, and the guarantee that every page runs
inside it.

A fresh Streamlit server whose first visitor opens a deep link such as
``/thread?trace=…`` runs ``pages/thread.py`` on its own: Streamlit picks its older
folder-based multipage mode because a ``pages/`` folder exists, until some run calls
``st.navigation`` (``AppTest`` picks that mode again before every run). Such a run would
lack the sidebar and the error handling.

``app.py`` runs every page inside :func:`run_app`, which marks the run (:func:`framed`). A
page calls :func:`require_app` first: a run without the mark runs the frame itself, with
the public ``st.navigation`` (which also switches Streamlit to the app's navigation for
every later run) and the page inside it, then stops. Doing it in the same run, rather
than with a rerun, keeps a button click that arrived with the run.

One run is different: the first of a browser session. On a fresh server it comes through
the folder mode (``app.py`` as the main page, or a page on its own): widgets it draws
belong to that mode's page, and the next run (in the app's navigation) drops what they
send, so a key typed into the sign-in form of a fresh server would be lost. The first run
of every browser session therefore reruns at once, through the navigation it has just set
up, before any page runs; it carries no click to keep. Only a browser's session (one with
request headers) switches modes this way: ``AppTest`` runs every run through the folder
mode, so its widgets always belong to the same page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import streamlit as st

from dashboard import auth, common
from tracedb import TraceDBError

# Each session's script runs on a thread of its own, so the mark is per thread.
_frame = threading.local()
_SESSION_SEEN_KEY = "tracedb_session_seen"


def pages() -> list[st.Page]:
    """The app's pages, in the order of the sidebar; the traces page is the default."""
    return [
        st.Page(
            "pages/traces.py", title="Traces", icon=":material/table_rows:", url_path="traces", default=True
        ),
        st.Page("pages/thread.py", title="Thread", icon=":material/timeline:", url_path="thread"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", url_path="overview"),
        st.Page("pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    ]


@contextmanager
def framed() -> Iterator[None]:
    """Mark the page run inside this block as run by ``app.py``."""
    _frame.depth = getattr(_frame, "depth", 0) + 1
    try:
        yield
    finally:
        _frame.depth -= 1


def is_framed() -> bool:
    """Whether the current run of a page came through ``app.py``."""
    return getattr(_frame, "depth", 0) > 0


def run_app() -> None:
    """The whole app: page settings, sign-in, navigation, the sidebar, and the page of the
    URL, marked as framed. Without a signed-in user only the sign-in shows (the navigation
    is still set up, hidden, so that a deep link opens its page after the sign-in). A
    database error of the page is a message, not a traceback."""
    # An integer sidebar state is its width: narrow enough to leave room at 800 px.
    st.set_page_config(
        page_title="tracedb", page_icon=":material/timeline:", layout="wide", initial_sidebar_state=230
    )
    db = common.get_db()
    identity = auth.gate(db)
    page = st.navigation(pages(), position="sidebar" if identity else "hidden")
    first = not st.session_state.get(_SESSION_SEEN_KEY)
    st.session_state[_SESSION_SEEN_KEY] = True
    if first and st.context.headers:  # a browser's session (see the module)
        st.rerun()
    common.sidebar_status(db)
    if identity is None:
        st.stop()
    with st.sidebar:
        auth.sidebar(identity)
    try:
        with framed():
            page.run()
    except (TraceDBError, psycopg.Error) as exc:
        st.error(f"The database failed this request: {exc}")


def require_app() -> None:
    """Run the page inside the app's frame when Streamlit ran it on its own.

    Call it first in every page: a run that ``app.py`` did not frame runs the frame (and
    this page inside it) here, then stops, so the page's code runs once, framed.
    """
    if not is_framed():
        run_app()
        st.stop()
