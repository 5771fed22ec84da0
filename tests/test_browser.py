"""End to end in headless Chromium, doing what a user does: deep links on a fresh server,
chat turns that stay in one conversation, ticks that are the selection, an export of what
is ticked, one click to open a trace, a 10,000-step timeline. Screenshots go to
``TRACEDB_SCREENSHOTS`` (default ``screenshots/``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser_support import (
    USER,
    body,
    cell_point,
    chromium,
    needs_chromium,
    screenshots,
    settled,
    streamlit_server,
    tick,
    wait_for_text,
    wait_for_ticked,
)

from tracedb import TraceFilter

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module's tests, on the module's database."""
    with streamlit_server(db_url, tmp_path_factory.mktemp("streamlit") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = screenshots()
    print(f"\nscreenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser) -> Iterator[object]:
    tab = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    try:
        yield tab
    finally:
        tab.close()


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
        assert all(
            name in sidebar for name in ("Traces", "Thread", "Compare", "Overview", "Chat", "Settings")
        )
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
    assert wait_for_ticked(page, [0, 1, 2]) == [0, 1, 2]
    page.get_by_role("button", name="Delete selected (3)").click()
    page.get_by_role("button", name="Delete 3").click()
    wait_for_text(page, "Deleted 3 traces")
    assert db.count_traces(TraceFilter(user_id=user)) == 3
    assert all(db.get_summary(t) is None for t in made[:3])
    # the rows that moved up are not ticked, and the button agrees
    assert wait_for_ticked(page, []) == []
    assert page.get_by_role("button", name="Delete selected (0)").is_disabled()
    page.screenshot(path=str(shots / "traces-after-delete.png"))
    tick(page, 1)
    wait_for_text(page, "Delete selected (1)")
    assert wait_for_ticked(page, [1]) == [1]


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


def test_replay_from_a_step_of_a_chat_run_lands_on_the_chat_page(server: str, page, db, shots: Path) -> None:
    page.goto(f"{server}/chat")
    ask(page, "what is 12 * 12?", "12 * 12 = 144")
    original = db.list_traces(TraceFilter(user_id=USER, name="what is 12 * 12")).items[0]
    page.goto(f"{server}/thread?trace={original.id}")
    settled(page)
    entry = page.get_by_label("Entry number (#)")
    entry.fill("2")  # the calculator step
    entry.press("Enter")
    wait_for_text(page, "The user's message this step saw")
    assert page.get_by_label("The user's message this step saw").input_value() == "what is 12 * 12?"
    page.get_by_role("button", name="Replay from here").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "replay-control.png"))
    page.get_by_role("button", name="Replay from here").click()
    page.wait_for_url("**/chat", timeout=30_000)
    wait_for_text(page, "Forked from")
    settled(page)
    page.wait_for_selector('[data-testid="stChatMessage"] >> text=12 * 12 = 144', timeout=30_000)
    (fork,) = db.get_forks(original.id)
    assert fork.metadata["forked_from"] == {"trace_id": original.id, "seq": 2}
    text = body(page)
    assert f"thread {fork.thread_id}" in text and f"({original.id[:8]}) at step 2" in text
    page.screenshot(path=str(shots / "replay.png"), full_page=True)
    # the link goes back to the original, which lists its replay
    page.get_by_text("Forked from").first.click()
    page.wait_for_url(f"**/thread?trace={original.id}", timeout=30_000)
    wait_for_text(page, "Replayed as:")
    assert f"({fork.id[:8]}) from step 2" in body(page)
    assert page.input_value('[data-testid="stTextInput"] input') == "what is 12 * 12?"  # its name, again
    page.screenshot(path=str(shots / "replayed-as.png"))


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
    # the entries indexed for search first: the store's indexer would otherwise be at it
    # while the page draws, and on 2 cores that measures the indexing too
    db.index_pending()  # waits for the store's own indexer where it holds the trace
    with db.pool.connection() as conn:
        row = conn.execute(
            "SELECT index_pending FROM automation_traces WHERE id = %s", (trace_id,)
        ).fetchone()
    assert not row["index_pending"]

    small = db.append_entries(rows[:100], thread_id="browser-100", user_id=USER, name="100 steps").trace_id
    db.index_pending()

    def drawn(tid: str) -> float:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        began = time.perf_counter()
        page.goto(f"{server}/thread?trace={tid}")
        # the 10,000 bars are drawn with WebGL, on a canvas; 100 as SVG
        chart = '[data-testid="stPlotlyChart"] ' + ("canvas" if tid == trace_id else ".main-svg")
        page.wait_for_selector(chart, timeout=60_000)
        settled(page)
        elapsed = time.perf_counter() - began
        if tid == trace_id:
            assert "10,000" in body(page)
            page.screenshot(path=str(shots / "thread-10k.png"))
        page.close()
        return elapsed

    drawn(small)  # the first page of a server pays for its start
    baseline = drawn(small)  # the same page with 100 entries, on the machine as it is now
    elapsed = drawn(trace_id)
    print(f"\nbrowser: thread page of 10,000 entries drawn in {elapsed:.2f} s, of 100 in {baseline:.2f} s")
    # Drawing happens in the browser (software WebGL here). The bound catches a page that
    # would draw 10,000 SVG bars, not a machine busy with other work: it is taken against
    # the page of 100 entries drawn just before, 8-9 s here alone, the 10,000 about 1 s more
    # (a fixed 15 s failed at 22 s when the other test process kept both cores busy).
    assert elapsed < max(15.0, 2.5 * baseline)


# -- stored payloads, running steps, the graph ------------------------------------------------

PAYLOADS = [
    "<script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "[click](javascript:window.__pwned='markdown')",
    "javascript:window.__pwned='href'",
    "<a href=\"javascript:window.__pwned='a'\">a link</a>",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
]
HOSTILE = " ".join(PAYLOADS)
QUOTED = 'say "hi"'


def hostile_trace(db, user: str, thread: str, variant: int) -> str:
    """A trace whose every text is a payload: its name, provider, nodes, kinds, names,
    inputs, outputs, error, model, and the node names and edge labels of its graph."""
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    nodes = [PAYLOADS[1], PAYLOADS[4], QUOTED]
    rows = []
    for i in range(6):
        start = t0 + timedelta(seconds=i)
        rows.append(
            {
                "node": nodes[i % 3],
                "kind": PAYLOADS[i % len(PAYLOADS)],
                "name": PAYLOADS[(i + variant) % len(PAYLOADS)],
                "input": {"q": HOSTILE},
                "output": HOSTILE if i % 2 else {"content": PAYLOADS[0], "tool_calls": []},
                "status": "error" if i == 5 else "ok",
                "error": HOSTILE if i == 5 else None,
                "model": PAYLOADS[1],
                "usage": {"input_tokens": 10 + i, "output_tokens": 5},
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(milliseconds=400)).isoformat(),
            }
        )
    trace_id = db.save_trace(user, PAYLOADS[3], thread, rows, name=HOSTILE)
    graph = {
        "nodes": [{"id": "__start__"}, *({"id": n, "name": n} for n in nodes), {"id": "__end__"}],
        "edges": [
            {"source": "__start__", "target": nodes[0]},
            {"source": nodes[0], "target": nodes[1], "conditional": True, "label": PAYLOADS[2]},
            {"source": nodes[1], "target": nodes[2]},
            {"source": nodes[2], "target": "__end__"},
        ],
    }
    db.update_metadata(trace_id, {"graph": graph, "note": HOSTILE})
    return trace_id


def nothing_ran(page: object, dialogs: list[str], where: str) -> None:
    """No payload ran, and none became a live element or a javascript: link."""
    assert page.evaluate("() => window.__pwned") is None, where
    assert dialogs == [], where
    assert page.locator('a[href^="javascript:" i], [href^="javascript:" i]').count() == 0, where
    assert page.locator('img[src="x"], svg[onload], [onerror]').count() == 0, where
    assert page.locator("script:has-text('__pwned')").count() == 0, where


def hover_everything(page: object, points: str, limit: int = 12) -> int:
    """Hover the first ``limit`` ``points`` of every plotly chart on the page: no hover
    label may hold an element of a payload. Returns how many labels showed a payload as
    text."""
    from browser_support import hover_centre

    shown = 0
    charts = page.locator('[data-testid="stPlotlyChart"]')
    for c in range(charts.count()):
        chart = charts.nth(c)
        found = chart.locator(points)
        for i in range(min(found.count(), limit)):
            hover_centre(page, found.nth(i))
            page.wait_for_timeout(120)
            label = chart.locator(".hoverlayer")
            assert label.locator("img, a, script, svg svg").count() == 0
            text = label.text_content() or ""
            shown += "<img" in text or "<a href" in text
    return shown


def test_stored_payloads_run_no_script_on_any_page(server: str, browser, db, shots: Path) -> None:
    a = hostile_trace(db, USER, "hostile-a", 0)
    b = hostile_trace(db, USER, "hostile-b", 1)
    hostile_trace(db, PAYLOADS[1], "hostile-c", 2)  # a user whose id is a payload
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{server}/")
    settled(page)
    assert "<img src=x" in body(page) or page.locator('[data-testid="stDataFrame"]').count()
    nothing_ran(page, dialogs, "traces")

    page.goto(f"{server}/thread?trace={a}")
    settled(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .barlayer', timeout=30_000)
    assert "Graph" in body(page)
    # the timeline's hover text and the graph's show the payloads as text
    assert hover_everything(page, ".barlayer .point", limit=4) > 0  # the timeline
    assert hover_everything(page, ".scatterlayer .trace:last-child .point", limit=3) > 0  # the graph
    # a node name with quotes is drawn as typed, not as &quot;
    ticks = page.eval_on_selector_all(".ytick text", "els => els.map(e => e.textContent)")
    assert QUOTED in ticks and not any("&quot;" in t for t in ticks)
    page.locator('[data-testid="stNumberInput"] input').first.fill("5")
    page.keyboard.press("Enter")
    settled(page)
    page.wait_for_selector('[data-testid="stJson"]', timeout=30_000)
    nothing_ran(page, dialogs, "thread")
    page.screenshot(path=str(shots / "thread-payloads.png"), full_page=True)

    page.goto(f"{server}/compare?a={a}&b={b}")
    settled(page)
    tick(page, 0)
    page.wait_for_selector('[data-testid="stJson"]', timeout=30_000)
    settled(page)
    nothing_ran(page, dialogs, "compare")

    page.goto(f"{server}/overview?span=a+year")
    settled(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .barlayer', timeout=30_000)
    hover_everything(page, ".barlayer .point", limit=1)
    nothing_ran(page, dialogs, "overview")

    page.goto(f"{server}/chat")
    settled(page)
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option").nth(1).click()
    settled(page)
    nothing_ran(page, dialogs, "chat")

    page.goto(f"{server}/settings")
    settled(page)
    nothing_ran(page, dialogs, "settings")
    page.close()


def test_a_running_trace_grows_and_its_graph_filters_the_entries(
    server: str, browser, db, shots: Path
) -> None:
    from browser_support import click_centre
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    now = datetime.now(UTC)
    steps = [("planner", 14.0, 0.3), ("model", 13.5, 2.0), ("tools", 11.3, 0.8), ("model", 10.3, 2.5)]
    rows = [
        {
            "node": node,
            "kind": {"model": "llm", "tools": "tool"}.get(node, "plan"),
            "name": node,
            "started_at": (now - timedelta(seconds=ago)).isoformat(),
            "ended_at": (now - timedelta(seconds=ago - took)).isoformat(),
        }
        for node, ago, took in steps
    ]
    trace_id = db.append_entries(
        rows,
        thread_id="browser-running",
        user_id=USER,
        status="running",
        name="a run in progress",
        running_start={
            "task-tools": {"node": "tools", "started_at": (now - timedelta(seconds=7)).isoformat()}
        },
    ).trace_id
    graph = {
        "nodes": [
            {"id": n, "name": n} for n in ("__start__", "planner", "model", "tools", "summarise", "__end__")
        ],
        "edges": [
            {"source": "__start__", "target": "planner"},
            {"source": "planner", "target": "model"},
            {"source": "model", "target": "tools", "conditional": True},
            {"source": "model", "target": "summarise", "conditional": True},
            {"source": "tools", "target": "model"},
            {"source": "summarise", "target": "__end__"},
        ],
    }
    db.update_metadata(trace_id, {"graph": graph})
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{server}/thread?trace={trace_id}")
    settled(page)
    wait_for_text(page, "Running now: tools for")

    def running_for() -> float:
        text = page.get_by_text("Running now: tools for").first.inner_text()
        return float(text.split("tools for ")[1].split(" s")[0])

    first = running_for()
    # the hatched bar of the running step, and the view refreshing by itself
    assert page.locator('[data-testid="stPlotlyChart"] pattern').count() >= 1
    assert page.get_by_text("running now", exact=True).count() >= 1  # the legend
    page.wait_for_function(
        f"() => /Running now: tools for ([0-9.]+) s/.exec(document.body.innerText)?.[1] > {first + 1}",
        timeout=15_000,
    )
    page.screenshot(path=str(shots / "thread-running.png"), full_page=True)

    # a click on the graph's model node shows only its steps
    nodes = (
        page.locator('[data-testid="stPlotlyChart"]')
        .first.locator(".scatterlayer .trace")
        .last.locator(".point")
    )
    assert nodes.count() == 6
    chosen = "() => [...document.querySelectorAll('[data-testid=\"stMultiSelect\"]')].some(e => e.innerText.includes('model'))"
    for _ in range(3):  # the view redraws every 2 s while the run goes on: a click may meet a redraw
        click_centre(page, nodes.nth(2))
        try:
            page.wait_for_function(chosen, timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_function(chosen, timeout=1_000)
    wait_for_text(page, "2 of 5 entries", timeout=15)  # the rerun after the click may start late
    page.screenshot(path=str(shots / "thread-graph.png"), full_page=True)

    # the run ends: the running step is gone and the page stops refreshing
    db.append_entries(
        [{"node": "tools", "name": "tools"}],
        trace_id=trace_id,
        running_end=["task-tools"],
        status="completed",
    )
    page.wait_for_function("() => !document.body.innerText.includes('Running now')", timeout=15_000)
    settled(page)
    assert "refreshes every" not in body(page)
    page.close()
