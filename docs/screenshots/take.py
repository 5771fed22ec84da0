"""Take the README's screenshots: every page at 1280 and 800 px wide, on demo traces and a chat,
and, at 1280 px, a run caught while a step runs, the agent's graph, a replay and its comparison.

    python docs/screenshots/take.py --url postgresql:///tracedb_screens

Loads demo traces into the database when it has none, records short agent runs (two to
compare, and one of two turns whose second turn fails a tool call), starts ``streamlit run
app.py`` on it, chats three turns in headless Chromium and writes ``<page>-1280.png`` and
``<page>-800.png`` next to this file. Then, at 1280 px: the agent runs in the background with
a docs search that waits, and the thread page is shot while it waits
(``thread-running``); the graph of the two-turn run with a node clicked (``graph``); its
failed turn replayed from the thread page with the question changed (``replay``, the
control); and the comparison of the run with its replay (``compare-fork``). ``--only``
writes some of them.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

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
PAGES = ("chat", "traces", "thread", "compare", "overview")
EXTRA = ("thread-large", "thread-running", "graph", "replay", "compare-fork")
RUNS = {
    "shots-a": ["what is 17 * 23? then convert 5 km to miles"],
    "shots-b": ["what is 17 * 24? then convert 5 km to miles"],
    # Its second turn asks for a conversion the tool refuses: an error step, replayed with a
    # question that works.
    "shots-units": ["what is 17 * 23? then convert 5 km to miles", "convert 5 km to kg"],
}
CHAT = [
    ("what is 17 * 23?", "391"),
    ("convert 5 km to miles", "miles"),
    ("remind me what I asked first", "Earlier"),
]
# The running trace: a sum, then a docs search that waits until it has been shot.
RUNNING = "what is 17 * 23? then search the docs for checkpointer"
SLOW_TOOL = "search_pages"
RUNNING_SHOT_AFTER_S = 8.0
RUNNING_MAX_S = 180.0
REPLAY_TEXT = "convert 5 km to feet"
REPLAY_ANSWER = "ft"


def agent_turns(url: str, thread: str, questions: list[str]) -> None:
    """The agent's turns in one conversation, recorded by ``python -m agent``."""
    for question in questions:
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
                questions[0],
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )


def prepare(url: str) -> dict[str, str]:
    """Demo traces and the agent runs the screenshots show; their trace ids."""
    with AutomationTraceDB(url) as db:
        if not db.count_traces():
            load_demo(db, traces=300, seed=7)
        for thread, questions in RUNS.items():
            if not db.count_traces(TraceFilter(thread_id=thread)):
                agent_turns(url, thread, questions)
        ids = {t: db.list_traces(TraceFilter(thread_id=t), limit=1).items[0].id for t in RUNS}
        ids["large"] = db.list_traces(TraceFilter(name="nightly invoice"), limit=1).items[0].id
    return ids


def failed_step(url: str, trace_id: str) -> int:
    """The model step that chose the tool call which failed: the step to replay."""
    with AutomationTraceDB(url) as db:
        entries = db.get_entries(trace_id, running=False)
    failed = next(e["seq"] for e in entries if e.get("status") == "error")
    return max(e["seq"] for e in entries if e["node"] == "model" and e["seq"] < failed)


def record_running(url: str, release: threading.Event) -> tuple[threading.Thread, str]:
    """Run the agent in the background, recorded as it goes, with a docs search that waits
    for ``release`` (at most ``RUNNING_MAX_S``); returns the thread running it and the
    conversation's id."""
    from langchain_core.tools import BaseTool, StructuredTool

    from agent import TOOLS, build_graph, get_model, make_checkpointer, model_label, user_input
    from tracedb.recorder import TraceRecorder

    def waiting(tool: BaseTool) -> BaseTool:
        def run(**kwargs: Any) -> Any:
            release.wait(RUNNING_MAX_S)
            return tool.invoke(kwargs)

        return StructuredTool.from_function(
            run, name=tool.name, description=tool.description, args_schema=tool.args_schema
        )

    conversation = f"shots-running-{uuid.uuid4().hex[:8]}"

    def run() -> None:
        with AutomationTraceDB(url) as db, make_checkpointer(db.server.url) as saver:
            model = get_model("offline")
            tools = [waiting(t) if t.name == SLOW_TOOL else t for t in TOOLS]
            graph = build_graph(model, saver, tools=tools)
            recorder = TraceRecorder(db, "local", provider_id=model_label(model), name=RUNNING)
            config = {"configurable": {"thread_id": conversation}}
            for _ in recorder.stream(graph, user_input(RUNNING), config):
                pass
            recorder.close()

    worker = threading.Thread(target=run, name="running-agent", daemon=True)
    worker.start()
    return worker, conversation


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page: Any) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
    time.sleep(1.5)  # charts finish drawing


def wait_for_text(page: Any, text: str) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    settle(page)


def grow(page: Any, width: int) -> None:
    """Make the window as tall as the page, so that everything on it is drawn and can be shot
    (the app scrolls inside its own container, not the document)."""
    height = page.evaluate(
        "() => Math.max(...Array.from(document.querySelectorAll('section, div')).map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": width, "height": min(height + 40, 4000)})
    time.sleep(1.0)


def write(page: Any, name: str, width: int, clip: dict[str, float] | None = None) -> None:
    path = HERE / f"{name}-{width}.png"
    page.screenshot(path=str(path), clip=clip)
    page.set_viewport_size({"width": width, "height": 1000})
    print(path)


def shoot(page: Any, name: str, width: int, full: bool = False) -> None:
    if full:
        grow(page, width)
    write(page, name, width)


def box_of(locator: Any) -> dict[str, float]:
    """Where an element is; waits for it while a refresh of the page redraws it."""
    for _ in range(50):
        locator.wait_for(state="visible", timeout=30_000)
        box = locator.bounding_box()
        if box is not None:
            return box
        time.sleep(0.2)
    raise RuntimeError(f"{locator} is not drawn")


def shoot_between(page: Any, name: str, width: int, top: Any, bottom: Any, whole_width: bool = False) -> None:
    """Shoot from the top of ``top`` to the bottom of ``bottom`` (locators): the main column,
    or the whole width with the sidebar from the top of the page."""
    grow(page, width)
    first, last = box_of(top), box_of(bottom)
    column = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    pad = 16.0
    if whole_width:
        clip = {"x": 0.0, "y": 0.0, "width": float(width), "height": last["y"] + last["height"] + pad}
    else:
        x = max(column["x"] - pad, 0.0)
        clip = {
            "x": x,
            "y": first["y"] - pad,
            "width": min(column["width"] + 2 * pad, width - x),
            "height": last["y"] + last["height"] - first["y"] + 2 * pad,
        }
    write(page, name, width, clip)


def click_centre(page: Any, locator: Any) -> None:
    """Click the middle of an element as a mouse does (plotly's drag layer lies over its
    points, so an element click would not reach them)."""
    box = locator.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def graph_nodes(page: Any) -> Any:
    """The graph's nodes, in the order of the recorded graph (start, planner, model, tools,
    summarise, end)."""
    return (
        page.locator('[data-testid="stPlotlyChart"]')
        .first.locator(".scatterlayer .trace")
        .last.locator(".point")
    )


def shoot_running(page: Any, base: str, url: str, width: int) -> None:
    """The thread page of a run whose docs search is going on: the running step, the graph
    with the running node outlined, the timeline with its open bar."""
    release = threading.Event()
    worker, conversation = record_running(url, release)
    try:
        with AutomationTraceDB(url) as db:
            deadline = time.monotonic() + 60
            while not (found := db.list_traces(TraceFilter(thread_id=conversation), limit=1).items):
                if time.monotonic() > deadline:
                    raise RuntimeError("the running agent recorded nothing")
                time.sleep(0.2)
        page.goto(f"{base}/thread?trace={found[0].id}")
        settle(page)
        page.wait_for_function(
            f"() => /Running now: tools for ([0-9.]+) s/.exec(document.body.innerText)?.[1] >= {RUNNING_SHOT_AFTER_S}",
            timeout=60_000,
        )
        # Between two of the view's refreshes (every 2 s), so that nothing is drawn faded.
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        shoot_between(
            page,
            "thread-running",
            width,
            page.get_by_role("heading", name="Thread"),
            page.locator('[data-testid="stPlotlyChart"]').nth(1),
            whole_width=True,
        )
    finally:
        release.set()
        worker.join(timeout=60)


def shoot_graph(page: Any, base: str, trace_id: str, width: int) -> None:
    """The graph of a two-turn run with an error step, its model node clicked (ringed)."""
    page.goto(f"{base}/thread?trace={trace_id}")
    settle(page)
    click_centre(page, graph_nodes(page).nth(2))
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMultiSelect\"]')]"
        ".some(e => e.innerText.includes('model'))",
        timeout=30_000,
    )
    page.mouse.move(0, 0)  # no hover text over the nodes' figures
    settle(page)
    shoot_between(
        page,
        "graph",
        width,
        page.get_by_role("heading", name="Graph"),
        page.get_by_text("Click a node to see its steps", exact=False),
    )


def shoot_replay(page: Any, base: str, url: str, trace_id: str, width: int, shot: bool = True) -> str:
    """The replay control on the step that chose the failing tool call, with the question
    changed (shot when ``shot``); replays it (once per database) and returns the replay's
    trace id."""
    seq = failed_step(url, trace_id)
    page.goto(f"{base}/thread?trace={trace_id}")
    settle(page)
    entry = page.get_by_label("Entry number (#)")
    entry.fill(str(seq))
    entry.press("Enter")
    wait_for_text(page, "The user's message this step saw")
    box = page.get_by_label("The user's message this step saw", exact=False)
    box.fill(REPLAY_TEXT)
    box.press("Control+Enter")
    box.blur()
    settle(page)
    button = page.get_by_role("button", name="Replay from here")
    if shot:
        shoot_between(page, "replay", width, page.get_by_role("heading", name="Entry JSON"), button)
    with AutomationTraceDB(url) as db:
        forks = db.get_forks(trace_id)
    if not forks:
        button.click()
        page.wait_for_url("**/chat", timeout=60_000)
        wait_for_text(page, "Forked from")
        page.wait_for_selector(f'[data-testid="stChatMessage"] >> text={REPLAY_ANSWER}', timeout=60_000)
        settle(page)
        with AutomationTraceDB(url) as db:
            forks = db.get_forks(trace_id)
    return forks[0].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TRACEDB_URL"), help="database (default TRACEDB_URL)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PAGES + EXTRA,
        metavar="SHOT",
        help=f"write only these: {', '.join(PAGES + EXTRA)}",
    )
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set TRACEDB_URL")
    wanted = set(args.only or PAGES + EXTRA)
    # The offline model everywhere: the same answers on every machine.
    os.environ.pop("LLM_MODEL", None)
    ids = prepare(args.url)

    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "TRACEDB_URL": args.url, "TRACEDB_USER": "local"}
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
                if wanted & {"chat", "thread"}:
                    page.goto(f"{base}/chat")
                    settle(page)
                    for question, answer in CHAT:
                        box = page.wait_for_selector('[data-testid="stChatInputTextArea"]')
                        box.fill(question)
                        box.press("Enter")
                        page.wait_for_selector(
                            f'[data-testid="stChatMessage"] >> text={answer}', timeout=60_000
                        )
                        settle(page)
                    if "chat" in wanted:
                        shoot(page, "chat", width)
                    chat_trace = page.get_attribute("a:has-text('Open the thread page')", "href") or ""
                pages = {
                    "traces": "/",
                    "thread": "/" + chat_trace.split("/")[-1] if "thread" in wanted else "",
                    "compare": f"/compare?a={ids['shots-a']}&b={ids['shots-b']}",
                    "overview": "/overview",
                }
                for name, path in pages.items():
                    if name not in wanted:
                        continue
                    page.goto(base + path)
                    settle(page)
                    shoot(page, name, width, full=name in ("thread", "compare", "overview"))
                if width == WIDTHS[0]:
                    if "thread-large" in wanted:
                        page.goto(f"{base}/thread?trace={ids['large']}")
                        settle(page)
                        shoot(page, "thread-large", width)
                    if "thread-running" in wanted:
                        shoot_running(page, base, args.url, width)
                    if "graph" in wanted:
                        shoot_graph(page, base, ids["shots-units"], width)
                    if wanted & {"replay", "compare-fork"}:
                        replayed = shoot_replay(
                            page, base, args.url, ids["shots-units"], width, shot="replay" in wanted
                        )
                    if "compare-fork" in wanted:
                        page.goto(f"{base}/compare?a={ids['shots-units']}&b={replayed}")
                        settle(page)
                        shoot(page, "compare-fork", width, full=True)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
