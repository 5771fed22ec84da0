"""API keys on a real database, through both store classes."""

from __future__ import annotations

import psycopg
import pytest
from store_support import STORES

from tracedb import AccessDenied, InvalidTraceData
from tracedb.keys import PREFIX, ApiKey, hash_secret


@pytest.fixture(scope="module", params=sorted(STORES))
def db(db_url, request):
    store = STORES[request.param](db_url)
    try:
        yield store
    finally:
        store.close()


def test_create_authenticate_list_revoke(db, db_url, ids):
    user = ids("ana")
    key, secret = db.create_api_key(user, label="laptop")
    assert isinstance(key, ApiKey) and key.user_id == user and not key.admin and key.active
    assert secret.startswith(PREFIX) and len(secret) > 40
    # only the hash is stored
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT * FROM tracedb_api_keys WHERE id = %s", (key.id,)).fetchone()
    assert secret not in {str(v) for v in stored} and hash_secret(secret) in stored
    found = db.authenticate(secret)
    assert found is not None and found.id == key.id and found.user_id == user
    listed = db.list_api_keys(user)
    assert [k.id for k in listed] == [key.id] and listed[0].last_used_at is not None
    assert db.has_api_keys()
    assert db.revoke_api_key(key.id) is True
    assert db.revoke_api_key(key.id) is False  # already revoked
    assert db.authenticate(secret) is None
    assert db.list_api_keys(user)[0].revoked_at is not None


@pytest.mark.parametrize(
    "secret", ["", "nope", PREFIX, PREFIX + "x" * 300, PREFIX + "é", PREFIX + "\x00", None, 5, "Bearer x"]
)
def test_anything_else_is_not_a_key(db, secret):
    assert db.authenticate(secret) is None


def test_admin_keys_and_a_users_view(db, ids):
    ana, ben = ids("ana"), ids("ben")
    admin, admin_secret = db.create_api_key(ana, admin=True)
    assert db.authenticate(admin_secret).admin is True
    view = db.as_user(ana)
    mine, _ = view.create_api_key(None, label="from the view")
    assert mine.user_id == ana
    with pytest.raises(AccessDenied):
        view.create_api_key(ben)
    with pytest.raises(AccessDenied):
        view.create_api_key(ana, admin=True)
    with pytest.raises(AccessDenied):
        view.list_api_keys(ben)
    assert {k.id for k in view.list_api_keys()} == {admin.id, mine.id}
    bens, ben_secret = db.create_api_key(ben)
    assert view.revoke_api_key(bens.id) is False  # another user's key
    assert db.authenticate(ben_secret) is not None
    assert view.revoke_api_key(mine.id) is True


@pytest.mark.parametrize("kwargs", [{"user_id": ""}, {"user_id": None}, {"user_id": "a\x00"}, {"user_id": 5}])
def test_bad_arguments_are_named_errors(db, kwargs):
    with pytest.raises(InvalidTraceData):
        db.create_api_key(**kwargs)


def test_bad_label_and_admin_flag(db, ids):
    with pytest.raises(InvalidTraceData):
        db.create_api_key(ids("u"), label="x" * 5000)
    with pytest.raises(InvalidTraceData):
        db.create_api_key(ids("u"), admin="yes")
    assert db.revoke_api_key("not-a-uuid") is False
