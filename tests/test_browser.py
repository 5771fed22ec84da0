"""End to end in headless Chromium: a chat turn, then its trace on the traces page and its
thread page with the timeline. Screenshots go to ``TRACEDB_SCREENSHOTS`` (default
``screenshots/``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on this module's database; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "TRACEDB_URL": db_url, "TRACEDB_USER": USER}
    env.pop("LLM_MODEL", None)
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


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("TRACEDB_SCREENSHOTS") or ROOT / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


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


def test_chat_turn_then_traces_then_thread_page(server: str, browser, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/chat")
    box = page.wait_for_selector('[data-testid="stChatInputTextArea"]', timeout=30_000)
    box.fill("what is 17 * 23?")
    box.press("Enter")
    page.wait_for_selector('[data-testid="stChatMessage"] >> text=17 * 23 = 391', timeout=30_000)
    settled(page)
    page.wait_for_selector("text=Open the thread page")
    page.screenshot(path=str(shots / "chat.png"))

    page.goto(f"{server}/?user={USER}")  # the traces page is the default page, at the root
    settled(page)
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=\"stDataFrame\"]')?.textContent || '').includes('what is 17 * 23?')",
        timeout=30_000,
    )
    assert "1 matching traces" in page.inner_text('[data-testid="stAppViewContainer"]')
    page.screenshot(path=str(shots / "traces.png"))
    link = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] td, [data-testid="stDataFrame"] [role="gridcell"]'))
        .map(cell => cell.textContent).find(text => text.startsWith('thread?trace='))""")
    assert link, "no thread link in the traces table"

    page.goto(f"{server}/{link}")
    settled(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)
    body = page.inner_text('[data-testid="stAppViewContainer"]')
    assert "Timeline" in body and "completed" in body
    for node in ("planner", "model", "tools", "summarise"):
        assert page.locator(f'[data-testid="stPlotlyChart"] >> text={node}').count() >= 1
    page.screenshot(path=str(shots / "thread.png"), full_page=True)
    page.close()


def test_ten_thousand_entries_open_quickly(server: str, browser, shots: Path, db) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "node": ("model", "tools")[i % 2],
            "kind": ("llm", "tool")[i % 2],
            "name": f"step {i}",
            "started_at": (t0 + timedelta(seconds=i)).isoformat(),
            "ended_at": (t0 + timedelta(seconds=i, milliseconds=600)).isoformat(),
        }
        for i in range(10_000)
    ]
    trace_id = db.append_entries(
        rows[:5000], thread_id="browser-10k", user_id=USER, name="10k steps"
    ).trace_id
    db.append_entries(rows[5000:], trace_id=trace_id)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    began = time.perf_counter()
    page.goto(f"{server}/thread?trace={trace_id}")
    page.wait_for_selector('[data-testid="stPlotlyChart"] canvas', timeout=30_000)
    settled(page)
    elapsed = time.perf_counter() - began
    print(f"\nbrowser: thread page of a 10,000-entry trace drawn in {elapsed:.2f} s")
    assert "10,000" in page.inner_text('[data-testid="stAppViewContainer"]')
    page.screenshot(path=str(shots / "thread-10k.png"))
    # Drawing happens in the browser (software WebGL here); a loose bound catches a page that
    # would draw 10,000 SVG bars, not a slow machine.
    assert elapsed < 15.0
    page.close()
