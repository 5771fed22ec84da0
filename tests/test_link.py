"""The recorder's own connection: set up as the store's are, named errors only, quick to
find a server again."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from psycopg.conninfo import make_conninfo

from tracedb import AutomationTraceDB
from tracedb.errors import DatabaseUnavailable, InvalidTraceData
from tracedb.link import APPLICATION_NAME, StoreLink


@pytest.mark.parametrize("prepare", [True, False])
def test_the_connection_follows_the_stores_settings(db_url, prepare):
    with AutomationTraceDB(db_url, prepare=prepare) as db:
        link = StoreLink(db)
        result = link.call(
            "append_entries", [{"node": "a"}], thread_id=f"l-{uuid.uuid4().hex[:8]}", user_id="u"
        )
        assert link.call("touch", result.trace_id) is False  # not running
        conn = link._conn
        assert conn is not None and (conn.prepare_threshold is None) == (not prepare)
        name = conn.execute("SELECT current_setting('application_name') AS n").fetchone()["n"]
        assert name == APPLICATION_NAME
        with pytest.raises(InvalidTraceData):
            link.call("append_entries", "not a list", trace_id=result.trace_id)
        link.close()
        assert link._conn is None
        assert db.get_summary(result.trace_id).entry_count == 1


def test_a_server_that_is_not_there_is_an_outage_at_once(db_url):
    with AutomationTraceDB(db_url) as db:
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()  # nothing listens there
        link = StoreLink(db)
        link.url = make_conninfo(db_url, host="127.0.0.1", port=port)
        t0 = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            link.call("touch", str(uuid.uuid4()))
        assert time.monotonic() - t0 < 1.0
