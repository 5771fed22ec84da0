"""API keys: who a request to the HTTP API (or a sign-in to the dashboard) acts as.

A key names one user; every request made with it reads, changes and deletes only that
user's traces (``db.as_user(key.user_id)``). An admin key sees every user's. The secret is
shown once, when the key is made; the database keeps only its SHA-256 hash (the secret holds
256 random bits, so a slow password hash would add nothing but latency to every request).

The operations are store operations (:mod:`tracedb.core`): :class:`KeyOperations` is a base
of every store (:mod:`tracedb.operations`), so both ``AutomationTraceDB`` and ``AsyncAutomationTraceDB`` have them::

    key, secret = db.create_api_key("ana", label="laptop")  # show `secret` once
    db.authenticate(secret)  # ApiKey(user_id="ana", ...), or None
    db.revoke_api_key(key.id)

A store seen by one user (``as_user``) manages only that user's keys and makes no admin key.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import checks
from . import queries as q
from .core import Op, Statement, StoreBase, operation
from .errors import AccessDenied, InvalidTraceData

PREFIX = "tdb_"
# Longest text accepted as a secret: ours are 47 characters; anything longer is not one.
MAX_SECRET_CHARS = 200


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never its secret).

    Attributes:
        id: the key's id, for ``revoke_api_key`` and ``python -m tracedb api-key revoke``.
        user_id: the user requests made with the key act as.
        admin: the key sees and changes every user's traces.
        label: what the key is for, as given when it was made.
        created_at: when it was made.
        last_used_at: when a request last used it (to the minute), or None.
        revoked_at: when it was revoked, or None while it works.
    """

    id: str
    user_id: str
    admin: bool
    label: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO 8601 strings)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "admin": self.admin,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def hash_secret(secret: str) -> str:
    """The hash stored for a secret (hex SHA-256 of its UTF-8 text)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_secret(secret: Any) -> bool:
    """True when ``secret`` has the shape of a key this module makes: checked before any
    database work, so that an arbitrary header costs nothing and reaches no query."""
    return (
        isinstance(secret, str)
        and secret.startswith(PREFIX)
        and len(secret) <= MAX_SECRET_CHARS
        and secret.isascii()
        and secret.isprintable()
    )


def _key_from_row(row: dict[str, Any]) -> ApiKey:
    return ApiKey(**row)


class KeyOperations(StoreBase):
    """The API key operations of a store (a base class of ``StoreOperations``)."""

    _scope: str | None

    def _key_owner(self, user_id: Any) -> str:
        """The user a key operation is about: the scope's user for a store seen by one user."""
        if self._scope is not None:
            if user_id is not None and user_id != self._scope:
                raise AccessDenied(f"user_id {user_id!r} is not the signed-in user {self._scope!r}")
            return self._scope
        return checks.require_text("user_id", user_id) or ""

    @operation
    def create_api_key(
        self, user_id: str, *, admin: bool = False, label: str | None = None
    ) -> Op[tuple[ApiKey, str]]:
        """Make a key for ``user_id``; return it and its secret, which is shown only now.

        Raises:
            InvalidTraceData: ``user_id`` or ``label`` is not valid text.
            AccessDenied: a store seen by one user makes keys only for that user, never admin.
        """
        owner = self._key_owner(user_id)
        if not isinstance(admin, bool):
            raise InvalidTraceData(f"admin must be True or False, got {admin!r}")
        if admin and self._scope is not None:
            raise AccessDenied("only an unrestricted store makes admin keys")
        checks.require_text("label", label, optional=True)
        secret = PREFIX + secrets.token_urlsafe(32)
        params = {
            "id": str(uuid.uuid4()),
            "user_id": owner,
            "admin": admin,
            "label": label,
            "secret_hash": hash_secret(secret),
        }
        row = yield Statement(q.INSERT_KEY, params, fetch="one")
        return _key_from_row(row), secret

    @operation
    def list_api_keys(self, user_id: str | None = None) -> Op[list[ApiKey]]:
        """Every key (revoked ones included), or those of ``user_id``, ordered by user and age.

        Raises:
            AccessDenied: a store seen by one user lists only that user's keys.
        """
        if self._scope is not None:
            user_id = self._key_owner(user_id)
        else:
            checks.require_text("user_id", user_id, optional=True)
        rows = yield Statement(q.LIST_KEYS, {"user_id": user_id})
        return [_key_from_row(r) for r in rows]

    @operation
    def revoke_api_key(self, key_id: str) -> Op[bool]:
        """Revoke a key: requests made with it are refused from now on. False when no such
        active key exists (or, for a store seen by one user, it is another user's)."""
        kid = checks.parse_uuid(key_id)
        if kid is None:
            return False
        n = yield Statement(q.REVOKE_KEY, {"id": kid, "scope": self._scope}, fetch="rowcount")
        return n > 0

    @operation
    def authenticate(self, secret: str) -> Op[ApiKey | None]:
        """The active key whose secret this is, or None (unknown, revoked, or not a secret).
        Notes when the key was last used (at most once a minute)."""
        if not looks_like_secret(secret):
            return None
        row = yield Statement(q.FIND_KEY, {"secret_hash": hash_secret(secret)}, fetch="one")
        if row is None:
            return None
        yield Statement(q.TOUCH_KEY, {"id": row["id"]}, fetch="none")
        return _key_from_row(row)

    @operation
    def has_api_keys(self) -> Op[bool]:
        """True when at least one key is active: the HTTP API then requires one."""
        row = yield Statement(q.ANY_ACTIVE_KEY, fetch="one")
        return bool(row and row["found"])
