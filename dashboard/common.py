"""What every page shares: one store per process, the current user, the database's label."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import streamlit as st
from psycopg.conninfo import conninfo_to_dict

from dashboard import auth, colours
from tracedb import AutomationTraceDB, TraceDBError, TraceSummary
from tracedb.core import local_user
from tracedb.server import default_data_dir

CONNECT_TIMEOUT_S = float(os.environ.get("TRACEDB_CONNECT_TIMEOUT") or 5.0)
RETRY_AFTER_S = 5.0
_FAILURE_KEY = "tracedb_db_failure"
# Connection settings never shown: secrets, and files that hold them.
_HIDDEN_PARAMS = {"password", "passfile", "sslpassword"}
# ``hash_funcs`` of ``st.cache_data`` functions that take the store: cached data is keyed by
# the database and the user the store is seen by, so one user's cache never serves another.
STORE_HASH = {AutomationTraceDB: lambda db: (db.server.url, db.user_scope)}


class _Console(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a message comes."""

    _tracedb_dashboard = True

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def show_library_log() -> None:
    """Print the library's information messages (where the embedded server lives) on the
    console that runs Streamlit, once; Streamlit configures only its own loggers."""
    logger = logging.getLogger("tracedb")
    if not any(getattr(h, "_tracedb_dashboard", False) for h in logger.handlers):
        handler = _Console()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s tracedb: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@st.cache_resource(show_spinner="Connecting to the database…", on_release=AutomationTraceDB.close)
def _open_store(url: str | None) -> AutomationTraceDB:
    show_library_log()
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


def require_db() -> AutomationTraceDB:
    """The store as the signed-in user sees it (every user's traces for an admin or a
    single-user dashboard, else only theirs); show why and stop the page when there is
    none."""
    db = get_db()
    if db is None:
        st.error(db_problem())
        st.stop()
    identity = auth.current()
    if identity is None:  # the app's frame shows the sign-in instead
        st.stop()
    return auth.store_for(db, identity)


def database_label(url: str) -> str:
    """A libpq URL of the database without its password, that a user can paste into
    ``psql`` or ``TRACEDB_URL`` (a socket folder goes in ``?host=``, as libpq reads it)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable database URL)"
    host = str(params.pop("host", "") or "")
    user = str(params.pop("user", "") or "")
    port = str(params.pop("port", "") or "")
    dbname = str(params.pop("dbname", "") or "")
    query = {k: str(v) for k, v in params.items() if k not in _HIDDEN_PARAMS and v is not None}
    netloc = quote(user, safe="") + "@" if user else ""
    if host.startswith("/") or "," in host:  # a socket folder, or several hosts
        query = {"host": host, **query}
        if port:
            query = {**query, "port": port}
    else:
        netloc += host + (f":{port}" if port else "")
    text = f"postgresql://{netloc}/{quote(dbname, safe='')}"
    return text + ("?" + urlencode(query, safe="/,") if query else "")


def server_label() -> str:
    """Where the database is, without ever opening it and never with a password."""
    url = database_url()
    if url:
        return database_label(url)
    return f"embedded PostgreSQL ({default_data_dir()})"


def sidebar_status(db: AutomationTraceDB | None) -> None:
    """The database in use (a URL to paste, or the embedded server's folder) and whether it
    answers."""
    with st.sidebar:
        st.caption("Database")
        if db is None:
            st.code(server_label(), language=None, wrap_lines=True)
            st.caption(":red[not reachable]")
        else:
            if db.server.embedded:
                st.caption(
                    f"Embedded PostgreSQL, data in {as_plain_markdown(str(db.server.data_dir))}. It keeps running after the "
                    "dashboard stops; the next start reuses it."
                )
            st.code(database_label(db.server.url), language=None, wrap_lines=True)
            st.caption(":green[answers]" if db.ping() else ":red[does not answer]")


def current_user() -> str:
    """The user traces are recorded as: the signed-in user, else ``TRACEDB_USER`` (default
    ``local``)."""
    identity = auth.current()
    return identity.user_id if identity else local_user()


def trace_label(summary: TraceSummary) -> str:
    """How a trace is named in pickers: name, user, status and a short id. Pickers hold
    ids as their values; this is only their text."""
    name = summary.name or summary.thread_id
    return f"{name[:60]} · {summary.user_id} · {summary.status} · {summary.id[:8]}"


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def as_plain_markdown(text: str) -> str:
    """``text`` escaped so that Markdown shows it as typed: every ASCII punctuation character
    backslash-escaped (no links, HTML, emphasis, math or directives), line breaks kept.

    Works on any slice of a text, so streamed pieces can be escaped one by one.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def show_json(value: Any, expanded: int | bool = 2) -> None:
    """Any JSON value as a JSON viewer shows it. ``st.json`` reads a text as JSON to parse,
    so a value is always given serialized: an entry that is a text shows as that text."""
    st.json(json.dumps(value, ensure_ascii=False, default=str), expanded=expanded)


def status_badge(status: str) -> None:
    """A trace status as a badge: its colour and an icon, so it reads without colour."""
    st.badge(status, color=colours.badge_colour(status), icon=colours.status_icon(status))  # type: ignore[arg-type]


def error_hint(summary: TraceSummary, limit: int = 80) -> str | None:
    """A one-line reason for a failed trace: the error of its newest error step (kept on the
    trace row, so a listing needs no query per failed trace), else a note that none was
    recorded. None for a trace that did not fail."""
    if summary.status != "failed":
        return None
    if not summary.last_error:
        return "no error step recorded"
    text = " ".join(str(summary.last_error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_hints(summaries: list[TraceSummary]) -> dict[str, str]:
    """:func:`error_hint` of each failed trace, by id."""
    return {s.id: hint for s in summaries if (hint := error_hint(s)) is not None}
