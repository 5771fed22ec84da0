"""The conversion rules and limits, without a database."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracedb.errors import EntryTooLarge, InvalidTraceData
from tracedb.jsonsafe import (
    check_trace_data,
    dumps,
    is_error_entry,
    plain_text,
    prepare_entries,
    to_jsonable,
)


class Color(enum.Enum):
    RED = "red"


def test_scalars_and_containers():
    assert to_jsonable({"a": [1, 2.5, True, None]}) == {"a": [1, 2.5, True, None]}
    assert to_jsonable((1, 2)) == [1, 2]
    assert to_jsonable(frozenset({"b", "a"})) == ["a", "b"]
    assert to_jsonable(x for x in range(3)) == [0, 1, 2]
    assert to_jsonable(Color.RED) == "red"
    assert to_jsonable(timedelta(seconds=90)) == 90.0
    assert to_jsonable(date(2026, 1, 2)) == "2026-01-02"


def test_non_finite_floats_become_strings():
    assert [to_jsonable(v) for v in (math.nan, math.inf, -math.inf)] == ["NaN", "Infinity", "-Infinity"]


def test_bad_characters_replaced():
    assert to_jsonable({"k\x00": "v\udc80"}) == {"k\ufffd": "v\ufffd"}


def test_cycles_hit_the_depth_limit():
    a: list = []
    a.append(a)
    with pytest.raises(EntryTooLarge, match="max_depth"):
        prepare_entries([{"loop": a}])


def test_depth_limit_is_configurable():
    nested = {"a": {"b": {"c": 1}}}
    prepare_entries([nested], max_depth=3)
    with pytest.raises(EntryTooLarge, match="2 levels"):
        prepare_entries([nested], max_depth=2)


def test_prepare_entries_wraps_times_and_errors():
    text = prepare_entries(
        [
            {"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:01.5Z", "status": "ok"},
            {"started_at": 1767225600, "duration_ms": "12", "error": "boom"},
            {"started_at": datetime(2026, 1, 1, tzinfo=UTC), "started": "junk", "ended_at": "not a time"},
            {"started_at": 10**20, "duration_ms": float("nan")},
        ]
    )
    rows = json.loads(text.payload())
    assert rows[0]["ms"] == 1500.0 and rows[0]["e"] is False
    assert rows[0]["a"] == "2026-01-01T00:00:00+00:00"
    assert rows[1]["a"] == "2026-01-01T00:00:00+00:00" and rows[1]["ms"] == 12.0 and rows[1]["e"] is True
    assert rows[2]["b"] is None
    assert rows[3]["a"] is None and rows[3]["ms"] is None


def test_errors_name_the_position():
    with pytest.raises(EntryTooLarge, match=r"trace_data\[7\]"):
        prepare_entries([{}, "x" * 100], start_index=6, max_entry_bytes=50)
    with pytest.raises(EntryTooLarge, match=r"trace_data\[0\].*max_entry_bytes"):
        prepare_entries([{"x": "y" * 100}], max_entry_bytes=50)


def test_trace_shapes_the_seed_stored():
    entries = [{"node": "a"}, 3, "text", None, [1, {"b": 2}], True]
    assert check_trace_data(entries) is entries
    assert check_trace_data({"automation_trace": entries}) is entries
    assert check_trace_data({"automation_trace": []}) == []
    rows = json.loads(prepare_entries(entries).payload())
    assert [r["d"] for r in rows] == entries
    assert all(r.get("a") is None and r["e"] is False and r["h"] for r in rows[1:])


@pytest.mark.parametrize(
    "bad,message",
    [
        (None, "got NoneType"),
        ("text", "got str"),
        ({"node": "x"}, "a dict with the keys"),
        ({"automation_trace": [], "messages": []}, "also holds \\['messages'\\]"),
        ({"automation_trace": "x"}, "must be a list, got str"),
        (({"a": 1},), "got tuple"),
    ],
)
def test_other_shapes_are_named_errors(bad, message):
    with pytest.raises(InvalidTraceData, match=message):
        check_trace_data(bad)


@pytest.mark.parametrize(
    "entry,expected",
    [
        ({"status": "error"}, True),
        ({"status": "FAILED"}, True),
        ({"error": "x"}, True),
        ({"error": None}, False),
        ({"error": ""}, False),
        ({"status": "ok"}, False),
        ({}, False),
    ],
)
def test_is_error_entry(entry, expected):
    assert is_error_entry(entry) is expected


# -- plain entries take the C encoder's path; the text must be what the conversion writes --

_keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.booleans(), st.none(), st.floats(-2, 2))
_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),  # lone surrogates and NUL among them
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(entry=st.dictionaries(_keys, _values, max_size=6), depth=st.integers(1, 8))
def test_the_plain_path_writes_what_the_conversion_writes(entry, depth):
    text = plain_text(entry, depth)
    try:
        expected = dumps(to_jsonable(entry, max_depth=depth))
    except EntryTooLarge:
        assert text is None
        return
    assert text is None or text == expected


def test_the_plain_path_is_taken_for_plain_entries_only():
    assert plain_text({"node": "a", "out": {"x": [1, 2.5, None, True]}}) == (
        '{"node":"a","out":{"x":[1,2.5,null,true]}}'
    )
    assert plain_text({True: 1, None: 2}) == dumps(to_jsonable({True: 1, None: 2})) == '{"true":1,"null":2}'
    for needs_conversion in (
        {"t": datetime(2026, 1, 1)},
        {"v": math.nan},
        {"s": "a\x00b"},
        {"s": "\udc80"},
        {"n": 10**5000},
        ["not", "a", "dict"],
    ):
        assert plain_text(needs_conversion) is None
    deep: dict = {}
    cur = deep
    for _ in range(70):
        cur["a"] = {}
        cur = cur["a"]
    assert plain_text(deep) is None
    with pytest.raises(EntryTooLarge):
        prepare_entries([deep])
