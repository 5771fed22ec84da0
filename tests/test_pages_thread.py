"""pages/thread.py: one trace's header, timeline, time per node, entries and live refresh."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apptest_support import dashboard_env, open_page, plotly_array, plotly_specs, table_key, texts, tick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> [click](javascript:alert(1)) **bold**'


def agent_entries(n: int, hostile: bool = False, t0: datetime = T0) -> list[dict]:
    out = []
    for i in range(n):
        node = ("planner", "model", "tools", "summarise")[0 if i == 0 else 3 if i == n - 1 else 1 + i % 2]
        start = t0 + timedelta(seconds=i)
        out.append(
            {
                "node": node,
                "kind": {"tools": "tool", "model": "llm"}.get(node, node),
                "name": f"{node}-{i}",
                "input": {"i": i},
                "output": HOSTILE if hostile and node == "tools" else f"out {i}",
                "status": "error" if node == "tools" and i % 9 == 0 else "ok",
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(milliseconds=300)).isoformat(),
            }
        )
    return out


@pytest.fixture(scope="module")
def traces(db, db_url: str) -> Iterator[dict[str, str]]:
    made = {
        "small": db.save_trace("ana", "offline", "th-small", agent_entries(12, hostile=True), name=HOSTILE),
        "untimed": db.save_trace(
            "ben",
            None,
            "th-untimed",
            [{"node": "fetch"}, {"node": "parse"}, {"node": "store"}],
            name="ingest",
        ),
    }
    big = db.append_entries(agent_entries(1), thread_id="th-big", user_id="ana", name="big").trace_id
    rows = agent_entries(10_000)
    for i in range(1, 10_000, 2500):
        db.append_entries(rows[i : i + 2500], trace_id=big)
    made["big"] = big
    running = db.append_entries(agent_entries(3), thread_id="th-running", user_id="cy", status="running")
    made["running"] = running.trace_id
    lossy = agent_entries(4)
    lossy.insert(
        2,
        {
            "node": "__recorder__",
            "kind": "gap",
            "name": "entries not recorded",
            "status": "gap",
            "dropped": 140,
            "started_at": lossy[1]["ended_at"],
            "ended_at": lossy[2]["started_at"],
        },
    )
    made["lossy"] = db.append_entries(
        lossy, thread_id="th-lossy", user_id="ana", name="lossy", dropped=140
    ).trace_id
    made["usage"] = db.save_trace("ana", "openai", "th-usage", usage_entries(), name="with usage")
    made["odd"] = db.save_trace("ana", None, "th-odd", ODD, name="odd entries")
    made["graph"] = live_trace(db, "th-graph")
    made["graph_done"] = db.save_trace("ana", None, "th-graph-done", agent_entries(6), name="graph, done")
    for key in ("graph", "graph_done"):
        db.update_metadata(made[key], {"graph": AGENT_GRAPH})
    with dashboard_env(TRACEDB_URL=db_url):
        yield made


AGENT_GRAPH = {
    "nodes": [
        {"id": n, "name": n}
        for n in ("__start__", "planner", "model", "tools", "summarise", "reviewer", "__end__")
    ],
    "edges": [
        {"source": "model", "target": "reviewer", "conditional": True},
        {"source": "reviewer", "target": "__end__"},
        {"source": "__start__", "target": "planner"},
        {"source": "planner", "target": "model"},
        {"source": "model", "target": "tools", "conditional": True},
        {"source": "model", "target": "summarise", "conditional": True},
        {"source": "tools", "target": "model"},
        {"source": "summarise", "target": "__end__"},
    ],
}
ODD = [5, "plain text", [1, {"a": 2}], None, True, 1.5, {"node": "model", "output": "x"}]


def live_trace(db, thread: str) -> str:
    """A running trace: three stored steps, the model running for 20 s and a tool for 3 s."""
    now = datetime.now(UTC)
    return db.append_entries(
        agent_entries(3, t0=now - timedelta(seconds=24)),
        thread_id=thread,
        user_id="cy",
        status="running",
        running_start={
            "task-model": {"node": "model", "started_at": (now - timedelta(seconds=20)).isoformat()},
            "task-tools": {"node": "tools", "started_at": (now - timedelta(seconds=3)).isoformat()},
        },
    ).trace_id


def usage_entries() -> list[dict]:
    out = agent_entries(4)
    out[1]["usage"] = {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200}
    out[1]["model"] = "gpt-4o-mini"
    out[2]["usage"] = {"input_tokens": 50, "output_tokens": 10, "total_tokens": 60}
    out[2]["model"] = "gpt-4o-mini"
    return out


def test_without_a_trace_parameter_offers_recent_traces(traces) -> None:
    at = open_page("thread")
    assert not at.exception
    picker = at.selectbox(key="thread_pick_widget")
    assert any(traces["small"][:8] in o for o in picker.options)
    assert not plotly_specs(at)
    picker.set_value(traces["untimed"]).run()
    assert not at.exception and plotly_specs(at)
    assert at.query_params["trace"] == [traces["untimed"]] or at.query_params["trace"] == traces["untimed"]


def test_header_timeline_nodes_and_entries(traces) -> None:
    at = open_page("thread", trace=traces["small"])
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert at.get("badge")[0].proto.label == "completed" if at.get("badge") else True
    assert metrics["Entries"] == "12" and metrics["Error steps"] == "1"
    # twelve steps of 300 ms, one second apart: the work and the span differ
    assert metrics["Work"] == "3.60 s" and metrics["Span"] == "11.3 s"
    assert at.text_input(key="trace_name").value == HOSTILE
    specs = plotly_specs(at)
    assert len(specs) == 1 and '"type":"bar"' in specs[0].replace(" ", "")
    stats = at.dataframe[0].value
    assert set(stats["node"]) == {"planner", "model", "tools", "summarise"}
    table = at.dataframe[1].value
    assert len(table) == 12 and {"input", "output"} <= set(table.columns)
    assert table.loc[0, "input"] == '{"i": 0}'


def test_trace_content_is_never_rendered_as_markup(traces) -> None:
    at = open_page("thread", trace=traces["small"])
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any("javascript" in v or "<script>" in v for v in rendered)
    assert all("<script>" not in spec for spec in plotly_specs(at))
    at.number_input(key="entry_seq").set_value(3).run()
    assert json.loads(at.json[0].value)["output"] == HOSTILE


def test_entries_filter_page_and_json_on_demand(traces) -> None:
    at = open_page("thread", trace=traces["small"])
    at.multiselect(key="entry_nodes").set_value(["tools"]).run()
    table = at.dataframe[1].value
    assert set(table["node"]) == {"tools"} and len(table) == 5
    at.multiselect(key="entry_statuses").set_value(["error"]).run()
    assert at.dataframe[1].value["seq"].tolist() == [9]
    tick(at, "entries_table", "seq", [0], index=1)
    assert at.number_input(key="entry_seq").value == 9
    assert json.loads(at.json[0].value)["name"] == "tools-9"
    assert any(c.value.startswith("Entry #9 · tools · tool · tools-9") for c in at.caption)
    # a typed number wins over the ticked row, and unticks it
    at.number_input(key="entry_seq").set_value(4).run()
    assert json.loads(at.json[0].value)["name"] == "model-4"
    assert not at.session_state[table_key(at, "entries_table", "seq", 1)]["selection"]["rows"]


def test_rename_from_the_header(traces, db) -> None:
    at = open_page("thread", trace=traces["untimed"])
    at.text_input(key="trace_name").set_value("ingest, renamed")
    at.button(key="trace_name_submit").click().run()
    assert not at.exception
    assert db.get_summary(traces["untimed"]).name == "ingest, renamed"
    assert any("Renamed" in s.value for s in at.success)


def test_untimed_entries_are_drawn_in_sequence_order(traces) -> None:
    at = open_page("thread", trace=traces["untimed"])
    assert not at.exception
    assert "step (no timings recorded)" in plotly_specs(at)[0]


def test_ten_thousand_entries_open_fast_and_are_drawn_with_webgl(traces) -> None:
    import streamlit as st

    open_page("thread", trace=traces["small"])  # imports and the store are warm, as in a running app
    times = []
    for _ in range(2):  # best of two cold opens: other work on a shared machine adds noise
        st.cache_data.clear()
        began = time.perf_counter()
        at = open_page("thread", trace=traces["big"])
        times.append(time.perf_counter() - began)
        assert not at.exception
    print(
        f"\nthread page of a 10,000-entry trace: {min(times):.2f} s (AppTest, opens: "
        f"{', '.join(f'{t:.2f}' for t in times)} s)"
    )
    assert min(times) < 2.0
    assert at.metric[0].value == "10,000"
    assert '"scattergl"' in plotly_specs(at)[0]
    assert len(at.dataframe[1].value) == 100
    at.slider(key="timeline_window").set_value((100.0, 160.0)).run()
    assert not at.exception
    assert '"type":"bar"' in plotly_specs(at)[0].replace(" ", "")
    assert at.get("pagination")
    at.get("pagination")[0].set_value(3).run()
    assert at.dataframe[1].value["seq"].iloc[0] == 200


def test_running_trace_refreshes_until_it_ends(traces, db) -> None:
    at = open_page("thread", trace=traces["running"])
    assert any("refreshes every" in t for t in texts(at))
    db.append_entries(agent_entries(2), trace_id=traces["running"], status="completed")
    at.run()
    assert not at.exception
    assert not any("refreshes every" in t for t in texts(at))
    assert at.metric[0].value == "5"


def test_running_steps_are_open_bars_that_say_for_how_long(db, db_url: str) -> None:
    # a trace of its own: the module's live trace ages while the other tests run, and its
    # bars grow with it; the page reads this module's database also when it runs alone
    with dashboard_env(TRACEDB_URL=db_url):
        at = open_page("thread", trace=live_trace(db, f"th-bars-{uuid.uuid4().hex[:8]}"))
    assert not at.exception
    running = next(m.value for m in at.markdown if "Running now" in m.value)
    # longest first, with the time so far
    assert re.search(r"Running now: model for [\d.]+ s, tools for [\d.]+ s$", running), running
    assert any("refreshes every" in t for t in texts(at))
    figure = json.loads(plotly_specs(at)[0])
    open_bars = [t for t in figure["data"] if t["name"] == "running now"]
    assert len(open_bars) == 1 and open_bars[0]["marker"]["pattern"]["shape"] == "/"
    assert sorted(open_bars[0]["y"]) == ["model", "tools"]
    # the model bar reaches now: about 20 s long
    widths = dict(zip(open_bars[0]["y"], plotly_array(open_bars[0]["x"]), strict=True))
    assert 19.0 < widths["model"] < 40.0
    table = at.dataframe[1].value
    assert table["status"].tolist()[-2:] == ["running", "running"]
    assert table["seq"].isna().sum() == 2 and table["took"].iloc[-1].startswith("running ")
    # time per node counts stored steps only
    assert at.dataframe[0].value["steps"].sum() == 3
    # ticking a running step shows no JSON (it has none yet), and nothing fails
    tick(at, "entries_table", "seq", [4], index=1)
    assert not at.exception and not at.json


def test_a_running_step_that_ends_is_drawn_as_what_it_stored(traces, db) -> None:
    trace_id = live_trace(db, "th-ends")
    at = open_page("thread", trace=trace_id)
    assert any("Running now" in m.value for m in at.markdown)
    db.append_entries(agent_entries(1), trace_id=trace_id, running_end=["task-model", "task-tools"])
    at.run()
    assert not at.exception
    assert not any("Running now" in m.value for m in at.markdown)
    names = [t["name"] for t in json.loads(plotly_specs(at)[0])["data"]]
    assert "running now" not in names
    assert at.metric[0].value == "4"


def test_an_abandoned_trace_stops_refreshing_and_says_what_was_running(db, db_url: str) -> None:
    trace_id = live_trace(db, "th-abandoned")
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_ABANDON_AFTER="0.5"):
        time.sleep(0.6)
        at = open_page("thread", trace=trace_id)
        assert not at.exception
        assert at.markdown[0].value == ":violet-badge[:material/link_off: abandoned]"
        assert not any("refreshes every" in t for t in texts(at))
        assert any("went silent: model for" in m.value for m in at.markdown)
        names = [t["name"] for t in json.loads(plotly_specs(at)[0])["data"]]
        assert "running when its writer went silent" in names


def test_lost_entries_are_said_and_marked(traces) -> None:
    at = open_page("thread", trace=traces["lossy"])
    assert not at.exception
    assert any("140 entries of this run could not be recorded" in w.value for w in at.warning)
    table = at.dataframe[1].value
    assert "gap" in table["kind"].tolist()


def test_tokens_and_cost_per_step_and_in_the_header(traces, db) -> None:
    at = open_page("thread", trace=traces["usage"])
    assert not at.exception
    summary = db.get_summary(traces["usage"])
    assert summary.total_tokens == 1260
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens"] == "1,260" and metrics["Cost"].startswith("$")
    table = at.dataframe[1].value
    assert table["tokens"].tolist()[1:3] == [1200, 60]
    assert table["model"].tolist()[1] == "gpt-4o-mini" and table["cost"].tolist()[1].startswith("$")
    # a trace without usage has no such columns to show
    plain = open_page("thread", trace=traces["small"])
    assert "Tokens" not in {m.label for m in plain.metric}


def test_entries_that_are_not_objects_show_as_they_are(traces) -> None:
    at = open_page("thread", trace=traces["odd"])
    assert not at.exception
    table = at.dataframe[1].value
    assert table["output"].tolist()[:3] == ["5", "plain text", '[1, {"a": 2}]']
    for seq, value in enumerate(ODD):
        at.number_input(key="entry_seq").set_value(seq).run()
        assert not at.exception
        assert json.loads(at.json[0].value) == value


def click_node(at, node: str, index: int):
    """What the browser sends when a node of the graph is clicked: that point selected."""
    at.session_state["graph_chart"] = {
        "selection": {
            "points": [{"customdata": node, "point_index": index}],
            "point_indices": [index],
            "box": [],
            "lasso": [],
        }
    }
    return at.run()


def test_the_graph_shows_each_node_and_a_click_filters_the_entries(traces) -> None:
    at = open_page("thread", trace=traces["graph"])
    assert not at.exception
    assert any(s.value == "Graph" for s in at.subheader)
    figure = json.loads(plotly_specs(at)[0])
    nodes = figure["data"][-1]
    assert nodes["customdata"] == [n["id"] for n in AGENT_GRAPH["nodes"]]
    labels = dict(zip(nodes["customdata"], nodes["text"], strict=True))
    assert labels["tools"].startswith("<b>tools</b><br>1 step · p50 300 ms") and "running" in labels["tools"]
    assert (
        # running since the module's traces were made (2 s before, plus however long ago that was)
        re.match(r"<b>model</b><br>● running \d", labels["model"]) and labels["reviewer"] == "<b>reviewer</b>"
    )
    # clicks, on a trace that has ended (a running one redraws in a fragment)
    at = open_page("thread", trace=traces["graph_done"])
    click_node(at, "tools", 3)
    assert not at.exception
    assert at.multiselect(key="entry_nodes").value == ["tools"]
    assert set(at.dataframe[1].value["node"]) == {"tools"}
    # the chosen node is ringed; the filter can still be changed by hand
    ringed = json.loads(plotly_specs(at)[0])["data"][-1]
    assert ringed["marker"]["line"]["width"] == [1, 1, 1, 4, 1, 1, 1]
    at.multiselect(key="entry_nodes").set_value(["planner", "model"]).run()
    assert set(at.dataframe[1].value["node"]) == {"planner", "model"}
    # a node without steps says so and filters nothing
    click_node(at, "reviewer", 5)
    assert any("reviewer has no steps" in i.value for i in at.info)
    assert at.multiselect(key="entry_nodes").value == ["planner", "model"]
    at.segmented_control(key="graph_direction").set_value("top down").run()
    assert not at.exception


def test_a_trace_without_a_graph_draws_none(traces) -> None:
    at = open_page("thread", trace=traces["small"])
    assert not any(s.value == "Graph" for s in at.subheader)


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-4000-8000-000000000000"])
def test_unknown_trace_is_an_error_not_a_traceback(traces, bad: str) -> None:
    at = open_page("thread", trace=bad)
    assert not at.exception
    assert any("No trace has this id" in e.value for e in at.error)
