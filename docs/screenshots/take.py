"""Take the README's screenshots: every page at 1280 and 800 px wide, on demo traces and a chat.

    python docs/screenshots/take.py --url postgresql:///tracedb_screens

Loads demo traces into the database when it has none, records two short agent runs to
compare, starts ``streamlit run app.py`` on it, chats three turns in headless Chromium and
writes ``<page>-1280.png`` and ``<page>-800.png`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tracedb import AutomationTraceDB, TraceFilter  # noqa: E402
from tracedb.demo import load_demo  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WIDTHS = (1280, 800)
RUNS = {
    "shots-a": "what is 17 * 23? then convert 5 km to miles",
    "shots-b": "what is 17 * 24? then convert 5 km to miles",
}
CHAT = [
    ("what is 17 * 23?", "391"),
    ("convert 5 km to miles", "miles"),
    ("remind me what I asked first", "Earlier"),
]


def prepare(url: str) -> dict[str, str]:
    """Demo traces and two agent runs to compare; their trace ids."""
    with AutomationTraceDB(url) as db:
        if not db.count_traces():
            load_demo(db, traces=300, seed=7)
        for thread, question in RUNS.items():
            if not db.count_traces(TraceFilter(thread_id=thread)):
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "agent",
                        question,
                        "--thread",
                        thread,
                        "--url",
                        url,
                        "--name",
                        question,
                    ],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                )
        ids = {t: db.list_traces(TraceFilter(thread_id=t), limit=1).items[0].id for t in RUNS}
        ids["large"] = db.list_traces(TraceFilter(name="nightly invoice"), limit=1).items[0].id
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page: object) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
    time.sleep(1.5)  # charts finish drawing


def shoot(page: object, name: str, width: int, full: bool = False) -> None:
    if full:
        height = page.evaluate(
            "() => Math.max(...Array.from(document.querySelectorAll('section, div')).map(e => e.scrollHeight))"
        )
        page.set_viewport_size({"width": width, "height": min(height + 40, 4000)})
        time.sleep(1.0)
    page.screenshot(path=str(HERE / f"{name}-{width}.png"))
    page.set_viewport_size({"width": width, "height": 1000})
    print(HERE / f"{name}-{width}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TRACEDB_URL"), help="database (default TRACEDB_URL)")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set TRACEDB_URL")
    ids = prepare(args.url)

    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "TRACEDB_URL": args.url, "TRACEDB_USER": "local"}
    env.pop("LLM_MODEL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 1000})
                page.goto(f"{base}/chat")
                settle(page)
                for question, answer in CHAT:
                    box = page.wait_for_selector('[data-testid="stChatInputTextArea"]')
                    box.fill(question)
                    box.press("Enter")
                    page.wait_for_selector(f'[data-testid="stChatMessage"] >> text={answer}', timeout=60_000)
                    settle(page)
                shoot(page, "chat", width)
                chat_trace = page.get_attribute("a:has-text('Open the thread page')", "href") or ""
                pages = {
                    "traces": "/",
                    "thread": "/" + chat_trace.split("/")[-1],
                    "compare": f"/compare?a={ids['shots-a']}&b={ids['shots-b']}",
                    "overview": "/overview",
                }
                for name, path in pages.items():
                    page.goto(base + path)
                    settle(page)
                    shoot(page, name, width, full=name in ("thread", "compare", "overview"))
                if width == WIDTHS[0]:
                    page.goto(f"{base}/thread?trace={ids['large']}")
                    settle(page)
                    shoot(page, "thread-large", width)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
