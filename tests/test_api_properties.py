"""Property tests over the HTTP API's query parameters: any values, any combination, over real
HTTP on a real database. Only an answer or a named error (403, 422), never a server error,
never the database's words, and the stored traces unchanged (a delete removes exactly what
the same filter counted)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from api_support import assert_clean, live_server
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

FILTERS = (
    "user_id",
    "provider_id",
    "thread_id",
    "name",
    "status",
    "since",
    "until",
    "node",
    "text",
    "contains",
    "trace_id",
)
PAGING = ("limit", "offset", "cursor")
AWKWARD = [
    "",
    " ",
    "0",
    "-1",
    "1e400",
    "9" * 5000,
    "0001-01-01",
    "9999-12-31T23:59:59+14:00",
    "2026-02-30",
    "running",
    "failed",
    '{"node": "a"}',
    "{}",
    "[]",
    '{"a": {"b": [1, {"c": null}]}}',
    "[" * 1200 + "]" * 1200,
    '{"":' * 1100 + "1" + "}" * 1100,
    "-zzzz",
    '"unterminated',
    "a OR -b",
    "\x00",
    "a\x00b",
    "é€😀",
    "x" * 1001,
    "%",
    "_",
    "\\",
    "' OR 1=1 --",
    str(uuid.UUID(int=0)),
]
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
values = st.one_of(
    st.sampled_from(AWKWARD), text, st.integers(min_value=-(10**20), max_value=10**20).map(str)
)
params = st.dictionaries(
    st.sampled_from(FILTERS + PAGING + ("usr", "all", "statuss")),
    st.lists(values, min_size=1, max_size=3),
    max_size=5,
)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def user(db) -> str:
    return f"prop-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def server(db_url, db, user):
    key = db.create_api_key(user)[1]
    with live_server(db_url) as srv, srv.client(key) as client:
        yield srv, client


def _stored(db, user) -> list[tuple]:
    """Every trace of the user with its entries: what must not change."""
    out = []
    for s in db.get_user_traces(user, limit=1000):
        t = db.load_trace_by_id(s.id)
        out.append((t.id, t.name, t.status, t.updated_at, tuple(map(repr, t.trace_data))))
    return sorted(out)


def _make_traces(db, user) -> None:
    for i, status in enumerate(("running", "completed", "failed")):
        db.save_trace(
            user, f"p{i}", f"thread-{i}", [{"node": "a", "text": f"word{i}"}, i, "two"], name=f"n{i}"
        )
        if status != "completed":
            tid = db.get_user_traces(user, limit=1)[0].id
            db.set_status(tid, status)


def _query(p: dict) -> list[tuple[str, str]]:
    query = [(k, v) for k, vs in p.items() for v in vs]
    # within what a URL can carry (httpx refuses longer ones before sending)
    assume(len(urlencode(query)) < 60_000)
    return query


@pytest.mark.parametrize("path", ["/automation/traces", "/automation/traces/count"])
def test_reads_answer_or_name_the_error_and_change_nothing(server, db, user, path):
    _make_traces(db, user)
    before = _stored(db, user)
    _, client = server

    @given(p=params)
    @SETTINGS
    def check(p):
        response = client.get(path, params=_query(p))
        assert response.status_code in (200, 403, 422), (p, response.status_code, response.text[:300])
        assert_clean(response)

    check()
    assert _stored(db, user) == before


def test_a_delete_removes_exactly_what_its_filter_counts(server, db, user):
    _, client = server

    @given(p=params)
    @SETTINGS
    def check(p):
        if not db.get_user_traces(user, limit=1):
            _make_traces(db, user)
        query = _query(p)
        counted = client.get("/automation/traces/count", params=[q for q in query if q[0] != "all"])
        total = len(_stored(db, user))
        response = client.delete("/automation/traces", params=query)
        assert response.status_code in (200, 403, 422), (p, response.status_code, response.text[:300])
        assert_clean(response)
        if response.status_code == 200:
            deleted = response.json()["deleted"]
            assert counted.status_code == 200 and deleted == counted.json()["count"]
            assert len(_stored(db, user)) == total - deleted
        else:
            assert len(_stored(db, user)) == total

    check()
