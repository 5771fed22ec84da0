"""pages/compare.py: two traces aligned step by step, differences highlighted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from apptest_support import dashboard_env, open_page, select_rows, texts


def run(question: str, result: str, tools: list[str], ms: float = 100.0) -> list[dict]:
    out = [{"node": "planner", "name": "plan", "input": question, "output": tools, "duration_ms": 5.0}]
    for tool in tools:
        out.append(
            {"node": "model", "name": "llm", "input": question, "output": f"call {tool}", "duration_ms": ms}
        )
        out.append(
            {"node": "tools", "name": tool, "input": {"q": question}, "output": result, "duration_ms": ms}
        )
    out.append({"node": "model", "name": "llm", "input": question, "output": result, "duration_ms": ms})
    return out


@pytest.fixture(scope="module")
def pair(db, db_url: str) -> Iterator[tuple[str, str]]:
    a = db.save_trace("ana", None, "cmp-a", run("17*23", "391", ["calculator"]), name="A run")
    b = db.save_trace(
        "ana", None, "cmp-b", run("17*24", "408", ["calculator", "search"], ms=900.0), name="B run"
    )
    with dashboard_env(TRACEDB_URL=db_url):
        yield a, b


def test_pick_two_traces(pair) -> None:
    at = open_page("compare")
    assert not at.exception
    assert any("Pick two traces" in i.value for i in at.info)
    at.selectbox(key="compare_a").set_value(pair[0]).run()
    at.selectbox(key="compare_b").set_value(pair[1]).run()
    assert not at.exception
    assert at.query_params["a"] in (pair[0], [pair[0]]) and at.query_params["b"] in (pair[1], [pair[1]])
    assert len(at.dataframe) == 1


def test_aligned_steps_and_differences(pair) -> None:
    at = open_page("compare", a=pair[0], b=pair[1])
    assert not at.exception
    counts = {m.label: m.value for m in at.metric}
    assert counts["Same steps"] == "0" and counts["Only in B"] == "2"
    assert counts["Changed"] == "4" and counts["Only in A"] == "0"
    table = at.dataframe[0].value
    assert table["op"].tolist() == ["changed"] * 4 + ["only B"] * 2
    assert table.loc[2, "differs"] == "input, output, duration"
    assert table.loc[2, "delta_ms"] == "+800.0" and table.loc[4, "a_seq"] == ""

    at.toggle(key="compare_only_diff").set_value(True).run()
    assert len(at.dataframe[0].value) == 6

    select_rows(at, "compare_table", [2])
    assert [json.loads(j.value)["name"] for j in at.json] == ["calculator", "calculator"]
    diff = at.code[-1].value
    assert '-  "output": "391"' in diff and '+  "output": "408"' in diff


def test_same_trace_twice_is_all_equal(pair) -> None:
    at = open_page("compare", a=pair[0], b=pair[0])
    counts = {m.label: m.value for m in at.metric}
    assert counts["Same steps"] == "4" and counts["Changed"] == "0"
    at.toggle(key="compare_only_diff").set_value(True).run()
    assert at.dataframe[0].value.empty


def test_unknown_ids_are_not_a_traceback(pair) -> None:
    at = open_page("compare", a="nope", b=pair[1])
    assert not at.exception
    assert any("Pick two traces" in t for t in texts(at))
