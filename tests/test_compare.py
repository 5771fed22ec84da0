"""dashboard/compare.py: steps aligned by node and position; content compared without
timestamps, durations and ids."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from dashboard import compare
from tracedb import TraceSummary


def entry(
    seq: int, node: str, name: str, inp: object = None, out: object = None, ms: float = 100.0, **kw
) -> dict:
    data = {"node": node, "name": name, "input": inp, "output": out, "duration_ms": ms}
    data.update(kw)
    return {"seq": seq, "data": data}


def test_steps_that_differ_only_in_timings_and_ids_are_the_same() -> None:
    a = [
        entry(
            0, "planner", "plan", "q", "p", started_at="2026-01-01T00:00:00", ended_at="2026-01-01T00:00:01"
        ),
        entry(1, "model", "llm", 1, {"content": "", "tool_calls": [{"id": "call_1", "name": "calc"}]}),
        entry(2, "tools", "calc", {"e": "1+1"}, "2", ms=10, usage={"input_tokens": 5}),
    ]
    b = [
        entry(
            0, "planner", "plan", "q", "p", started_at="2026-02-02T10:00:00", ended_at="2026-02-02T10:00:09"
        ),
        entry(1, "model", "llm", 1, {"content": "", "tool_calls": [{"id": "call_9", "name": "calc"}]}),
        entry(2, "tools", "calc", {"e": "1+1"}, "2", ms=900, usage={"input_tokens": 7}),
    ]
    aligned = compare.align_traces(a, b)
    assert aligned["op"].tolist() == ["same", "same", "same"]
    assert aligned.loc[2, "time_delta"] == "+890 ms"
    assert compare.alignment_counts(aligned) == {
        "same": 3,
        "changed": 0,
        "only A": 0,
        "only B": 0,
        "before the fork": 0,
    }


def test_changed_and_missing_steps() -> None:
    a = [
        entry(0, "planner", "plan", "q", "p"),
        entry(1, "model", "m", 1, "call calc"),
        entry(2, "tools", "calculator", {"e": "1+1"}, "2"),
        entry(3, "model", "m", 2, "answer"),
    ]
    b = [
        entry(0, "planner", "plan", "q", "p"),
        entry(1, "model", "m", 1, "call calc"),
        entry(2, "tools", "calculator", {"e": "1+2"}, "3", ms=900),
        entry(3, "tools", "search", "x", "y"),
        entry(4, "model", "m", 2, "answer"),
    ]
    aligned = compare.align_traces(a, b)
    assert aligned["op"].tolist() == ["same", "same", "changed", "only B", "same"]
    assert aligned.loc[2, "differs"] == "input, output"
    assert aligned.loc[2, "time_delta"] == "+800 ms"
    assert pd.isna(aligned.loc[3, "a_seq"]) and aligned.loc[3, "b_seq"] == 3
    assert compare.alignment_counts(aligned) == {
        "same": 3,
        "changed": 1,
        "only A": 0,
        "only B": 1,
        "before the fork": 0,
    }


def test_only_steps_of_the_same_node_are_paired_and_content_picks_the_partner() -> None:
    # B asks the model twice more; A's final answer pairs with B's final answer, not with
    # B's second model step, because their content is the same.
    a = [
        entry(0, "model", "m", "q", "call"),
        entry(1, "tools", "t", "x", "1"),
        entry(2, "model", "m", "q", "final"),
    ]
    b = [
        entry(0, "model", "m", "q", "call"),
        entry(1, "tools", "t", "x", "1"),
        entry(2, "model", "m", "q", "call again"),
        entry(3, "tools", "t", "y", "2"),
        entry(4, "model", "m", "q", "final"),
    ]
    aligned = compare.align_traces(a, b)
    assert aligned["op"].tolist() == ["same", "same", "only B", "only B", "same"]
    assert aligned["a_seq"].tolist()[-1] == 2 and aligned["b_seq"].tolist()[-1] == 4
    swapped = compare.align_traces([entry(0, "tools", "search")], [entry(0, "model", "search")])
    assert swapped["op"].tolist() == ["only A", "only B"]


def test_a_different_model_name_is_a_named_difference_not_another_node() -> None:
    a = [entry(0, "model", "gpt-4.1-mini", "q", "391")]
    b = [entry(0, "model", "claude-sonnet-4", "q", "391")]
    aligned = compare.align_traces(a, b)
    assert aligned["op"].tolist() == ["changed"] and aligned.loc[0, "differs"] == "name"
    assert aligned.loc[0, "a_node"] == aligned.loc[0, "b_node"] == "model"


def test_content_and_diff_lines_leave_out_volatile_values() -> None:
    data = {
        "node": "x",
        "output": {"id": "msg_1", "text": "hi", "created_at": "now", "run_id": "r"},
        "duration_ms": 3,
    }
    assert compare.content(data) == {"node": "x", "output": {"text": "hi"}}
    lines = compare.diff_lines({"seq": 0, "data": data})
    assert not any("msg_1" in line or "duration_ms" in line for line in lines)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (3, 0)])
def test_empty_sides(n: int, m: int) -> None:
    aligned = compare.align_traces(
        [entry(i, "n", "s") for i in range(n)], [entry(i, "n", "s") for i in range(m)]
    )
    assert len(aligned) == max(n, m)


def test_five_thousand_steps_each_align_in_well_under_a_second() -> None:
    nodes = ("model", "tools")
    a = [(nodes[i % 2], "n", f"c{i % 7}") for i in range(5000)]
    b = [(nodes[i % 2] if i % 13 else "planner", "n", f"c{i % 5}") for i in range(5000)]
    began = time.perf_counter()
    pairs = compare.align(a, b)
    elapsed = time.perf_counter() - began
    print(f"\nalignment of 5,000 × 5,000 steps: {elapsed:.2f} s")
    assert elapsed < 2.0
    assert sorted(i for i, _ in pairs if i is not None) == list(range(5000))
    assert sorted(j for _, j in pairs if j is not None) == list(range(5000))


def test_entries_that_are_not_objects_compare_as_their_output() -> None:
    odd = [5, "text", [1, {"a": 2}], None, True, {"node": "model", "output": "x"}]
    a = [{"seq": i, "data": v} for i, v in enumerate(odd)]
    b = [{"seq": i, "data": v} for i, v in enumerate([5, "other text", [1, {"a": 2}], None, False])]
    aligned = compare.align_traces(a, b)
    assert aligned["op"].tolist() == ["same", "changed", "same", "same", "changed", "only A"]
    assert aligned.loc[1, "a_output"] == "text" and aligned.loc[1, "b_output"] == "other text"
    assert aligned.loc[1, "differs"] == "output"
    assert compare.diff_lines(a[2]) == ["[", "  1,", "  {", '    "a": 2', "  }", "]"]


def _Summary(id: str, metadata: dict) -> TraceSummary:  # noqa: N802 - reads as the trace it makes
    now = datetime.now(UTC)
    return TraceSummary(id, "u", None, "t", None, "completed", 0, now, now, metadata)


def test_a_replay_is_aligned_at_the_step_it_was_run_again_from() -> None:
    # A: plan, model, tools, model, summary; B ran again from A's second model step (seq 3),
    # with a changed answer. Left to itself the alignment pairs B's model step with A's
    # first one; at the fork it must pair it with seq 3.
    a = [
        entry(0, "planner", "plan", "q", "p"),
        entry(1, "model", "llm", "q", "call"),
        entry(2, "tools", "calc", "1+1", "2"),
        entry(3, "model", "llm", "2", "it is 2"),
        entry(4, "summarise", "sum", "it is 2", "2"),
    ]
    b = [entry(0, "model", "llm", "2", "it is two"), entry(1, "summarise", "sum", "it is two", "two")]
    original, replay = _Summary("A", {}), _Summary("B", {"forked_from": {"trace_id": "A", "seq": 3}})
    fork = compare.fork_of(original, replay)
    assert fork == ("a", 3)
    aligned = compare.align_traces(a, b, fork)
    assert aligned["op"].tolist() == ["before the fork"] * 3 + ["changed", "changed"]
    assert aligned["a_seq"].tolist() == [0, 1, 2, 3, 4]
    assert aligned["b_seq"].tolist()[3:] == [0, 1]
    assert compare.alignment_counts(aligned)["before the fork"] == 3
    assert aligned["token_delta"].isna().all()  # no usage reported, and none before the fork
    a_used = [{**r, "total_tokens": 10} for r in a]
    assert compare.align_traces(a_used, b, fork)["token_delta"].tolist()[:4] == [pd.NA] * 3 + [-10]
    # the other way round: the replay on the left
    swapped = compare.align_traces(b, a, compare.fork_of(replay, original))
    assert swapped["op"].tolist() == ["before the fork"] * 3 + ["changed", "changed"]
    assert swapped["b_seq"].tolist() == [0, 1, 2, 3, 4] and swapped["a_seq"].tolist()[3:] == [0, 1]
    # unrelated traces, or a malformed record, are not a fork
    assert compare.fork_of(original, _Summary("C", {"forked_from": {"trace_id": "X", "seq": 3}})) is None
    assert compare.fork_of(original, _Summary("C", {"forked_from": {"trace_id": "A", "seq": "3"}})) is None
    assert compare.fork_of(original, _Summary("C", {"forked_from": "A"})) is None


def test_a_replay_from_a_later_entry_of_a_node_is_aligned_from_the_nodes_first_entry() -> None:
    # the tools node wrote two entries from one checkpoint; a replay from the second reruns
    # the node whole, so both of A's tool calls are paired with B's, none is "before"
    a = [
        {**entry(0, "model", "llm", "q", "call two tools"), "checkpoint_id": "c1"},
        {**entry(1, "tools", "calc", "1+1", "2"), "checkpoint_id": "c2"},
        {**entry(2, "tools", "search", "x", "found"), "checkpoint_id": "c2"},
        {**entry(3, "model", "llm", "2", "done"), "checkpoint_id": "c3"},
    ]
    b = [entry(0, "tools", "calc", "1+1", "2"), entry(1, "tools", "search", "x", "found again")]
    aligned = compare.align_traces(a, b, ("a", 2))
    assert aligned["op"].tolist() == ["before the fork", "same", "changed", "only A"]
    assert aligned["b_seq"].tolist()[1:3] == [0, 1]
