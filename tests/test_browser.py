"""End to end in headless Chromium, doing what a user does: deep links on a fresh server,
chat turns that stay in one conversation, ticks that are the selection, an export of what
is ticked, one click to open a trace, a 10,000-step timeline. Screenshots go to
``TRACEDB_SCREENSHOTS`` (default ``screenshots/``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tracedb import TraceFilter

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

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db_url: str, log: Path) -> Iterator[str]:
    """``streamlit run app.py`` on ``db_url``, freshly started; yields its base URL."""
    port = free_port()
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
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module's tests, on the module's database."""
    with streamlit_server(db_url, tmp_path_factory.mktemp("streamlit") / "server.log") as base:
        yield base


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


@pytest.fixture()
def page(browser) -> Iterator[object]:
    tab = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    try:
        yield tab
    finally:
        tab.close()


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


def ask(page: object, question: str, answer: str) -> None:
    box = page.wait_for_selector('[data-testid="stChatInputTextArea"]', timeout=30_000)
    box.fill(question)
    box.press("Enter")
    page.wait_for_selector(f'[data-testid="stChatMessage"] >> text={answer}', timeout=30_000)
    settled(page)
    page.wait_for_selector("text=Open the thread page", timeout=30_000)


def own_traces(db, user: str, n: int) -> list[str]:
    """``n`` completed traces of ``user``, newest first."""
    made = [
        db.save_trace(
            user, None, f"{user}-{i}", [{"node": "model", "output": f"out {i}"}], name=f"{user} {i}"
        )
        for i in range(n)
    ]
    return made[::-1]


def test_a_deep_link_on_a_fresh_server_opens_inside_the_app(
    db, db_url: str, browser, tmp_path: Path, shots: Path
) -> None:
    trace_id = db.save_trace(USER, None, "deep-link", [{"node": "model", "output": "x"}], name="deep link")
    with streamlit_server(db_url, tmp_path / "server.log") as fresh:
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(f"{fresh}/thread?trace={trace_id}")  # the server's first visitor
        settled(tab)
        tab.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=30_000)
        sidebar = tab.inner_text('[data-testid="stSidebar"]')
        assert "Database" in sidebar and "answers" in sidebar  # app.py's sidebar is there
        assert all(name in sidebar for name in ("Traces", "Thread", "Compare", "Overview", "Chat"))
        assert "deep link" in tab.input_value('[data-testid="stTextInput"] input')
        assert tab.url.endswith(f"/thread?trace={trace_id}")
        tab.get_by_text("Overview", exact=True).first.click()  # and the navigation works from there
        tab.wait_for_selector("h1:has-text('Overview')", timeout=30_000)
        settled(tab)
        tab.close()


def test_chat_turns_across_a_minute_change_stay_in_one_conversation(
    server: str, page, db, shots: Path
) -> None:
    page.goto(f"{server}/chat")
    ask(page, "what is 17 * 23?", "17 * 23 = 391")
    page.screenshot(path=str(shots / "chat.png"))
    trace = db.list_traces(TraceFilter(user_id=USER, name="what is 17")).items[0]
    for turn, (question, answer) in enumerate(
        [("what is 2 + 2?", "2 + 2 = 4"), ("what is 3 * 3?", "3 * 3 = 9"), ("what is 9 - 1?", "9 - 1 = 8")], 2
    ):
        # Between two turns the clock moves to another minute, and the conversation is
        # renamed elsewhere: what the picker shows for it changes; the conversation must not.
        now = db.get_summary(trace.id)
        db.set_trace_times(
            [(trace.id, now.created_at - timedelta(minutes=1), now.updated_at - timedelta(minutes=1))]
        )
        db.rename_trace(trace.id, f"renamed before turn {turn}")
        ask(page, question, answer)
        assert f"thread {trace.thread_id}" in body(page), f"turn {turn} left the conversation"
        assert db.get_summary(trace.id).turns == turn
    ask(page, "remind me what I asked first", "Earlier in this conversation you said")
    text = body(page)
    assert "1. what is 17 * 23?" in text and "4. what is 9 - 1?" in text
    assert db.count_traces(TraceFilter(thread_id=trace.thread_id)) == 1
    assert db.count_traces(TraceFilter(user_id=USER, name="what is 2")) == 0


def test_after_a_delete_nothing_is_ticked_and_the_next_ticks_are_the_selection(
    server: str, page, db, shots: Path
) -> None:
    user = "deleter"
    made = own_traces(db, user, 6)
    page.goto(f"{server}/?user={user}")
    settled(page)
    for row in (0, 1, 2):
        tick(page, row)
        wait_for_text(page, f"Delete selected ({row + 1})")
    assert ticked_rows(page) == [0, 1, 2]
    page.get_by_role("button", name="Delete selected (3)").click()
    page.get_by_role("button", name="Delete 3").click()
    wait_for_text(page, "Deleted 3 traces")
    assert db.count_traces(TraceFilter(user_id=user)) == 3
    assert all(db.get_summary(t) is None for t in made[:3])
    # the rows that moved up are not ticked, and the button agrees
    assert ticked_rows(page) == []
    assert page.get_by_role("button", name="Delete selected (0)").is_disabled()
    page.screenshot(path=str(shots / "traces-after-delete.png"))
    tick(page, 1)
    wait_for_text(page, "Delete selected (1)")
    assert ticked_rows(page) == [1]


def test_export_follows_the_ticked_rows(server: str, page, db) -> None:
    user = "exporter"
    made = own_traces(db, user, 5)
    page.goto(f"{server}/?user={user}")
    settled(page)
    assert page.get_by_role("button", name="Download all 5 matching traces (JSONL)").count() == 1
    tick(page, 1)
    wait_for_text(page, "Delete selected (1)")
    tick(page, 3)
    wait_for_text(page, "Delete selected (2)")
    button = page.get_by_role("button", name="Download the 2 selected traces (JSONL)")
    with page.expect_download(timeout=30_000) as download:
        button.click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [made[1], made[3]]


def test_one_click_on_a_name_opens_the_trace_in_the_same_tab(server: str, page, db) -> None:
    user = "opener"
    made = own_traces(db, user, 3)
    page.goto(f"{server}/?user={user}")
    settled(page)
    pages_before = len(page.context.pages)
    page.mouse.click(*cell_point(page, 1, 90))
    page.wait_for_url(f"**/thread?trace={made[1]}", timeout=30_000)
    settled(page)
    assert len(page.context.pages) == pages_before
    assert f"id {made[1]}" in body(page)


def test_chat_turn_then_traces_then_thread_page(server: str, page, db, shots: Path) -> None:
    page.goto(f"{server}/chat")
    ask(page, "convert 5 km to miles", "miles")
    page.goto(f"{server}/?user={USER}&name=convert")  # the traces page is the default page, at the root
    settled(page)
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=\"stDataFrame\"]')?.textContent || '')"
        ".includes('convert 5 km to miles')",
        timeout=30_000,
    )
    assert "1 trace matches" in body(page)
    page.screenshot(path=str(shots / "traces.png"))
    page.mouse.click(*cell_point(page, 0, 90))
    page.wait_for_url("**/thread?trace=*", timeout=30_000)
    settled(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)
    text = body(page)
    assert "Timeline" in text and "completed" in text
    for node in ("planner", "model", "tools", "summarise"):
        assert page.locator(f'[data-testid="stPlotlyChart"] >> text={node}').count() >= 1
    page.screenshot(path=str(shots / "thread.png"), full_page=True)


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
    assert "10,000" in body(page)
    page.screenshot(path=str(shots / "thread-10k.png"))
    # Drawing happens in the browser (software WebGL here); a loose bound catches a page that
    # would draw 10,000 SVG bars, not a slow machine.
    assert elapsed < 15.0
    page.close()
