"""The REST API on a real database, through Starlette's test client."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tracedb.api import create_app


@pytest.fixture()
def client(db):
    with TestClient(create_app(db, token="")) as c:
        yield c


def test_crud_and_listing(client, ids):
    user, thread = ids("api"), ids("th")
    r = client.post(
        "/api/traces",
        json={"user_id": user, "thread_id": thread, "trace_data": [{"node": "a"}], "name": "first"},
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    assert client.get(f"/api/traces/{tid}").json()["trace_data"] == [{"node": "a"}]
    r = client.post(f"/api/traces/{tid}/entries", json={"entries": [{"node": "b"}], "status": "running"})
    assert r.json()["entry_count"] == 2
    r = client.patch(f"/api/traces/{tid}", json={"name": "renamed", "status": "completed"})
    assert r.json()["name"] == "renamed" and r.json()["status"] == "completed"
    items = client.get("/api/traces", params={"user": user}).json()["items"]
    assert [i["id"] for i in items] == [tid]
    assert client.get("/api/traces/count", params={"user": user, "node": "b"}).json() == {"count": 1}
    assert client.get(f"/api/threads/{thread}/trace").json()["id"] == tid
    up = client.put(
        f"/api/threads/{thread}/trace",
        json={"user_id": user, "trace_data": [{"node": "a"}, {"node": "b"}, {"node": "c"}]},
    )
    assert up.json()["id"] == tid
    assert client.get(f"/api/traces/{tid}").json()["entry_count"] == 3
    assert client.delete(f"/api/traces/{tid}").status_code == 204
    assert client.get(f"/api/traces/{tid}").status_code == 404


def test_errors_are_json(client, ids):
    assert client.get("/api/traces/not-a-uuid").status_code == 404
    r = client.post("/api/traces", json={"user_id": "u", "thread_id": "t", "trace_data": "nope"})
    assert r.status_code == 400 and "trace_data" in r.json()["error"]
    r = client.post("/api/traces", content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert client.get("/api/traces", params={"contains": "{x"}).status_code == 400
    assert client.get("/api/traces", params={"since": "yesterday"}).status_code == 400
    assert client.delete("/api/traces").status_code == 400  # no filter, no all=true
    user = ids("api")
    client.post("/api/traces", json={"user_id": user, "thread_id": "t", "trace_data": []})
    assert client.delete("/api/traces", params={"user": user}).json() == {"deleted": 1}


def test_bearer_token(db):
    with TestClient(create_app(db, token="s3cret")) as c:
        assert c.get("/api/health").status_code == 401
        r = c.get("/api/health", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["ok"] is True
