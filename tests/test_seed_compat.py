"""What code written for the seed's AutomationTraceDB relies on: its shapes of trace_data,
its rows (``to_dict()``, ``row["trace_data"]``), its async class under its own name, and its
listing by provider with an offset. Both store classes, on a real database."""

from __future__ import annotations

import asyncio
import json

import pytest
from store_support import STORES

from tracedb import InvalidTraceData, TraceFilter
from tracedb.models import SEED_FIELDS


@pytest.fixture(scope="module", params=sorted(STORES))
def db(db_url, request):
    store = STORES[request.param](db_url)
    try:
        yield store
    finally:
        store.close()


ANY_JSON = [{"node": "plan", "started_at": "2026-01-01T00:00:00Z"}, 3, "text", None, [1, {"b": 2}], True, 2.5]


def test_entries_of_any_json_value_are_stored_as_they_are(db, ids):
    user, thread = ids("u"), ids("th")
    tid = db.save_trace(user, None, thread, ANY_JSON)
    trace = db.load_trace_by_id(tid)
    assert trace.trace_data == ANY_JSON
    assert trace.entry_count == len(ANY_JSON) and trace.nodes == ["plan"]
    # searchable like any entry
    assert db.count_traces(TraceFilter(user_id=user, text="text")) == 1
    assert db.count_traces(TraceFilter(user_id=user, contains={"b": 2})) == 0  # inside a list entry
    assert db.count_traces(TraceFilter(user_id=user, contains={"node": "plan"})) == 1


def test_a_dict_holding_the_list_under_automation_trace(db, ids):
    user, thread = ids("u"), ids("th")
    first = [{"node": "a"}, {"node": "b"}]
    tid = db.upsert_trace_by_thread(user, None, thread, {"automation_trace": first})
    assert db.load_trace_by_thread(thread).trace_data == first
    tid2 = db.save_trace(user, None, ids("th"), {"automation_trace": [1, 2]})
    assert db.load_trace_by_id(tid2).trace_data == [1, 2]
    assert db.update_trace(tid2, trace_data={"automation_trace": ["x"]})
    assert db.load_trace_by_id(tid2).trace_data == ["x"]
    r = db.append_entries({"automation_trace": [{"node": "c"}]}, trace_id=tid)
    assert r.entry_count == 3
    with pytest.raises(InvalidTraceData, match="also holds"):
        db.save_trace(user, None, ids("th"), {"automation_trace": [], "messages": ["hi"]})


def test_rows_are_the_seeds_dicts(db, ids):
    user, thread = ids("u"), ids("th")
    tid = db.save_trace(user, "prov", thread, [{"node": "a"}], name="n")
    trace = db.load_trace_by_id(tid)
    row = trace.to_dict()
    assert tuple(row)[: len(SEED_FIELDS)] == SEED_FIELDS
    assert row["id"] == tid and row["provider_id"] == "prov" and row["trace_data"] == [{"node": "a"}]
    assert isinstance(row["created_at"], str)  # ISO 8601, as the seed returned it
    json.dumps(row)  # JSON-ready as it is
    # subscriptable like the seed's dict rows
    assert trace["id"] == tid and trace["trace_data"][0]["node"] == "a"
    assert trace["created_at"] == row["created_at"] and trace.get("nope", 7) == 7
    assert "trace_data" in trace and dict(trace) == row
    with pytest.raises(KeyError):
        trace["nope"]
    summary = db.get_user_traces(user)[0]
    assert summary["id"] == tid and summary["entry_count"] == 1 and "trace_data" not in summary
    # the row is a copy: changing it leaves the trace as it was
    trace["trace_data"].append("x")
    assert trace.trace_data == [{"node": "a"}]


def test_user_traces_by_provider_and_listing_with_an_offset(db, ids):
    user = ids("u")
    a = db.save_trace(user, "p1", ids("th"), [])
    b = db.save_trace(user, "p2", ids("th"), [])
    c = db.save_trace(user, "p1", ids("th"), [])
    assert [s.id for s in db.get_user_traces(user, provider_id="p1")] == [c, a]
    assert [s.id for s in db.get_user_traces(user, "p2", limit=5, offset=0)] == [b]
    assert db.count_traces(TraceFilter(user_id=user, provider_id="p1")) == 2
    everything = [s.id for s in db.list_traces(TraceFilter(user_id=user)).items]
    assert everything == [c, b, a]
    page = db.list_traces(TraceFilter(user_id=user), limit=1, offset=1)
    assert [s.id for s in page.items] == [b] and page.next_cursor
    assert [s.id for s in db.list_traces(TraceFilter(user_id=user), cursor=page.next_cursor).items] == [a]
    with pytest.raises(InvalidTraceData, match="offset"):
        db.list_traces(TraceFilter(user_id=user), offset=-1)


def test_patch_is_one_transaction(db, ids):
    user = ids("u")
    tid = db.save_trace(user, None, ids("th"), [{"node": "a"}], name="before")
    with pytest.raises(InvalidTraceData):
        db.patch_trace(tid, name="after", trace_data=[{"node": "b"}], status="no-such-status")
    with pytest.raises(InvalidTraceData):
        db.patch_trace(tid, name="after", metadata="not a dict")
    trace = db.load_trace_by_id(tid)
    assert (trace.name, trace.trace_data, trace.status) == ("before", [{"node": "a"}], "completed")
    got = db.patch_trace(tid, name="after", trace_data=[1, 2], status="failed", metadata={"k": 1})
    assert (got.name, got.status, got.entry_count, got.metadata) == ("after", "failed", 2, {"k": 1})
    assert db.patch_trace("00000000-0000-0000-0000-000000000000", name="x") is None
    assert db.as_user(ids("other")).patch_trace(tid, name="stolen") is None
    assert db.get_summary(tid).name == "after"


def test_the_seeds_async_class_under_its_name_opens_on_first_use(db_url, ids, monkeypatch):
    from tracedb.aio import AsyncAutomationTraceDB, AutomationTraceDB

    assert AutomationTraceDB is AsyncAutomationTraceDB
    monkeypatch.setenv("TRACEDB_URL", db_url)

    async def seed_code() -> tuple[str, list]:
        trace_db = AutomationTraceDB()  # as the seed made it: no URL, never opened
        try:
            results = await asyncio.gather(
                *(trace_db.save_trace(ids("u"), "p", ids("th"), [{"i": i}]) for i in range(4))
            )
            loaded = await trace_db.load_trace_by_id(results[0])
            return loaded["id"], loaded["trace_data"]
        finally:
            await trace_db.close()

    tid, data = asyncio.run(seed_code())
    assert data == [{"i": 0}] and tid
