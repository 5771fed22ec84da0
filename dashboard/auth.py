"""Who is using the dashboard, and the store they see.

``TRACEDB_AUTH`` chooses how a visitor signs in:

- ``none`` (the default): no sign-in. The dashboard is single-user and must listen on this
  machine only (``server.address = "127.0.0.1"`` in ``.streamlit/config.toml``); it refuses
  to serve on any other address. Everything is recorded and listed as ``TRACEDB_USER``
  (default ``local``), and every trace is visible.
- ``keys``: the visitor signs in with an API key made by ``python -m tracedb api-key
  create USER [--admin]``, and acts as the key's user.
- ``oidc``: the visitor signs in with an identity provider through Streamlit's
  ``st.login`` (an ``[auth]`` section in ``.streamlit/secrets.toml``, and
  ``streamlit[auth]``); the user id is the identity's verified email.

A signed-in user sees, exports, renames and deletes only their own traces: every page works
through ``db.as_user(user)``, which the store enforces. Admins (keys made with ``--admin``,
or the emails listed in ``TRACEDB_ADMINS``) see every user's.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from tracedb import AutomationTraceDB
from tracedb.core import local_user

ENV = "TRACEDB_AUTH"
ADMINS_ENV = "TRACEDB_ADMINS"
PROVIDER_ENV = "TRACEDB_OIDC_PROVIDER"
MODES = ("none", "keys", "oidc")
IDENTITY_KEY = "tracedb_identity"
SECRET_KEY = "tracedb_key_secret"
SIGN_IN_MESSAGE_KEY = "tracedb_sign_in_message"


class AuthSetupError(ValueError):
    """The sign-in cannot work as configured; the message says what to change."""


@dataclass(frozen=True)
class Identity:
    """Who is signed in: the user id traces are recorded and listed as, whether they see
    every user's traces, and how they signed in (``none``, ``keys`` or ``oidc``)."""

    user_id: str
    admin: bool
    method: str
    label: str | None = None


def mode() -> str:
    """The sign-in method of ``TRACEDB_AUTH``.

    Raises:
        AuthSetupError: it names no method.
    """
    value = (os.environ.get(ENV) or "none").strip().lower()
    if value not in MODES:
        raise AuthSetupError(f"{ENV}={os.environ.get(ENV)!r} is not one of {', '.join(MODES)}")
    return value


def admin_emails() -> set[str]:
    """The emails of ``TRACEDB_ADMINS`` (separated by commas or spaces), in lower case."""
    raw = os.environ.get(ADMINS_ENV) or ""
    return {part.strip().lower() for part in raw.replace(",", " ").split() if part.strip()}


def identity_from_user(user: Mapping[str, Any]) -> Identity | None:
    """The identity of a visitor signed in with OIDC (``st.user`` as a dict), or None when
    nobody is signed in.

    Raises:
        AuthSetupError: the provider gave no email, or says it is not verified: an email
            that is not the visitor's must never pick whose traces they see.
    """
    if not user.get("is_logged_in"):
        return None
    email = user.get("email")
    if not isinstance(email, str) or "@" not in email or not email.strip():
        raise AuthSetupError("the identity provider gave no email for this account; ask for the email scope")
    if user.get("email_verified") is False:
        raise AuthSetupError(f"the identity provider has not verified the email {email}")
    user_id = email.strip().lower()
    return Identity(user_id, user_id in admin_emails(), "oidc", str(user.get("name") or "") or None)


def store_for(db: AutomationTraceDB, identity: Identity) -> AutomationTraceDB:
    """The store as ``identity`` sees it: every user's traces for an admin, else only
    theirs."""
    return db if identity.admin else db.as_user(identity.user_id)


def local_only(address: str | None) -> bool:
    """Whether a server address (``server.address``) can only be reached from this machine:
    a loopback address or ``localhost``. No address means every interface."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def current() -> Identity | None:
    """The identity the app signed in for this run (:func:`gate`), or None."""
    value = st.session_state.get(IDENTITY_KEY)
    return value if isinstance(value, Identity) else None


def sign_out() -> None:
    """Forget the signed-in user and everything this session held for them (pickers,
    selections, conversations): the next user of the browser starts afresh."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


# -- the sign-in screens -------------------------------------------------------------------


def _single_user() -> Identity | None:
    address = st.get_option("server.address")
    if not local_only(address):
        st.error(
            "This dashboard has no sign-in (TRACEDB_AUTH=none), so it only serves this machine, and it is "
            f"listening on {address or 'every network interface'}. Start it with `--server.address "
            "127.0.0.1` (or from the project folder, whose .streamlit/config.toml sets it), or choose a sign-in: "
            "TRACEDB_AUTH=keys or TRACEDB_AUTH=oidc."
        )
        return None
    return Identity(local_user(), True, "none")


def _with_key(db: AutomationTraceDB | None) -> Identity | None:
    """A signed-in key, checked again on every run (a revoked key signs out at once); else
    the form that asks for one."""
    secret = st.session_state.get(SECRET_KEY)
    if secret and db is not None:
        key = db.authenticate(secret)
        if key is not None:
            return Identity(key.user_id, key.admin, "keys", key.label)
        sign_out()
        st.session_state[SIGN_IN_MESSAGE_KEY] = "This key no longer works (it was revoked): sign in again."
    st.title("Sign in")
    if db is None:
        from dashboard import common

        st.error(common.db_problem())
        return None
    if message := st.session_state.pop(SIGN_IN_MESSAGE_KEY, None):
        st.warning(message)
    st.write("Sign in with your API key. An administrator makes one with:")
    st.code("python -m tracedb api-key create YOUR_NAME", language="bash")
    with st.form("sign_in_form", clear_on_submit=True, border=False):
        typed = st.text_input("API key", type="password", key="sign_in_key", placeholder="tdb_…", width=460)
        pressed = st.form_submit_button("Sign in", type="primary", key="sign_in_submit")
    if pressed and typed:
        key = db.authenticate(typed.strip())
        if key is None:
            st.error("This is not a valid key: it is unknown or was revoked.")
            return None
        st.session_state[SECRET_KEY] = typed.strip()
        st.rerun()
    return None


def _oidc_ready() -> str | None:
    """Why OIDC sign-in cannot work here, or None when it can."""
    try:
        configured = "auth" in st.secrets
    except (FileNotFoundError, KeyError, ValueError):
        configured = False
    if not configured:
        return (
            "TRACEDB_AUTH=oidc needs an [auth] section in .streamlit/secrets.toml (redirect_uri, cookie_secret, "
            "client_id, client_secret, server_metadata_url); see the README."
        )
    try:
        import authlib  # noqa: F401 - Streamlit's sign-in needs it
    except ImportError:
        return "TRACEDB_AUTH=oidc needs Authlib: pip install 'streamlit[auth]'"
    return None


def _with_oidc() -> Identity | None:
    problem = _oidc_ready()
    try:
        found = identity_from_user(st.user.to_dict())
    except AuthSetupError as exc:
        st.error(f"You cannot be signed in: {exc}.")
        st.button("Sign out", key="sign_out_oidc", on_click=st.logout)
        return None
    if found is not None:
        return found
    st.title("Sign in")
    if problem:
        st.error(problem)
        return None
    st.write("Sign in with your organisation's account to see your traces.")
    st.button(
        "Sign in",
        type="primary",
        key="sign_in_oidc",
        icon=":material/login:",
        on_click=st.login,
        args=(os.environ.get(PROVIDER_ENV) or None,),
    )
    return None


def gate(db: AutomationTraceDB | None) -> Identity | None:
    """The identity of this run, or None after drawing why there is none (a sign-in form,
    or what is wrong with the setup): the caller then stops."""
    try:
        chosen = mode()
    except AuthSetupError as exc:
        st.error(str(exc))
        return None
    if chosen == "none":
        found = _single_user()
    elif chosen == "keys":
        found = _with_key(db)
    else:
        found = _with_oidc()
    if found is None:
        st.session_state.pop(IDENTITY_KEY, None)
    else:
        st.session_state[IDENTITY_KEY] = found
    return found


def sidebar(identity: Identity) -> None:
    """Who is signed in, what they see, and the way out."""
    st.caption("User")
    st.text(identity.user_id)
    if identity.method == "none":
        st.caption("Single-user: no sign-in, served on this machine only.")
        return
    how = "an API key" if identity.method == "keys" else "your organisation's account"
    st.caption(
        f"Signed in with {how}. "
        + ("Admin: you see every user's traces." if identity.admin else "You see your own traces.")
    )
    if identity.method == "keys":
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out)
    else:
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=st.logout)
