"""pages/traces.py: filters in the URL, keyset pages, selection, delete, rename, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from apptest_support import dashboard_env, open_page, select_rows, texts

from tracedb import TraceFilter


@pytest.fixture(scope="module")
def stored(db, db_url: str) -> Iterator[dict[str, list[str]]]:
    """30 traces: ana's completed model runs, ben's failed tool runs, cy's running ones."""
    made: dict[str, list[str]] = {"ana": [], "ben": [], "cy": []}
    for i in range(12):
        made["ana"].append(
            db.save_trace(
                "ana",
                None,
                f"ana-{i}",
                [{"node": "model", "name": "llm", "output": f"alpha {i}"}],
                name=f"alpha {i}",
            )
        )
    for i in range(10):
        tid = db.save_trace(
            "ben",
            None,
            f"ben-{i}",
            [{"node": "tools", "name": "calculator", "output": "kiwi"}],
            name=f"beta {i}",
        )
        db.set_status(tid, "failed")
        made["ben"].append(tid)
    for i in range(8):
        tid = db.save_trace("cy", None, f"cy-{i}", [{"node": "planner", "name": "plan"}], name=f"gamma {i}")
        db.set_status(tid, "running")
        made["cy"].append(tid)
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER="ana"):
        yield made


def table(at):
    return at.dataframe[0].value


def test_lists_traces_with_links_to_their_thread_page(stored) -> None:
    at = open_page("traces")
    assert not at.exception
    for key in ("q", "user", "thread", "name", "status", "node", "range", "contains", "size"):
        assert at.get_by_key(key) is not None
    frame = table(at)
    assert len(frame) == 30
    assert list(frame.columns[:6]) == ["open", "name", "thread", "user", "status", "entries"]
    assert all(link == f"thread?trace={tid}" for link, tid in zip(frame["open"], frame["id"], strict=True))
    assert "30 matching traces" in " ".join(texts(at))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"user": "ben"}, 10),
        ({"status": "running"}, 8),
        ({"name": "alpha 1"}, 3),  # alpha 1, alpha 10, alpha 11
        ({"node": "tools"}, 10),
        ({"q": "kiwi"}, 10),
        ({"contains": '{"node": "planner"}'}, 8),
        ({"thread": "cy-3"}, 1),
        ({"user": "ana", "status": "failed"}, 0),
    ],
)
def test_filters_from_the_url(stored, params: dict[str, str], expected: int) -> None:
    at = open_page("traces", **params)
    assert not at.exception
    assert len(table(at)) == expected
    assert f"{expected:,} matching traces" in " ".join(texts(at))


def test_changing_a_filter_widget_changes_the_result(stored) -> None:
    at = open_page("traces")
    at.selectbox(key="user").set_value("cy").run()
    assert set(table(at)["user"]) == {"cy"}
    at.multiselect(key="status").set_value(["completed"]).run()
    assert table(at).empty
    at.selectbox(key="range").set_value("last hour").run()
    assert not at.exception


def test_invalid_json_filter_is_a_clear_error(stored) -> None:
    at = open_page("traces", contains='{"node": tools}')
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)
    at = open_page("traces", contains="42")
    assert any("JSON object or array" in e.value for e in at.error)


def test_keyset_pages_forward_and_back(stored) -> None:
    at = open_page("traces", size="25")
    first = table(at)
    assert len(first) == 25 and not at.button(key="traces_next").disabled
    assert at.button(key="traces_previous").disabled
    at.button(key="traces_next").click().run()
    second = table(at)
    assert len(second) == 5 and at.button(key="traces_next").disabled
    assert not set(first["id"]) & set(second["id"])
    at.button(key="traces_previous").click().run()
    assert table(at)["id"].tolist() == first["id"].tolist()


def test_rename_the_selected_trace(stored, db) -> None:
    at = open_page("traces", user="ana")
    frame = table(at)
    select_rows(at, "traces_table", [0])
    assert at.text_input(key="rename_name").value == frame.loc[0, "name"]
    at.text_input(key="rename_name").set_value("<b>renamed</b> [x](javascript:alert(1))")
    at.button(key="rename_submit").click().run()
    assert not at.exception
    assert db.get_summary(frame.loc[0, "id"]).name == "<b>renamed</b> [x](javascript:alert(1))"
    assert any("Renamed" in s.value for s in at.success)
    # the new name is shown in the table only, never as markdown
    assert not any("javascript" in m.value for m in at.markdown)


def test_delete_selected_asks_first_and_cancel_keeps_them(stored, db) -> None:
    at = open_page("traces", user="cy")
    select_rows(at, "traces_table", [0, 1])
    assert at.button(key="delete_selected").label == "Delete selected (2)"
    at.button(key="delete_selected").click().run()
    assert any("Delete the 2 selected traces" in m.value for m in at.markdown)
    at.button(key="delete_cancel").click().run()
    assert db.count_traces(TraceFilter(user_id="cy")) == 8
    assert not any("selected traces" in m.value for m in at.markdown)

    frame = table(at)
    select_rows(at, "traces_table", [0, 1])
    at.button(key="delete_selected").click().run()
    at.button(key="delete_confirm").click().run()
    assert not at.exception
    assert db.count_traces(TraceFilter(user_id="cy")) == 6
    assert db.get_summary(frame.loc[0, "id"]) is None and db.get_summary(frame.loc[1, "id"]) is None
    assert any("Deleted 2 traces" in s.value for s in at.success)
    assert len(table(at)) == 6


def test_delete_all_matching_shows_the_exact_count(stored, db) -> None:
    at = open_page("traces", user="ben", name="beta")
    assert at.button(key="delete_matching").label == "Delete all 10 matching"
    at.button(key="delete_matching").click().run()
    assert any("Delete all 10 traces that match" in m.value for m in at.markdown)
    at.button(key="delete_confirm").click().run()
    assert not at.exception
    assert db.count_traces(TraceFilter(user_id="ben")) == 0
    assert any("Deleted 10 traces" in s.value for s in at.success)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_export_selected_and_matching(stored, fmt: str) -> None:
    at = open_page("traces", user="ana")
    at.segmented_control(key="export_format").set_value(fmt).run()
    at.radio(key="export_scope").set_value("matching").run()
    at.button(key="export_prepare").click().run()
    assert not at.exception
    prepared = at.session_state["traces_export"]
    assert prepared["count"] == 12 and prepared["file"].endswith(f".{fmt}")
    assert at.download_button(key="export_download")
    text = prepared["data"].decode()
    if fmt == "json":
        assert {t["user_id"] for t in json.loads(text)} == {"ana"}
    elif fmt == "jsonl":
        assert len(text.splitlines()) == 12
    else:
        assert text.splitlines()[0].startswith("trace_id,")

    select_rows(at, "traces_table", [2])
    at.radio(key="export_scope").set_value("selected").run()
    at.button(key="export_prepare").click().run()
    assert at.session_state["traces_export"]["count"] == 1


def test_an_empty_database_offers_demo_traces(fresh_db_url: str) -> None:
    from tracedb import AutomationTraceDB

    with dashboard_env(TRACEDB_URL=fresh_db_url):
        at = open_page("traces")
        assert not at.exception and not at.dataframe
        at.button(key="load_demo").click().run(timeout=120)
        assert not at.exception
        assert any("Loaded 300 demo traces" in s.value for s in at.success)
        assert len(table(at)) == 50
    with AutomationTraceDB(fresh_db_url) as db:
        assert db.count_traces() == 300


def test_custom_date_range(stored, db) -> None:
    at = open_page("traces", range="between dates")
    assert not at.exception
    assert at.date_input(key="dates") and len(table(at)) == db.count_traces()
    at.date_input(key="dates").set_value((date(2020, 1, 1), date(2020, 1, 2))).run()
    assert table(at).empty
