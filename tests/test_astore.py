"""AsyncAutomationTraceDB on a real PostgreSQL: same behaviour as the sync store."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tracedb import AsyncAutomationTraceDB, InvalidTraceData, TraceFilter, TraceNotFound


def run(coro):
    return asyncio.run(coro)


def test_seven_methods(db_url, entries, ids):
    async def scenario() -> None:
        async with AsyncAutomationTraceDB(db_url) as db:
            user, thread = ids("u"), ids("th")
            tid = await db.save_trace(user, "p", thread, entries(2), name="a")
            trace = await db.load_trace_by_id(tid)
            assert trace.trace_data == entries(2) and trace.name == "a"
            assert await db.load_trace_by_id("junk") is None
            assert (await db.load_trace_by_thread(thread)).id == tid
            assert [s.id for s in await db.get_user_traces(user)] == [tid]
            assert await db.update_trace(tid, name="b", trace_data=entries(3))
            assert (await db.load_trace_by_id(tid)).entry_count == 3
            up = await db.upsert_trace_by_thread(user, "p", thread, entries(5))
            assert up == tid and (await db.load_trace_by_id(tid)).trace_data == entries(5)
            assert await db.delete_trace(tid) and not await db.delete_trace(tid)

    run(scenario())


def test_rest_of_the_api(db_url, entries, ids):
    async def scenario() -> None:
        db = await AsyncAutomationTraceDB.open(db_url)
        try:
            user = ids("u")
            r = await db.append_entries(entries(2), thread_id=ids("th"), user_id=user, status="running")
            await db.append_entries(entries(1, start=2), trace_id=r.trace_id)
            assert (await db.get_summary(r.trace_id)).entry_count == 3
            assert [e["seq"] for e in await db.get_entries(r.trace_id)] == [0, 1, 2]
            assert await db.set_status(r.trace_id, "completed")
            assert await db.rename_trace(r.trace_id, "named")
            assert await db.update_metadata(r.trace_id, {"k": 1})
            page = await db.list_traces(TraceFilter(user_id=user, name="nam"))
            assert [s.id for s in page.items] == [r.trace_id]
            assert await db.count_traces(TraceFilter(user_id=user)) == 1
            assert await db.ping()
            with pytest.raises(TraceNotFound):
                await db.append_entries([{}], trace_id=str(uuid.uuid4()))
            with pytest.raises(InvalidTraceData):
                await db.save_trace(user, None, "t", "not a list")  # type: ignore[arg-type]
            with pytest.raises(InvalidTraceData):
                await db.delete_traces(TraceFilter())
            assert await db.delete_traces(TraceFilter(user_id=user)) == 1
        finally:
            await db.close()

    run(scenario())


def test_concurrent_async_writers_one_thread(db_url):
    async def scenario() -> None:
        async with AsyncAutomationTraceDB(db_url, max_size=8) as db:
            thread = f"arace-{uuid.uuid4().hex[:8]}"

            async def writer(w: int) -> None:
                for i in range(20):
                    await db.append_entries([{"w": w, "i": i}], thread_id=thread, user_id="a")

            await asyncio.gather(*(writer(w) for w in range(8)))
            trace = await db.load_trace_by_thread(thread)
            assert trace.entry_count == 160
            for w in range(8):
                assert [e["i"] for e in trace.trace_data if e["w"] == w] == list(range(20))

    run(scenario())
