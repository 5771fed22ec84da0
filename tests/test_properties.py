"""Property-based tests: entries made of any JSON-like values and of the Python values a
recorder meets. Converting never fails; the recorder stores every entry (as it is, or as
an error entry naming why) and never raises; the store answers a stored result or a named
error and leaves what it holds unchanged when it refuses."""

from __future__ import annotations

import dataclasses
import enum
import json
import operator
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langgraph.graph import START, StateGraph

from tracedb.errors import EntryTooLarge, TraceDBError
from tracedb.jsonsafe import to_jsonable
from tracedb.recorder import TraceRecorder

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class WithLock:
    lock: Any = dataclasses.field(default_factory=threading.Lock)
    n: int = 1


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


class BadEq:
    """Compares with nothing (as a numpy array does)."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("ambiguous")

    __hash__ = object.__hash__


class Shifty(dict):
    """A mapping whose items cannot be read."""

    def items(self):  # type: ignore[override]
        raise RuntimeError("changed size during iteration")


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["\x00", "a\ud800b", "\udfff", "節" * 50, "<script>x</script>"])
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
python_values = st.recursive(
    scalars
    | st.datetimes()
    | st.datetimes(timezones=st.just(UTC))
    | st.dates()
    | st.timedeltas()
    | st.decimals()
    | st.uuids()
    | st.binary(max_size=20)
    | st.just(Color.RED)
    | st.just(PurePosixPath("/tmp/x"))
    | st.sampled_from([5000, 400, 20]).map(lambda e: 10**e)  # past the 4,300 digits written as text
    | st.builds(WithLock)
    | st.builds(BadRepr)
    | st.builds(BadEq)
    | st.builds(Shifty)
    | st.builds(object),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.integers() | st.tuples(st.integers()), inner, max_size=3)
        | st.builds(lambda items: (x for x in items), st.lists(inner, max_size=3))
    ),
    max_leaves=12,
)
entry_keys = st.sampled_from(
    [
        "node",
        "kind",
        "name",
        "status",
        "started_at",
        "ended_at",
        "duration_ms",
        "error",
        "usage",
        "model",
        "output",
    ]
) | st.text(max_size=10)
json_entries = st.lists(st.dictionaries(entry_keys, json_like, max_size=6), min_size=1, max_size=5)
python_entries = st.lists(st.dictionaries(entry_keys, python_values, max_size=6), min_size=1, max_size=5)


@SETTINGS
@given(python_values)
def test_to_jsonable_never_fails(value):
    try:
        out = to_jsonable(value)
    except EntryTooLarge:
        return  # nested past the depth limit: a named error
    text = json.dumps(out, allow_nan=False, ensure_ascii=False)
    assert not any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in text)


class State(TypedDict, total=False):
    payload: Any
    automation_trace: Annotated[list, operator.add]


def _emitting_graph():
    g = StateGraph(State)
    g.add_node("emit", lambda s: {"automation_trace": list(s["payload"])})
    g.add_edge(START, "emit")
    return g.compile()


GRAPH = _emitting_graph()


# values that once escaped the conversion rules, tried every time
AWKWARD = [
    {"duration_ms": 10**400, "started_at": 10**400, "ended_at": -(10**400)},
    {"error": BadEq(), "status": BadEq()},
    {"v": 10**5000, "held": WithLock(), "obj": BadRepr(), "m": Shifty(a=1)},
    {"node": "節" * 3000, "name": "\x00" * 10, "usage": {"input_tokens": 10**400}},
]


@SETTINGS
@given(st.one_of(json_entries, python_entries))
@example(AWKWARD)
def test_the_recorder_stores_every_entry_and_never_raises(db, entries):
    rec = TraceRecorder(db, "props", flush_timeout=30)
    config = {"configurable": {"thread_id": f"props-{uuid.uuid4().hex[:10]}"}}
    list(rec.stream(GRAPH, {"payload": entries}, config))
    report = rec.close(30)
    assert report.pending == 0 and report.dropped == 0, report
    assert report.written + report.replaced == len(entries)
    stored = db.load_trace_by_id(report.trace_id)
    assert stored.entry_count == len(entries) and stored.status == "completed"


@SETTINGS
@given(st.one_of(json_entries, python_entries))
@example(AWKWARD)
def test_the_store_answers_a_result_or_a_named_error_and_keeps_what_it_holds(db, entries):
    base = db.append_entries(
        [{"node": "first", "i": 0}], thread_id=f"props-{uuid.uuid4().hex[:10]}", user_id="p"
    )
    before = db.load_trace_by_id(base.trace_id).trace_data
    try:
        result = db.append_entries(entries, trace_id=base.trace_id)
    except TraceDBError:
        assert db.load_trace_by_id(base.trace_id).trace_data == before
        return
    after = db.load_trace_by_id(base.trace_id).trace_data
    assert result.written == len(entries) and after[:1] == before and len(after) == 1 + len(entries)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        date(2026, 1, 1),
        timedelta(seconds=1.5),
        Decimal("1.10"),
    ],
)
def test_known_values_keep_their_documented_form(value):
    assert json.dumps(to_jsonable({"v": value}))
