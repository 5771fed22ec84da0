"""Sign-in (``TRACEDB_AUTH``): none serves this machine only, keys signs in with an API key,
oidc with an identity provider; a signed-in user sees, exports and deletes only their own
traces, an admin everyone's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import streamlit
from apptest_support import APP, dashboard_env, open_page, texts
from streamlit.testing.v1 import AppTest

from dashboard import auth, downloads
from tracedb import TraceFilter


@pytest.fixture(scope="module")
def people(db, db_url: str) -> Iterator[dict[str, object]]:
    """Ana's and ben's traces, a key for each (and for cy, who chats), and an admin key."""
    made: dict[str, object] = {
        "ana": [
            db.save_trace("ana", None, f"ana-{i}", [{"node": "model", "output": i}], name=f"ana {i}")
            for i in range(3)
        ],
        "ben": [
            db.save_trace("ben", None, f"ben-{i}", [{"node": "tools", "output": i}], name=f"ben {i}")
            for i in range(2)
        ],
    }
    for user, admin in (("ana", False), ("ben", False), ("cy", False), ("root", True)):
        made[f"{user}_key"] = db.create_api_key(user, admin=admin, label=f"{user} test")[1]
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH="keys"):
        yield made


def sign_in(at: AppTest, secret: str) -> AppTest:
    at.text_input(key="sign_in_key").input(secret)
    return at.button(key="sign_in_submit").click().run()


def listed(at: AppTest) -> set[str]:
    return set(at.dataframe[0].value["name"])


def test_keys_ask_for_a_key_before_anything_else(people) -> None:
    at = open_page("traces")
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.dataframe and "Sign out" not in [b.label for b in at.button]
    sign_in(at, "tdb_not-a-real-key")
    assert any("not a valid key" in e.value for e in at.error)
    assert [t.value for t in at.title] == ["Sign in"]


def test_a_user_sees_exports_and_deletes_only_their_own(people, db) -> None:
    at = sign_in(open_page("traces"), people["ana_key"])
    assert not at.exception
    assert [t.value for t in at.title] == ["Traces"]
    assert listed(at) == {"ana 0", "ana 1", "ana 2"}
    assert "ana" in [t.value for t in at.sidebar.text]
    assert any("You see your own traces" in c.value for c in at.sidebar.caption)
    # the user filter offers only ana
    assert at.selectbox(key="user").options == ["all users", "ana"]
    # another user's trace is as absent as one that does not exist, on every page
    ben = people["ben"][0]
    at.switch_page("pages/thread.py")
    at.query_params["trace"] = ben
    at.run()
    assert any("No trace has this id" in e.value for e in at.error)
    at.switch_page("pages/compare.py")
    at.query_params.update({"a": people["ana"][0], "b": ben})
    at.run()
    assert any(f"No trace has the id {ben}" in w.value.replace("\\", "") for w in at.warning)
    at.switch_page("pages/overview.py").run()
    assert next(m.value for m in at.metric if m.label == "Traces") == "3"
    # an export of "everything" is ana's
    view = db.as_user("ana")
    lines = downloads.traces_file(view, TraceFilter(), "jsonl")().read().decode().splitlines()
    assert sorted(json.loads(line)["user_id"] for line in lines) == ["ana"] * 3


def test_delete_all_deletes_only_the_users_own(db, db_url: str, ids) -> None:
    mine = [db.save_trace("dora", None, ids("d"), [{"node": "x"}], name="dora") for _ in range(2)]
    other = db.save_trace("eve", None, ids("e"), [{"node": "x"}], name="eve")
    secret = db.create_api_key("dora")[1]
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH="keys"):
        at = sign_in(open_page("traces"), secret)
        at.button(key="delete_matching").click().run()
        assert any("every one of your traces" in w.value for w in at.warning)
        at.button(key="delete_confirm").click().run()
        assert not at.exception
    assert all(db.get_summary(t) is None for t in mine)
    assert db.get_summary(other) is not None


def test_an_admin_sees_everyone_and_the_cache_is_per_user(people) -> None:
    at = sign_in(open_page("traces"), people["root_key"])
    assert {"ana 0", "ben 0"} <= listed(at)
    assert any("Admin" in c.value for c in at.sidebar.caption)
    admin_users = at.selectbox(key="user").options
    assert {"ana", "ben"} <= set(admin_users)
    # the same session, signed out and in as ben: nothing of the admin's view is left
    at.button(key="sign_out").click().run()
    assert [t.value for t in at.title] == ["Sign in"]
    sign_in(at, people["ben_key"])
    assert listed(at) == {"ben 0", "ben 1"}
    assert at.selectbox(key="user").options == ["all users", "ben"]


def test_a_revoked_key_signs_out_at_the_next_click(db, db_url: str) -> None:
    key, secret = db.create_api_key("fay")
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH="keys"):
        at = sign_in(open_page("traces"), secret)
        assert [t.value for t in at.title] == ["Traces"]
        db.revoke_api_key(key.id)
        at.run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert any("no longer works" in w.value for w in at.warning)


def test_chat_records_as_the_signed_in_user(people, db, notes_file) -> None:
    at = sign_in(open_page("chat"), people["cy_key"])
    assert any("user cy" in t for t in texts(at))
    at.chat_input(key="chat_input").set_value("what is 6 * 7?").run(timeout=60)
    assert not at.exception
    assert db.count_traces(TraceFilter(user_id="cy", name="what is 6")) == 1


def test_without_sign_in_the_dashboard_serves_this_machine_only(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH=None, TRACEDB_USER="solo"):
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert [t.value for t in at.title] == ["Traces"]
        assert any("Single-user" in c.value for c in at.sidebar.caption)
        assert "Sign out" not in [b.label for b in at.sidebar.button]
        previous = streamlit.config.get_option("server.address")
        try:
            for address in ("0.0.0.0", "192.168.1.20", None):
                streamlit.config.set_option("server.address", address)
                at = AppTest.from_file(APP, default_timeout=30).run()
                assert not at.exception
                assert not at.title and any("only serves this machine" in e.value for e in at.error), address
        finally:
            streamlit.config.set_option("server.address", previous)


def test_the_project_config_serves_this_machine_only() -> None:
    import tomllib

    from apptest_support import ROOT

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("", False),
        (None, False),
        ("10.0.0.1", False),
        ("example.org", False),
    ],
)
def test_which_addresses_are_this_machine(address: str | None, local: bool) -> None:
    assert auth.local_only(address) is local


def test_an_unknown_sign_in_method_is_an_error(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH="ldap"):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert any("TRACEDB_AUTH='ldap' is not one of none, keys, oidc" in e.value for e in at.error)


# -- oidc, as far as it goes without an identity provider -----------------------------------

AUTH_SECRETS = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-secret-only-for-the-tests-0123456789",
    "client_id": "tracedb",
    "client_secret": "not-a-secret",
    "server_metadata_url": "https://idp.invalid/.well-known/openid-configuration",
}


def oidc_app(user: dict, secrets: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if secrets:
        at.secrets["auth"] = AUTH_SECRETS
    at.user = user
    return at.run()


def test_oidc_asks_to_sign_in_and_says_what_is_missing(people) -> None:
    with dashboard_env(TRACEDB_AUTH="oidc"):
        at = oidc_app({"is_logged_in": False})
        assert [t.value for t in at.title] == ["Sign in"]
        assert at.button(key="sign_in_oidc").label == "Sign in"
        assert not at.dataframe
        at = oidc_app({"is_logged_in": False}, secrets=False)
        assert any("needs an [auth] section" in e.value for e in at.error)


def test_oidc_signs_in_as_the_verified_email(people) -> None:
    with dashboard_env(TRACEDB_AUTH="oidc", TRACEDB_ADMINS="Root@Example.org, boss@example.org"):
        at = oidc_app({"is_logged_in": True, "email": "Ana@Example.org", "email_verified": True})
        assert [t.value for t in at.title] == ["Traces"]
        assert "ana@example.org" in [t.value for t in at.sidebar.text]
        assert not at.dataframe  # no trace of that user yet
        at = oidc_app({"is_logged_in": True, "email": "root@example.org"})
        assert {"ana 0", "ben 0"} <= listed(at) and any("Admin" in c.value for c in at.sidebar.caption)
        at = oidc_app({"is_logged_in": True, "email": "mallory@example.org", "email_verified": False})
        assert not at.title and any("not verified" in e.value for e in at.error)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({}, None),
        ({"is_logged_in": False, "email": "a@b.c"}, None),
        (
            {"is_logged_in": True, "email": " Ana@Example.ORG ", "name": "Ana"},
            auth.Identity("ana@example.org", False, "oidc", "Ana"),
        ),
        (
            {"is_logged_in": True, "email": "boss@example.org"},
            auth.Identity("boss@example.org", True, "oidc", None),
        ),
    ],
)
def test_oidc_identity_and_admins(user: dict, expected, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDB_ADMINS", "boss@example.org other@example.org")
    assert auth.identity_from_user(user) == expected


@pytest.mark.parametrize(
    "user",
    [
        {"is_logged_in": True},
        {"is_logged_in": True, "email": "no-at-sign"},
        {"is_logged_in": True, "email": "a@b.c", "email_verified": False},
    ],
)
def test_oidc_without_a_verified_email_is_refused(user: dict) -> None:
    with pytest.raises(auth.AuthSetupError):
        auth.identity_from_user(user)
