"""Retention policies: parsing, and the API server pruning on a schedule (real server, real
database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from api_support import live_server

from tracedb import InvalidTraceData
from tracedb.retention import RetentionPolicy, parse_age


def test_a_policy_from_its_text():
    assert parse_age("30d") == timedelta(days=30) and parse_age("1.5h") == timedelta(minutes=90)
    policy = RetentionPolicy.parse("30d keep=100 status=completed,failed every=6h")
    assert policy == RetentionPolicy(timedelta(days=30), 100, ("completed", "failed"), timedelta(hours=6))
    assert "keeping each user's 100 most recent" in policy.describe()
    for bad in ("", "soon", "30d keep=x", "30d status=done", "30d every=0s", "30d colour=red", "-3d"):
        with pytest.raises(InvalidTraceData):
            RetentionPolicy.parse(bad)


def test_the_api_server_prunes_on_a_schedule(db, db_url, ids, monkeypatch):
    user = ids("ret")
    old = db.save_trace(user, None, ids("th"), [{"node": "a"}])
    new = db.save_trace(user, None, ids("th"), [{"node": "a"}])
    long_ago = datetime.now(UTC) - timedelta(days=40)
    db.set_trace_times([(old, long_ago, long_ago)])
    monkeypatch.setenv("TRACEDB_RETENTION", "30d every=1s")
    with live_server(db_url):
        deadline = time.monotonic() + 15
        while db.get_summary(old) is not None:
            assert time.monotonic() < deadline, "the server did not prune the old trace"
            time.sleep(0.2)
    assert db.get_summary(new) is not None
