"""pages/compare.py: two traces aligned step by step, differences highlighted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from apptest_support import dashboard_env, open_page, texts, tick


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
def pair(db, db_url: str) -> Iterator[tuple[str, str, str]]:
    a = db.save_trace("ana", None, "cmp-a", run("17*23", "391", ["calculator"]), name="A run")
    b = db.save_trace(
        "ana", None, "cmp-b", run("17*24", "408", ["calculator", "search"], ms=900.0), name="B run"
    )
    again = db.save_trace(
        "ana", None, "cmp-a2", run("17*23", "391", ["calculator"], ms=450.0), name="A again"
    )
    with dashboard_env(TRACEDB_URL=db_url):
        yield a, b, again


def counts(at) -> dict[str, str]:
    return {
        m.label: m.value for m in at.metric if m.label in ("Same steps", "Changed", "Only in A", "Only in B")
    }


def test_pick_two_traces(pair) -> None:
    at = open_page("compare")
    assert not at.exception
    assert any("Pick two traces" in i.value for i in at.info)
    at.selectbox(key="compare_a_widget").set_value(pair[0]).run()
    at.selectbox(key="compare_b_widget").set_value(pair[1]).run()
    assert not at.exception
    assert at.query_params["a"] in (pair[0], [pair[0]]) and at.query_params["b"] in (pair[1], [pair[1]])
    assert len(at.dataframe) == 1


def test_aligned_steps_and_differences(pair) -> None:
    at = open_page("compare", a=pair[0], b=pair[1])
    assert not at.exception
    assert counts(at) == {"Same steps": "0", "Changed": "4", "Only in A": "0", "Only in B": "2"}
    table = at.dataframe[0].value
    assert table["op"].tolist() == ["changed", "changed", "changed", "only B", "only B", "changed"]
    assert table.loc[2, "differs"] == "input, output"
    assert table.loc[2, "time_delta"] == "+800 ms" and table.loc[3, "a_time"] == ""

    at.toggle(key="compare_only_diff").set_value(True).run()
    assert len(at.dataframe[0].value) == 6

    tick(at, "compare_table", "step", [2])
    assert [json.loads(j.value)["name"] for j in at.json] == ["calculator", "calculator"]
    diff = at.main.code[0].value
    assert '-  "output": "391"' in diff and '+  "output": "408"' in diff
    assert "duration_ms" not in diff


def test_the_same_run_again_is_the_same_but_for_its_timings(pair) -> None:
    at = open_page("compare", a=pair[0], b=pair[2])
    assert counts(at) == {"Same steps": "4", "Changed": "0", "Only in A": "0", "Only in B": "0"}
    assert at.dataframe[0].value["time_delta"].tolist()[1:] == ["+350 ms"] * 3
    at.toggle(key="compare_only_diff").set_value(True).run()
    assert not at.dataframe
    assert any("Every step is the same" in i.value for i in at.info)


def test_unknown_ids_are_not_a_traceback(pair) -> None:
    at = open_page("compare", a="nope", b=pair[1])
    assert not at.exception
    assert any("No trace has the id nope" in w.value for w in at.warning)
    assert any("Pick two traces" in t for t in texts(at))


def test_tokens_and_cost_are_compared(pair, db) -> None:
    def used(tokens: list[int]) -> list[dict]:
        return [
            {
                "node": "model",
                "name": "llm",
                "model": "gpt-4o-mini",
                "output": "x",
                "usage": {"input_tokens": n, "output_tokens": 10},
            }
            for n in tokens
        ]

    a = db.save_trace("ana", None, "cmp-tok-a", used([1000, 2000]), name="tokens A")
    b = db.save_trace("ana", None, "cmp-tok-b", used([1000, 5000, 500]), name="tokens B")
    at = open_page("compare", a=a, b=b)
    assert not at.exception
    tokens = [m for m in at.metric if m.label == "Tokens"]
    assert [m.value for m in tokens] == ["3,020", "6,530"]
    assert tokens[1].proto.delta == "+3,510 vs A"
    cost = [m for m in at.metric if m.label == "Cost"]
    assert len(cost) == 2 and cost[1].proto.delta.startswith("+$")
    table = at.dataframe[0].value
    assert table["token_delta"].sum() == 3510 and table["b_tokens"].sum() == 6530


def test_entries_that_are_not_objects_compare(pair, db) -> None:
    a = db.save_trace("ana", None, "cmp-odd-a", [5, "text", [1, 2], None, {"node": "model"}], name="odd A")
    b = db.save_trace("ana", None, "cmp-odd-b", [5, "other", [1, 2], True], name="odd B")
    at = open_page("compare", a=a, b=b)
    assert not at.exception
    assert at.dataframe[0].value["op"].tolist() == ["same", "changed", "same", "changed", "only A"]
    tick(at, "compare_table", "step", [1])
    assert not at.exception
    assert [json.loads(j.value) for j in at.json] == ["text", "other"]


def test_a_b_that_used_less_reads_as_a_decrease(pair, db) -> None:
    """B took less time and used fewer tokens and less money than A: each change points down,
    in the colour of an improvement, whichever minus sign its text is written with; a trace
    compared with itself shows no change at all."""
    from streamlit.proto.Metric_pb2 import Metric

    def used(tokens: list[int], ms: float) -> list[dict]:
        return [
            {
                "node": "model",
                "name": "llm",
                "model": "gpt-4o-mini",
                "output": "x",
                "duration_ms": ms,
                "usage": {"input_tokens": n, "output_tokens": 10},
            }
            for n in tokens
        ]

    a = db.save_trace("ana", None, "cmp-less-a", used([1000, 5000, 500], 900.0), name="more")
    b = db.save_trace("ana", None, "cmp-less-b", used([1000, 2000], 100.0), name="less")
    at = open_page("compare", a=a, b=b)
    assert not at.exception
    changes = {m.label: m.proto for m in at.metric if m.proto.delta}
    assert set(changes) == {"Steps", "Duration", "Tokens", "Cost"}
    assert {label: p.direction for label, p in changes.items()} == dict.fromkeys(
        changes, Metric.MetricDirection.DOWN
    )
    for label in ("Duration", "Tokens", "Cost"):
        assert changes[label].color == Metric.MetricColor.GREEN, label

    itself = open_page("compare", a=a, b=a)
    assert not itself.exception
    assert [m.label for m in itself.metric if m.proto.delta] == []


def test_the_what_column_holds_before_the_fork_whole(pair) -> None:
    """The "what" column is as wide as its longest value, "before the fork", needs in the
    table's font (about 7 px a character), so that the word is not cut."""
    at = open_page("compare", a=pair[0], b=pair[1])
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["op"]["width"] >= 7 * len("before the fork")
