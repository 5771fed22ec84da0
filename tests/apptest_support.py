"""Running dashboard pages headless with ``streamlit.testing.v1.AppTest``.

``open_page`` opens a page from ``app.py`` with ``switch_page``, so that the links between
pages resolve as they do in the browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import widgets

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@contextmanager
def dashboard_env(**env: str | None) -> Iterator[None]:
    """Set environment variables for the pages, with fresh Streamlit caches; undo afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def open_page(script: str, timeout: float = 30, **params: str) -> AppTest:
    """Run ``pages/<script>.py`` inside app.py with these query parameters."""
    # Without a database named, the page would read the embedded server's: a test that got
    # its database from another test's fixture passed in its module and failed alone.
    assert os.environ.get("TRACEDB_URL"), "open pages inside dashboard_env(TRACEDB_URL=...)"
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.switch_page(f"pages/{script}.py")
    at.query_params.update(params)
    return at.run()


def texts(at: AppTest) -> list[str]:
    """Every text-like value on the page (markdown, captions, text, alerts)."""
    out: list[str] = []
    for kind in ("markdown", "caption", "text", "error", "warning", "info", "success", "code"):
        out.extend(str(e.value) for e in getattr(at, kind))
    return out


def plotly_specs(at: AppTest) -> list[str]:
    """The JSON of every plotly chart on the page."""
    return [e.proto.spec for e in at.get("plotly_chart")]


def select_rows(at: AppTest, key: str, rows: list[int]) -> AppTest:
    """Select dataframe rows (positions) as a user would, and rerun."""
    at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def table_key(at: AppTest, prefix: str, column: str, index: int = 0) -> str:
    """The key of a table keyed by its rows (``widgets.rows_key``), from what it shows."""
    return widgets.rows_key(prefix, at.dataframe[index].value[column].tolist())


def tick(at: AppTest, prefix: str, column: str, rows: list[int], index: int = 0) -> AppTest:
    """Tick rows of a table keyed by its rows, as a user would, and rerun."""
    return select_rows(at, table_key(at, prefix, column, index), rows)


def plotly_array(value: object) -> list:
    """A data array of a plotly figure's JSON: plain lists as they are, typed arrays
    (``{"dtype", "bdata"}``, how plotly sends numbers) decoded."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)  # type: ignore[call-overload]
