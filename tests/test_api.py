"""The HTTP API over real HTTP: httpx against a uvicorn server on a real database."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from api_support import assert_clean, live_server, scratch_database

from tracedb.api import create_app

LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def admin_key(db) -> str:
    return db.create_api_key(f"admin-{uuid.uuid4().hex[:6]}", admin=True, label="tests")[1]


@pytest.fixture(scope="module")
def server(db_url, admin_key):
    # A key exists before the server starts, so every request needs one.
    with live_server(db_url, max_body_bytes=LIMIT) as srv:
        yield srv


@pytest.fixture()
def pair(db, server, ids):
    """Two users with a key each, and a client for each."""
    ana, ben = ids("ana"), ids("ben")
    with server.client(db.create_api_key(ana)[1]) as a, server.client(db.create_api_key(ben)[1]) as b:
        yield ana, a, ben, b


def test_every_endpoint(pair, ids):
    ana, client, _, _ = pair
    thread = ids("th")
    r = client.post(
        "/automation/traces", json={"thread_id": thread, "trace_data": [{"node": "a"}], "name": "first"}
    )
    assert r.status_code == 201 and r.json()["success"] is True
    tid = r.json()["trace_id"]

    row = client.get(f"/automation/traces/{tid}").json()
    assert list(row)[:8] == [
        "id",
        "user_id",
        "provider_id",
        "thread_id",
        "name",
        "trace_data",
        "created_at",
        "updated_at",
    ]
    assert (row["id"], row["user_id"], row["trace_data"]) == (tid, ana, [{"node": "a"}])
    assert client.get(f"/automation/traces/thread/{thread}").json()["id"] == tid

    r = client.post(
        f"/automation/traces/{tid}/entries", json={"entries": [{"node": "b"}], "status": "running"}
    )
    assert r.json() == {
        "success": True,
        "trace_id": tid,
        "first_seq": 1,
        "entry_count": 2,
        "written": 1,
        "duplicate": False,
    }

    r = client.patch(
        f"/automation/traces/{tid}", json={"trace_id": tid, "name": "renamed", "status": "failed"}
    )
    assert r.status_code == 200 and r.json()["trace"]["name"] == "renamed"
    assert r.json()["trace"]["status"] == "failed"

    other = ids("th")
    r = client.put(
        f"/automation/traces/thread/{other}", json={"trace_data": {"automation_trace": [1, "two"]}}
    )
    upserted = r.json()["trace_id"]
    assert client.get(f"/automation/traces/{upserted}").json()["trace_data"] == [1, "two"]

    listing = client.get("/automation/traces", params={"user_id": ana, "limit": 1}).json()
    assert listing["success"] and listing["count"] == 1 and listing["traces"][0]["id"] == upserted
    assert "trace_data" not in listing["traces"][0]
    second = client.get("/automation/traces", params={"limit": 1, "cursor": listing["next_cursor"]}).json()
    assert [t["id"] for t in second["traces"]] == [tid] and second["next_cursor"] is None
    by_offset = client.get("/automation/traces", params={"limit": 1, "offset": 1}).json()
    assert [t["id"] for t in by_offset["traces"]] == [tid]
    filtered = client.get("/automation/traces", params={"status": ["failed", "running"], "node": "b"}).json()
    assert [t["id"] for t in filtered["traces"]] == [tid]
    assert client.get("/automation/traces", params={"contains": '{"node": "a"}'}).json()["count"] == 1
    assert client.get("/automation/traces/count", params={"text": "two"}).json() == {
        "success": True,
        "count": 1,
    }

    assert client.delete(f"/automation/traces/{tid}").json() == {"success": True, "message": "Trace deleted"}
    assert client.get(f"/automation/traces/{tid}").status_code == 404
    r = client.delete("/automation/traces", params={"thread_id": other})
    assert r.json() == {"success": True, "deleted": 1}
    assert client.get("/automation/traces/count").json()["count"] == 0
    assert client.get("/health").json() == {"ok": True}


def test_two_keys_cannot_see_each_other(pair, ids):
    ana, a, ben, b = pair
    thread = ids("th")
    tid = a.put(f"/automation/traces/thread/{thread}", json={"trace_data": [{"secret": "ana's"}]}).json()[
        "trace_id"
    ]

    for response in (
        b.get(f"/automation/traces/{tid}"),
        b.get(f"/automation/traces/thread/{thread}"),
        b.patch(f"/automation/traces/{tid}", json={"name": "stolen"}),
        b.post(f"/automation/traces/{tid}/entries", json={"entries": [{"x": 1}]}),
        b.delete(f"/automation/traces/{tid}"),
    ):
        assert response.status_code == 404, response.text
        assert_clean(response)
    for response in (
        b.get("/automation/traces", params={"user_id": ana}),
        b.get("/automation/traces/count", params={"user_id": ana}),
        b.delete("/automation/traces", params={"user_id": ana}),
        b.post("/automation/traces", json={"thread_id": thread, "user_id": ana}),
        b.put(f"/automation/traces/thread/{thread}", json={"trace_data": [], "user_id": ana}),
    ):
        assert response.status_code == 403, response.text
        assert_clean(response)
    # The same thread id for ben is ben's own trace; ana's is untouched.
    ben_tid = b.put(f"/automation/traces/thread/{thread}", json={"trace_data": [{"b": 1}]}).json()["trace_id"]
    assert ben_tid != tid
    assert b.get("/automation/traces", params={"text": "ana"}).json()["count"] == 0
    assert b.get("/automation/traces/count").json()["count"] == 1
    assert b.delete("/automation/traces", params={"all": "true"}).json()["deleted"] == 1
    assert a.get(f"/automation/traces/{tid}").json()["trace_data"] == [{"secret": "ana's"}]
    assert a.get("/automation/traces", params={"user_id": ana}).json()["count"] == 1


def test_an_admin_key_sees_every_user(pair, server, admin_key, ids):
    ana, a, ben, _ = pair
    tid = a.post("/automation/traces", json={"thread_id": ids("th")}).json()["trace_id"]
    with server.client(admin_key) as admin:
        assert admin.get(f"/automation/traces/{tid}").json()["user_id"] == ana
        assert [
            t["id"] for t in admin.get("/automation/traces", params={"user_id": ana}).json()["traces"]
        ] == [tid]
        made = admin.post("/automation/traces", json={"thread_id": ids("th"), "user_id": ben}).json()[
            "trace_id"
        ]
        assert admin.get(f"/automation/traces/{made}").json()["user_id"] == ben
        own = admin.post("/automation/traces", json={"thread_id": ids("th")}).json()["trace_id"]
        assert admin.get(f"/automation/traces/{own}").json()["user_id"].startswith("admin-")
        assert admin.delete(f"/automation/traces/{own}").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tdb_not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": "Bearer tdb_é€".encode()},
        {"Authorization": b"Bearer \xff\xfe"},
    ],
)
def test_401_for_a_missing_or_unknown_key(server, headers):
    with server.client() as c:
        for response in (
            c.get("/automation/traces", headers=headers),
            c.post("/automation/traces", json={"thread_id": "t"}, headers=headers),
            c.get("/automation/traces/thread/t", headers=headers),
        ):
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == "Bearer"
            assert_clean(response)


def test_a_revoked_key_is_refused(db, server, ids):
    key, secret = db.create_api_key(ids("u"))
    with server.client(secret) as c:
        assert c.get("/automation/traces").status_code == 200
        db.revoke_api_key(key.id)
        assert c.get("/automation/traces").status_code == 401


def test_404_for_unknown_traces(pair):
    _, c, _, _ = pair
    missing = str(uuid.uuid4())
    for response in (
        c.get(f"/automation/traces/{missing}"),
        c.get("/automation/traces/not-a-uuid"),
        c.get("/automation/traces/thread/no-such-thread"),
        c.patch(f"/automation/traces/{missing}", json={"name": "x"}),
        c.delete(f"/automation/traces/{missing}"),
        c.post(f"/automation/traces/{missing}/entries", json={"entries": []}),
        c.post("/automation/traces/not-a-uuid/entries", json={"entries": []}),
        c.get("/no/such/route"),
    ):
        assert response.status_code == 404, response.text
        assert_clean(response)


def _json(body: str) -> dict:
    return {"content": body.encode("utf-8", "surrogatepass"), "headers": {"content-type": "application/json"}}


MALFORMED = [
    ("post", "/automation/traces", _json("{broken")),
    ("post", "/automation/traces", _json("[" * 100_000 + "]" * 100_000)),
    ("post", "/automation/traces", _json('{"thread_id": "t", "trace_data": [' + "7" * 5000 + "]}")),
    (
        "post",
        "/automation/traces",
        _json('{"thread_id": "t", "trace_data": [' + '{"a":' * 5000 + "1" + "}" * 5000 + "]}"),
    ),
    (
        "post",
        "/automation/traces",
        _json('{"thread_id": "t", "trace_data": [' + '{"a":' * 100 + "1" + "}" * 100 + "]}"),
    ),
    ("post", "/automation/traces", _json('{"thread_id": "\\ud800"}')),
    ("post", "/automation/traces", _json('{"thread_id": "a\\u0000b"}')),
    ("post", "/automation/traces", _json('{"thread_id": ""}')),
    ("post", "/automation/traces", _json('{"thread_id": "t", "trace_dat": []}')),
    ("post", "/automation/traces", _json('{"thread_id": "t", "trace_data": "text"}')),
    (
        "post",
        "/automation/traces",
        _json('{"thread_id": "t", "trace_data": {"automation_trace": [], "x": 1}}'),
    ),
    ("post", "/automation/traces", _json('{"thread_id": "t", "name": "' + "n" * 5000 + '"}')),
    ("post", "/automation/traces", _json('{"thread_id": 12}')),
    ("post", "/automation/traces", _json("[]")),
    ("post", "/automation/traces", _json("null")),
    ("post", "/automation/traces", {}),
    ("get", "/automation/traces", {"params": {"contains": "[" * 5000 + "]" * 5000}}),
    ("get", "/automation/traces", {"params": {"contains": '{"":' * 3000 + "1" + "}" * 3000}}),
    ("get", "/automation/traces", {"params": {"contains": '{"a":' * 200 + "1" + "}" * 200}}),
    ("get", "/automation/traces", {"params": {"contains": "{x"}}),
    ("get", "/automation/traces", {"params": {"contains": "5"}}),
    ("get", "/automation/traces", {"params": {"since": "yesterday"}}),
    ("get", "/automation/traces", {"params": {"since": "0000-01-01"}}),
    ("get", "/automation/traces", {"params": {"until": "10000-01-01"}}),
    ("get", "/automation/traces", {"params": {"limit": "9" * 5000}}),
    ("get", "/automation/traces", {"params": {"limit": "0"}}),
    ("get", "/automation/traces", {"params": {"offset": "-1"}}),
    ("get", "/automation/traces", {"params": {"offset": str(10**18)}}),
    ("get", "/automation/traces", {"params": {"cursor": "not-a-cursor"}}),
    ("get", "/automation/traces", {"params": {"status": "nope"}}),
    ("get", "/automation/traces", {"params": {"thread_id": "x" * 5000}}),
    ("get", "/automation/traces", {"params": {"usr": "ana"}}),
    ("get", "/automation/traces/count", {"params": {"text": "t" * 5000}}),
    ("delete", "/automation/traces", {}),
    ("delete", "/automation/traces", {"params": {"all": "maybe"}}),
    ("delete", "/automation/traces", {"params": {"statuss": "failed", "all": "true"}}),
]


@pytest.mark.parametrize("method,path,kwargs", MALFORMED, ids=range(len(MALFORMED)))
def test_422_for_malformed_input_and_the_connection_stays_open(pair, method, path, kwargs):
    _, c, _, _ = pair
    response = c.request(method.upper(), path, **kwargs)
    assert response.status_code == 422, response.text[:300]
    assert_clean(response)
    assert response.headers.get("connection") != "close"
    assert c.get("/health").status_code == 200  # the same connection still serves


@pytest.mark.parametrize(
    "since", ["0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-01-01"]
)
def test_any_valid_time_is_an_answer(pair, since):
    _, c, _, _ = pair
    for path in ("/automation/traces", "/automation/traces/count"):
        response = c.get(path, params={"since": since, "until": since})
        assert response.status_code == 200, response.text
        assert_clean(response)


def test_413_above_the_body_limit(pair):
    _, c, _, _ = pair
    big = json.dumps({"thread_id": "t", "trace_data": ["x" * LIMIT]})
    response = c.post("/automation/traces", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"thread_id": "t", "trace_data": ["'
        for _ in range(LIMIT // 65536 + 2):
            yield b"y" * 65536
        yield b'"]}'

    response = c.post("/automation/traces", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert_clean(response)
    under = json.dumps({"thread_id": "t", "trace_data": ["z" * (LIMIT // 4)]})
    assert (
        c.post("/automation/traces", content=under, headers={"content-type": "application/json"}).status_code
        == 201
    )


@pytest.mark.parametrize(
    "headers,content",
    [
        ({"content-type": "text/plain"}, '{"thread_id": "t"}'),
        ({"content-type": "application/x-www-form-urlencoded"}, "thread_id=t"),
        ({"content-type": "multipart/form-data; boundary=x"}, "--x--"),
        ({}, '{"thread_id": "t"}'),
    ],
)
def test_415_for_a_body_that_is_not_json(pair, headers, content):
    ana, c, _, _ = pair
    response = c.post("/automation/traces", content=content.encode(), headers=headers)
    assert response.status_code == 415, response.text
    assert_clean(response)
    assert c.get("/automation/traces/count").json()["count"] == 0


def test_patch_changes_everything_or_nothing(pair, ids):
    _, c, _, _ = pair
    tid = c.post(
        "/automation/traces", json={"thread_id": ids("th"), "trace_data": [1], "name": "before"}
    ).json()["trace_id"]
    for bad in (
        {"name": "after", "status": "no-such-status"},
        {"name": "after", "trace_data": [2], "metadata": "not a dict"},
        {"name": "after", "trace_data": [{"x": "\u0000"}], "status": "bogus"},
        {"name": "after", "trace_id": str(uuid.uuid4())},
        {},
        {"name": None},
    ):
        response = c.patch(f"/automation/traces/{tid}", json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert_clean(response)
    row = c.get(f"/automation/traces/{tid}").json()
    assert (row["name"], row["trace_data"], row["status"], row["metadata"]) == (
        "before",
        [1],
        "completed",
        {},
    )
    r = c.patch(f"/automation/traces/{tid}", json={"trace_data": [3, 4], "metadata": {"k": "v"}})
    assert r.json()["trace"]["entry_count"] == 2 and r.json()["trace"]["metadata"] == {"k": "v"}


def test_the_stored_trace_is_the_last_list_put(pair, ids):
    _, c, _, _ = pair
    thread = ids("th")
    first = [{"node": "a"}, {"node": "b"}, {"node": "c"}]
    second = [{"node": "x"}, {"node": "y"}]
    tid = c.put(f"/automation/traces/thread/{thread}", json={"trace_data": first}).json()["trace_id"]
    assert c.get(f"/automation/traces/thread/{thread}").json()["trace_data"] == first
    grown = first + [{"node": "d"}]
    assert c.put(f"/automation/traces/thread/{thread}", json={"trace_data": grown}).json()["trace_id"] == tid
    assert c.get(f"/automation/traces/{tid}").json()["trace_data"] == grown
    c.put(f"/automation/traces/thread/{thread}", json={"trace_data": second})
    assert c.get(f"/automation/traces/thread/{thread}").json()["trace_data"] == second


def test_openapi_describes_every_route(server):
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/automation/traces"]) == {"get", "post", "delete"}
    assert set(paths["/automation/traces/{trace_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/automation/traces/thread/{thread_id}"]) == {"get", "put"}
    assert set(paths["/automation/traces/{trace_id}/entries"]) == {"post"}
    assert set(paths["/automation/traces/count"]) == {"get"} and "/health" in paths
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_cors_only_for_the_configured_origins(db_url, server):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"}
    with server.client() as c:  # none configured: no CORS headers
        response = c.options("/automation/traces/x", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with live_server(db_url, cors_origins=["https://app.example"]) as srv, srv.client() as c:
        response = c.options("/automation/traces/x", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "PATCH" in response.headers["access-control-allow-methods"]
        other = c.options("/automation/traces/x", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.fixture(scope="module")
def keyless_url(pg_admin_url):
    with scratch_database(pg_admin_url, "keyless") as url:
        yield url


def test_without_keys_only_this_machine_as_the_local_user(keyless_url, ids):
    me = ids("local")
    with live_server(keyless_url, local_user=me) as srv, srv.client() as c:
        tid = c.post("/automation/traces", json={"thread_id": ids("th")}).json()["trace_id"]
        assert c.get(f"/automation/traces/{tid}").json()["user_id"] == me
        assert c.post("/automation/traces", json={"thread_id": "t", "user_id": "someone"}).status_code == 403
        assert c.get("/automation/traces", params={"user_id": me}).json()["count"] == 1


@pytest.mark.parametrize("no_auth,expected", [(False, 403), (True, 200)])
def test_without_keys_another_address_needs_no_auth(keyless_url, no_auth, expected):
    import asyncio

    app = create_app(keyless_url, no_auth=no_auth)

    async def from_elsewhere() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://tracedb") as c:
                return await c.get("/automation/traces/count")

    response = asyncio.run(from_elsewhere())
    assert response.status_code == expected, response.text
    assert_clean(response)


def test_the_typescript_clients_openapi_document_is_current():
    from pathlib import Path

    committed = Path(__file__).resolve().parent.parent / "clients" / "typescript" / "openapi.json"
    assert json.loads(committed.read_text()) == create_app().openapi(), (
        "clients/typescript/openapi.json is stale: run `python -m tracedb openapi > clients/typescript/openapi.json`"
        " and `npm run generate` in clients/typescript"
    )


def test_an_append_sent_again_with_its_batch_id_is_stored_once(pair, ids):
    """A client that lost the reply sends the same batch again: it is recognised."""
    _, client, _, _ = pair
    tid = client.post("/automation/traces", json={"thread_id": ids("th"), "trace_data": []}).json()[
        "trace_id"
    ]
    batch = {"entries": [{"node": "a"}, {"node": "b"}], "batch_id": str(uuid.uuid4())}
    first = client.post(f"/automation/traces/{tid}/entries", json=batch).json()
    again = client.post(f"/automation/traces/{tid}/entries", json=batch).json()
    assert (first["written"], first["duplicate"]) == (2, False)
    assert (again["written"], again["duplicate"], again["entry_count"]) == (0, True, 2)
    other = client.post(f"/automation/traces/{tid}/entries", json={**batch, "batch_id": str(uuid.uuid4())})
    assert other.json()["entry_count"] == 4  # another batch with the same entries is another batch
    bad = client.post(f"/automation/traces/{tid}/entries", json={**batch, "batch_id": "not-a-uuid"})
    assert bad.status_code == 422 and "batch_id" in bad.json()["detail"]
    assert_clean(bad)
    assert client.get(f"/automation/traces/{tid}").json()["trace_data"] == [{"node": "a"}, {"node": "b"}] * 2


@pytest.mark.parametrize(
    "params",
    [{"contains": "{}"}, {"text": "-zzzz"}, {"text": "-zzzz -yyyy"}, {"contains": "{}", "text": "-q"}],
    ids=["empty contains", "negation", "two negations", "both"],
)
def test_a_filter_that_can_match_every_trace_deletes_only_with_all(pair, ids, params):
    _, client, _, _ = pair
    for n in range(2):
        client.post("/automation/traces", json={"thread_id": ids("th"), "trace_data": [{"n": n}]})
    refused = client.delete("/automation/traces", params=params)
    assert refused.status_code == 422, refused.text
    assert "all" in refused.json()["detail"]
    assert_clean(refused)
    assert client.get("/automation/traces/count").json()["count"] == 2
    assert client.delete("/automation/traces", params={**params, "all": "true"}).json()["deleted"] == 2
