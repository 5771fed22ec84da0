"""Driving the dashboard in headless Chromium: a Streamlit server per test module, one
browser per module, and what a user waits for and clicks. Screenshots go to
``TRACEDB_SCREENSHOTS`` (default ``screenshots/``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
USER = "browser-user"
HEADER_PX = 36  # the table's header row
ROW_PX = 35  # each row of a table
TICKED = '[data-testid="stDataFrame"] table tr[aria-selected="true"]'

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db_url: str, log: Path, **env_vars: str | None) -> Iterator[str]:
    """``streamlit run app.py`` on ``db_url`` (with ``env_vars`` set, or unset for None),
    freshly started on this machine's loopback; yields its base URL."""
    port = free_port()
    env = {**os.environ, "TRACEDB_URL": db_url, "TRACEDB_USER": USER}
    for name in ("LLM_MODEL", "TRACEDB_AUTH", "TRACEDB_RETENTION"):
        env.pop(name, None)
    for name, value in env_vars.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshots() -> Path:
    folder = Path(os.environ.get("TRACEDB_SCREENSHOTS") or ROOT / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settled(page: object, timeout: float = 30) -> None:
    """Wait until the script has finished and nothing is left loading; no error on the page."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout * 1000
    )
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout * 1000
    )
    assert page.locator("text=Page not found").count() == 0, page.url
    assert page.locator('[data-testid="stException"]').count() == 0, page.url


def body(page: object) -> str:
    return page.inner_text('[data-testid="stAppViewContainer"]')


def wait_for_text(page: object, text: str, timeout: float = 30) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout * 1000)
    settled(page)


def cell_point(page: object, row: int, x: float) -> tuple[float, float]:
    """Where in the first table row ``row`` (0-based) is, ``x`` pixels from its left edge."""
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    return box["x"] + x, box["y"] + HEADER_PX + row * ROW_PX + ROW_PX / 2


def tick(page: object, row: int) -> None:
    """Click the checkbox of a row of the first table."""
    page.mouse.click(*cell_point(page, row, 16))


def ticked_rows(page: object) -> list[int]:
    """The rows (0-based) that the first table draws as ticked, read from the grid's
    accessible copy, which follows what is drawn."""
    return page.eval_on_selector_all(
        TICKED, "rows => rows.map(r => Number(r.getAttribute('aria-rowindex')) - 2)"
    )


def wait_for_ticked(page: object, expected: list[int], timeout_s: float = 10.0) -> list[int]:
    """The ticked rows once they are ``expected``, or what they are after ``timeout_s``: the
    grid redraws its ticks a moment after a rerun has drawn the buttons."""
    deadline = time.monotonic() + timeout_s
    rows = ticked_rows(page)
    while rows != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = ticked_rows(page)
    return rows


def click_centre(page: object, locator: object) -> None:
    """Click the middle of an element as a mouse does (plotly's drag layer lies over its
    points, so an element click would not reach them)."""
    box = locator.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def hover_centre(page: object, locator: object) -> None:
    """Move the mouse to the middle of an element, scrolled into view."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
