"""Export formats, page by page."""

from __future__ import annotations

import csv
import io
import json

from tracedb import TraceFilter
from tracedb.export import write_traces


def test_json_jsonl_csv(db, ids):
    user = ids("exp")
    made = [
        db.save_trace(
            user, None, ids("th"), [{"node": "a", "i": i}, {"node": "b", "x": "<script>"}], name=f"t{i}"
        )
        for i in range(5)
    ]
    flt = TraceFilter(user_id=user)
    buf = io.StringIO()
    seen: list[int] = []
    assert write_traces(db, flt, "json", buf, progress=seen.append) == 5
    docs = json.loads(buf.getvalue())
    assert {d["id"] for d in docs} == set(made) and seen == [1, 2, 3, 4, 5]
    assert docs[0]["trace_data"][1]["x"] == "<script>"
    buf = io.StringIO()
    write_traces(db, flt, "jsonl", buf)
    assert len(buf.getvalue().splitlines()) == 5
    buf = io.StringIO()
    write_traces(db, flt, "csv", buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == 10 and rows[0]["node"] in ("a", "b")
    assert json.loads(rows[0]["data"])["node"] in ("a", "b")


def test_empty_json_is_valid(db, ids):
    buf = io.StringIO()
    assert write_traces(db, TraceFilter(user_id=ids("none")), "json", buf) == 0
    assert json.loads(buf.getvalue()) == []
