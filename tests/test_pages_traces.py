"""pages/traces.py: filters and page number in the URL, keyset pages, selection by id,
open, compare, delete, rename, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
import streamlit
from apptest_support import dashboard_env, open_page, table_key, texts, tick

from dashboard import downloads, filters
from dashboard.filters import FilterForm
from tracedb import TraceFilter

# Every test here reads the module's traces and never changes them; a test that changes
# traces makes its own, under a user of its own.
USERS = {"ana": 12, "ben": 10, "cy": 8}


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
            [{"node": "tools", "name": "calculator", "status": "error", "error": f"ZeroDivisionError {i}"}],
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


@pytest.fixture()
def own(db, ids) -> tuple[str, list[str]]:
    """Six completed traces of a user of this test's own, newest first."""
    user = ids("user")
    made = [
        db.save_trace(user, None, ids("th"), [{"node": "model", "output": i}], name=f"own {i}")
        for i in range(6)
    ]
    streamlit.cache_data.clear()  # the user filter offers the users it knows
    return user, made[::-1]


def table(at):
    return at.dataframe[0].value


def test_lists_what_a_person_scans_first_and_keeps_the_rest(stored, db) -> None:
    at = open_page("traces", size="200")
    assert not at.exception
    for key in FilterForm.keys():
        assert key == "dates" or at.get_by_key(key) is not None  # dates only for a range between dates
    frame = table(at)
    assert set(sum(stored.values(), [])) <= set(frame["id"])
    assert list(frame.columns[:6]) == ["name", "status", "entries", "duration", "updated", "user"]
    assert {
        "thread",
        "turns",
        "work",
        "span",
        "errors",
        "created",
        "provider",
        "tokens",
        "cost",
        "id",
    } <= set(frame.columns)
    failed = frame[frame["user"] == "ben"]["status"]
    assert all(s.startswith("✗ failed: ZeroDivisionError") for s in failed)
    assert f"{db.count_traces():,} traces match" in " ".join(texts(at))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"user": "ben"}, 10),
        ({"user": "cy", "status": "running"}, 8),
        ({"name": "alpha 1"}, 3),  # alpha 1, alpha 10, alpha 11
        ({"node": "tools", "user": "ben"}, 10),
        ({"q": "ZeroDivisionError"}, 10),
        ({"contains": '{"node": "planner"}'}, 8),
        ({"thread": "cy-3"}, 1),
        ({"user": "ana", "status": "failed"}, 0),
    ],
)
def test_filters_from_the_url(stored, params: dict[str, str], expected: int) -> None:
    at = open_page("traces", **params)
    assert not at.exception
    if expected:
        assert len(table(at)) == expected
        noun = "trace matches" if expected == 1 else "traces match"
        assert f"{expected:,} {noun}" in " ".join(texts(at))
    else:
        assert not at.dataframe
        assert any("No traces match these filters" in i.value for i in at.info)


def test_the_url_and_the_widgets_mean_the_same_filter(stored) -> None:
    form = FilterForm(q="kiwi", user="ben", name="beta", status=("failed", "running"), node="tools", size=25)
    at = open_page("traces", **form.to_params())
    assert not at.exception
    assert at.session_state["traces_form"] == form
    between = FilterForm(range=filters.CUSTOM, dates=(date(2026, 1, 1), date(2026, 1, 2)), contains="[1]")
    at = open_page("traces", **between.to_params())
    assert at.session_state["traces_form"] == between


def test_no_match_offers_a_way_out(stored, db) -> None:
    at = open_page("traces", user="ana", status="failed", range="last hour")
    assert any("No traces match" in i.value for i in at.info)
    at.button(key="clear_filters").click().run()
    assert not at.exception
    assert at.session_state["traces_form"] == FilterForm()
    assert len(table(at)) == min(50, db.count_traces())


def test_changing_a_filter_widget_changes_the_result(stored) -> None:
    at = open_page("traces")
    at.selectbox(key="user").set_value("cy").run()
    assert set(table(at)["user"]) == {"cy"}
    at.multiselect(key="status").set_value(["completed"]).run()
    assert not at.dataframe
    at.selectbox(key="range").set_value("last hour").run()
    assert not at.exception


def test_invalid_json_filter_is_a_clear_error(stored) -> None:
    at = open_page("traces", contains='{"node": tools}')
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)
    at = open_page("traces", contains="42")
    assert any("JSON object or array" in e.value for e in at.error)


def test_keyset_pages_forward_and_back_with_the_page_in_the_url(stored) -> None:
    at = open_page("traces", size="25", user="ana")
    first = table(at)
    assert len(first) == 12 and at.button(key="traces_next").disabled
    at = open_page("traces", size="25")
    first = table(at)
    assert len(first) == 25 and not at.button(key="traces_next").disabled
    assert at.button(key="traces_previous").disabled
    at.button(key="traces_next").click().run()
    assert at.query_params["page"] in ("2", ["2"])
    second = table(at)
    assert not set(first["id"]) & set(second["id"])
    at.button(key="traces_previous").click().run()
    assert table(at)["id"].tolist() == first["id"].tolist()
    assert "page" not in at.query_params


def test_a_shared_link_opens_the_same_page(stored) -> None:
    at = open_page("traces", size="25")
    at.button(key="traces_next").click().run()
    second = table(at)["id"].tolist()
    shared = open_page("traces", size="25", page="2")  # a new session, from the URL alone
    assert not shared.exception
    assert table(shared)["id"].tolist() == second
    beyond = open_page("traces", size="25", user="ana", page="9")
    assert len(table(beyond)) == 12 and beyond.button(key="traces_previous").disabled


def test_a_selection_is_of_ids_and_offers_open_and_compare(stored) -> None:
    at = open_page("traces", user="ana")
    frame = table(at)
    tick(at, "traces_table", "id", [0])
    assert not at.button(key="open_selected").disabled and at.button(key="compare_selected").disabled
    assert at.button(key="delete_selected").label == "Delete selected (1)"
    tick(at, "traces_table", "id", [0, 3])
    assert at.button(key="open_selected").disabled and not at.button(key="compare_selected").disabled
    at.button(key="compare_selected").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Compare"]
    assert at.query_params["a"] in (frame.loc[0, "id"], [frame.loc[0, "id"]])
    assert at.query_params["b"] in (frame.loc[3, "id"], [frame.loc[3, "id"]])


def test_the_open_picker_opens_a_trace_with_the_keyboard(stored) -> None:
    at = open_page("traces", user="cy")
    chosen = table(at).loc[2, "id"]
    at.selectbox(key="open_pick").set_value(chosen).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Thread"]
    assert at.query_params["trace"] in (chosen, [chosen])


def test_new_rows_are_a_new_table_with_nothing_ticked(stored, own, db) -> None:
    user, made = own
    at = open_page("traces", user=user)
    before = table_key(at, "traces_table", "id")
    tick(at, "traces_table", "id", [0, 1])
    assert at.button(key="delete_selected").label == "Delete selected (2)"
    db.save_trace(user, None, "late", [{"node": "model"}], name="arrived meanwhile")
    at.run()
    assert table_key(at, "traces_table", "id") != before
    assert at.button(key="delete_selected").label == "Delete selected (0)"


def test_rename_the_selected_trace(stored, own, db) -> None:
    user, made = own
    at = open_page("traces", user=user)
    frame = table(at)
    tick(at, "traces_table", "id", [0])
    assert at.text_input(key="rename_name").value == "own 5"
    at.text_input(key="rename_name").set_value("<b>renamed</b> [x](javascript:alert(1))")
    at.button(key="rename_name_submit").click().run()
    assert not at.exception
    assert db.get_summary(frame.loc[0, "id"]).name == "<b>renamed</b> [x](javascript:alert(1))"
    assert any("Renamed" in s.value for s in at.success)
    # the new name is shown in the table only, never as markdown
    assert not any("javascript" in m.value for m in at.markdown)


def test_delete_selected_asks_first_and_cancel_keeps_them(stored, own, db) -> None:
    user, made = own
    at = open_page("traces", user=user)
    tick(at, "traces_table", "id", [0, 1])
    at.button(key="delete_selected").click().run()
    assert any("Delete the 2 selected traces" in m.value for m in at.markdown)
    at.button(key="delete_cancel").click().run()
    assert db.count_traces(TraceFilter(user_id=user)) == 6
    assert not any("selected traces" in m.value for m in at.markdown)

    tick(at, "traces_table", "id", [0, 1])
    at.button(key="delete_selected").click().run()
    at.button(key="delete_confirm").click().run()
    assert not at.exception
    assert db.count_traces(TraceFilter(user_id=user)) == 4
    assert db.get_summary(made[0]) is None and db.get_summary(made[1]) is None
    assert any("Deleted 2 traces" in s.value for s in at.success)
    assert table(at)["id"].tolist() == made[2:]
    assert at.button(key="delete_selected").label == "Delete selected (0)"


def test_delete_all_matching_shows_the_exact_count(stored, own, db) -> None:
    user, _ = own
    at = open_page("traces", user=user, name="own")
    assert at.button(key="delete_matching").label == "Delete all 6 matching"
    at.button(key="delete_matching").click().run()
    assert any("Delete all 6 traces that match" in m.value for m in at.markdown)
    at.button(key="delete_confirm").click().run()
    assert not at.exception
    assert db.count_traces(TraceFilter(user_id=user)) == 0
    assert any("Deleted 6 traces" in s.value for s in at.success)


def test_export_follows_the_selection(stored, own) -> None:
    user, made = own
    at = open_page("traces", user=user)
    assert at.download_button(key="export_download").label == "Download all 6 matching traces (JSONL)"
    tick(at, "traces_table", "id", [1, 2, 4])
    assert at.download_button(key="export_download").label == "Download the 3 selected traces (JSONL)"
    at.segmented_control(key="export_format").set_value("csv").run()
    assert at.download_button(key="export_download").label == "Download the 3 selected traces (CSV)"
    assert "traces_export" not in at.session_state  # nothing is prepared in the session


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_exports_are_written_page_by_page_when_downloaded(stored, db, fmt: str) -> None:
    with downloads.traces_file(db, TraceFilter(user_id="ana"), fmt)() as made:
        text = made.read().decode()
    if fmt == "json":
        assert {t["user_id"] for t in json.loads(text)} == {"ana"} and len(json.loads(text)) == 12
    elif fmt == "jsonl":
        assert len(text.splitlines()) == 12
    else:
        assert text.splitlines()[0].startswith("trace_id,") and len(text.splitlines()) == 13


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
    at = open_page("traces", range="between dates", size="200")
    assert not at.exception
    assert at.date_input(key="dates") and len(table(at)) == min(200, db.count_traces())
    at.date_input(key="dates").set_value((date(2020, 1, 1), date(2020, 1, 2))).run()
    assert not at.dataframe


def test_tokens_cost_and_lost_entries_are_shown(db, ids, stored) -> None:
    user = ids("spender")
    used = [
        {"node": "model", "model": "gpt-4o-mini", "usage": {"input_tokens": 900, "output_tokens": 100}},
        {"node": "model", "model": "gpt-4o-mini", "usage": {"input_tokens": 300, "output_tokens": 50}},
    ]
    costly = db.save_trace(user, None, ids("th"), used, name="costly")
    plain = db.save_trace(user, None, ids("th"), [{"node": "model"}], name="plain")
    lossy = db.append_entries([{"node": "model"}], thread_id=ids("th"), user_id=user, name="lossy", dropped=7)
    streamlit.cache_data.clear()
    at = open_page("traces", user=user)
    assert not at.exception
    frame = table(at).set_index("name")
    assert frame.loc["costly", "tokens"] == db.get_summary(costly).total_tokens == 1350
    assert (
        frame.loc["costly", "cost"] == pytest.approx(db.get_summary(costly).cost_usd)
        and frame.loc["costly", "cost"] > 0
    )
    assert frame.loc[["plain", "lossy"], "tokens"].isna().all()  # unknown, not zero
    assert frame.loc["lossy", "status"] == "✓ completed, 7 entries lost" and frame.loc["lossy", "lost"] == 7
    assert db.get_summary(plain).total_tokens is None and db.get_summary(lossy.trace_id).dropped_count == 7
