"""The recorder's own connection to the store's database.

A recorder's writer thread runs the store's operations (the same statement generators the
store classes drive, see :mod:`tracedb.core`) on one connection of its own rather than
through the store's pool:

- A server that comes back is found at the writer's next attempt. A pool reconnects in the
  background with growing delays, and a request made meanwhile waits for that (up to the
  store's timeout, 10 s by default) even when the server is already back; here every attempt
  after a failure connects afresh, and a stopped server refuses at once.
- The writer never takes a connection the dashboard or the caller's own queries need.
- Its statements are easy to find on the server (``application_name`` is
  ``tracedb-recorder``).

The connection is set up as the store's own are (prepared statements as the store's
``prepare`` setting says, JSON read the same way), writes go to the primary, and a store
with a read replica learns that the primary was written to (its next read waits for the
replica to have it, see :mod:`tracedb.routing`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .core import Op, translate
from .errors import DatabaseUnavailable
from .server import connection_kwargs
from .store import configure, execute

log = logging.getLogger("tracedb.recorder")

APPLICATION_NAME = "tracedb-recorder"
# libpq waits at least 2 s for a connection; a local server that is down refuses at once.
CONNECT_TIMEOUT_S = 2
# A peer that vanished mid-statement (a network cut, not a refused connection) is noticed
# after about 10 + 3 * 2 seconds instead of the system's TCP timeout of many minutes.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 2, "keepalives_count": 3}


class StoreLink:
    """Runs a store's operations on a connection of its own, reconnecting at each call after
    a failure.

    Args:
        db: an ``AutomationTraceDB`` (or a view of it from ``as_user``). A store of
            another kind, without statement generators, is called directly.
        connect_timeout: seconds to wait for a connection (at least 2).
    """

    def __init__(self, db: Any, *, connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.db = db
        self.connect_timeout = max(CONNECT_TIMEOUT_S, int(connect_timeout))
        server = getattr(db, "server", None)
        self.url: str | None = getattr(server, "url", None)
        self._conn: psycopg.Connection[Any] | None = None

    def _operation(self, name: str) -> Callable[..., Op[Any]] | None:
        op = getattr(type(self.db), name, None)
        fn = getattr(op, "fn", None)
        # Operations of several statements in one transaction go through the store itself.
        if fn is None or self.url is None or getattr(op, "transaction", False):
            return None
        return fn

    def call(self, operation: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run the store's ``operation`` with these arguments; raises what the store would
        (named errors only)."""
        fn = self._operation(operation)
        if fn is None:
            return getattr(self.db, operation)(*args, **kwargs)
        return self._drive(fn(self.db, *args, **kwargs))

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            assert self.url is not None
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self.connect_timeout,
                application_name=APPLICATION_NAME,
                **KEEPALIVES,
                **connection_kwargs(getattr(self.db, "prepare", True)),
            )
            configure(conn)
            self._conn = conn
        return self._conn

    def _drive(self, op: Op[Any]) -> Any:
        """Run each statement the operation yields; a failure is thrown back into it as the
        named error, as the store classes do."""
        result: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    st = op.send(result) if error is None else op.throw(error)
                except StopIteration as stop:
                    return stop.value
                result = error = None
                try:
                    result = execute(self._connection(), st)
                except psycopg.Error as exc:
                    error = translate(exc)
                    if self._discard_if_broken() and not isinstance(error, DatabaseUnavailable):
                        # died under the statement (behind a pooler: a protocol error)
                        error = DatabaseUnavailable(f"the connection to the database was lost: {exc}")
                    error.__cause__ = exc
        finally:
            routing = getattr(self.db, "routing", None)
            if routing is not None and getattr(self.db, "read_pool", None) is not None:
                routing.primary_used()  # it may have committed, also if it failed

    def _discard_if_broken(self) -> bool:
        """Drop a connection that died; True when it did."""
        conn = self._conn
        if conn is None or not (conn.closed or conn.broken):
            return False
        self._conn = None
        try:
            conn.close()
        except psycopg.Error:  # already gone
            pass
        return True

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("closing the recorder's connection failed", exc_info=True)
