"""Any input to the store's Python API gives a result or a named error (TraceDBError), never
another exception, and changes nothing stored when refused. Property-based, on a real
PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracedb import TraceDBError, TraceFilter

# Anything a caller might pass: scalars of every kind, odd text, containers, objects.
text = st.text(max_size=30) | st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "'; DROP TABLE x; --", "x" * 1200]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
    | st.binary(max_size=8)
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.just(object())
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)

filters = st.builds(
    TraceFilter,
    user_id=anything,
    thread_id=anything,
    name=anything,
    status=anything | st.sampled_from(["running", "abandoned", ("failed", "completed")]),
    since=anything | st.datetimes(timezones=st.just(UTC)),
    until=anything | st.datetimes(timezones=st.just(UTC)),
    node=anything,
    text=anything | st.sampled_from(["-zzz", "a or -b", '"unterminated', "a <-> b", "!(", "&|!"]),
    contains=anything,
    trace_ids=anything,
)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def known(db) -> dict[str, Any]:
    """A few stored traces that no refused call may change."""
    tid = db.save_trace(
        "keep-user", None, f"keep-{uuid.uuid4().hex[:6]}", [{"node": "a", "output": "kept"}], name="kept"
    )
    return {"id": tid, "before": db.load_trace_by_id(tid)}


@pytest.fixture(scope="module")
def scratch(db) -> str:
    """A trace the calls may legitimately change: entries may be any JSON values, so
    ``update_trace(trace_data=[{...}, b])`` and ``append_entries(a)`` store most of what
    hypothesis makes."""
    return db.save_trace("scratch-user", None, f"scratch-{uuid.uuid4().hex[:6]}", [{"node": "a"}])


def unchanged(db, known: dict[str, Any]) -> None:
    assert db.load_trace_by_id(known["id"]) == known["before"]


@SETTINGS
@given(flt=filters)
def test_any_filter_lists_counts_or_is_refused_by_name(db, known, flt):
    for call in (
        lambda: db.list_traces(flt, limit=5),
        lambda: db.count_traces(flt),
        lambda: db.count_traces_bounded(flt),
        lambda: db.delete_traces(flt) if flt.user_id == "nobody-here" else None,
    ):
        try:
            call()
        except TraceDBError:
            pass
    unchanged(db, known)


@SETTINGS
@given(a=anything, b=anything, c=anything)
def test_any_argument_to_any_method_is_a_result_or_a_named_error(db, known, scratch, a, b, c):
    calls = [
        lambda: db.load_trace_by_id(a),
        lambda: db.load_trace_by_thread(a),
        lambda: db.get_user_traces(a, limit=b),
        lambda: db.get_summary(a),
        lambda: db.get_entries(known["id"], after_seq=a, limit=b),
        lambda: db.entry_columns(known["id"], after_seq=a),
        lambda: db.entries_by_seq(known["id"], a),
        lambda: db.get_entry(known["id"], a),
        lambda: db.list_traces(limit=a, cursor=b),
        lambda: db.count_traces_bounded(budget_ms=a),
        lambda: db.rename_trace(a, b),
        lambda: db.set_status(a, b),
        lambda: db.update_metadata(a, b),
        lambda: db.update_trace(scratch, name=a, trace_data=[{"x": 1}, b]),
        lambda: db.save_trace(a, b, c, [{"x": 1}]),
        lambda: db.upsert_trace_by_thread("u", None, a, b),
        lambda: db.append_entries(a, trace_id=scratch),
        lambda: db.append_entries([{"x": a}], trace_id=scratch, status=b) if b is not None else None,
        lambda: db.append_entries([], trace_id=a, batch_id=b),
        lambda: db.append_entries([], thread_id=a, user_id=b, checkpoint_ids=c),
        lambda: db.append_entries([], trace_id=scratch, dropped=a, running_start=b, running_end=c),
        lambda: db.touch(a),
        lambda: db.overview(a, b),
        lambda: db.overview(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC), user_id=a, top_users=b),
        lambda: db.filter_choices(limit=a),
        lambda: db.set_trace_times(a),
        lambda: db.prune(a, keep_last=b, status=c, dry_run=True),
        lambda: db.index_pending(a),
        lambda: db.as_user(a),
    ]
    for call in calls:
        try:
            call()
        except TraceDBError:
            pass
    # refused or harmless: the kept trace is as it was (the calls that write target scratch)
    unchanged(db, known)


def test_a_thread_id_no_trace_can_have_finds_nothing(db) -> None:
    """Look-ups by a thread id that could never be stored (a lone surrogate, NUL) answer
    None, as for any unknown thread, instead of failing while the id is sent."""
    for thread in ("\ud800", "a\udfffb", "x\x00y", ""):
        assert db.load_trace_by_thread(thread) is None
