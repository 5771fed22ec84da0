"""Signing in with an API key, end to end in headless Chromium: the sign-in comes first,
even on a deep link, which opens after it; a user sees and exports only their own traces;
a sign-out ends it; an admin sees everyone's. The first deep link of a fresh server
takes the key typed into it (see ``dashboard/navigation.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    body,
    chromium,
    needs_chromium,
    screenshots,
    settled,
    streamlit_server,
    wait_for_text,
)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(
        db_url, tmp_path_factory.mktemp("streamlit") / "server.log", TRACEDB_AUTH="keys"
    ) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def sign_in(page: object, secret: str, works: bool = True) -> None:
    """Type a key and press Enter, as a user does; wait for the dashboard (or the refusal)."""
    settled(page)
    field = page.get_by_label("API key")
    field.fill(secret)
    field.press("Enter")
    page.get_by_text("Sign out" if works else "This is not a valid key").first.wait_for(timeout=15_000)
    settled(page)


def test_a_key_signs_in_to_its_own_traces_only(server: str, browser, db) -> None:
    kim = [
        db.save_trace("kim", None, f"kim-{i}", [{"node": "model", "output": i}], name=f"kim {i}")
        for i in range(2)
    ]
    lee = db.save_trace("lee", None, "lee-0", [{"node": "model"}], name="lee 0")
    secret = db.create_api_key("kim", label="browser")[1]
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    # a deep link shows the sign-in first, and nothing of the dashboard
    page.goto(f"{server}/thread?trace={kim[0]}")
    settled(page)
    assert page.locator("h1").first.inner_text() == "Sign in"
    assert "Traces" not in page.inner_text('[data-testid="stSidebar"]')
    page.screenshot(path=str(screenshots() / "sign-in.png"))
    sign_in(page, "tdb_wrong", works=False)
    sign_in(page, secret)
    # ... and opens after it
    wait_for_text(page, f"id {kim[0]}")
    assert page.url.endswith(f"/thread?trace={kim[0]}")
    sidebar = page.inner_text('[data-testid="stSidebar"]')
    assert "kim" in sidebar and "You see your own traces" in sidebar
    # another user's trace does not exist for kim
    page.goto(f"{server}/thread?trace={lee}")
    settled(page)
    # a new page load is a new session: sign in again
    sign_in(page, secret)
    wait_for_text(page, "No trace has this id")
    page.get_by_text("Traces", exact=True).first.click()
    wait_for_text(page, "2 traces match")
    assert "lee 0" not in body(page)
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download all 2 matching traces (JSONL)").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(kim)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for(timeout=15_000)
    settled(page)
    # the signed-in page's sidebar goes once the sign-in page has drawn (Streamlit drops a
    # run's stale elements just after the run ends)
    page.wait_for_function(
        "() => !(document.querySelector('[data-testid=\"stSidebar\"]')?.innerText || '').includes('kim')",
        timeout=15_000,
    )
    assert "kim" not in page.inner_text('[data-testid="stSidebar"]')
    page.close()


def test_an_admin_key_sees_every_users_traces(server: str, browser, db) -> None:
    db.save_trace("mo", None, "mo-0", [{"node": "model"}], name="mo 0")
    db.save_trace("ned", None, "ned-0", [{"node": "model"}], name="ned 0")
    secret = db.create_api_key("boss", admin=True)[1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/")
    settled(page)
    sign_in(page, secret)
    wait_for_text(page, "Admin: you see every user's traces")
    page.wait_for_function(
        "() => ['mo 0', 'ned 0'].every(n => document.querySelector('[data-testid=\"stDataFrame\"]')?.textContent.includes(n))",
        timeout=30_000,
    )
    page.close()
