"""A real uvicorn server of the HTTP API, on a real database, for tests that talk HTTP."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracedb.api import create_app


class LiveServer:
    """``create_app(url, **settings)`` served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, url: str, **settings: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Answers in one packet: without it each response waits ~40 ms for a delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(url, **settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="api-server", daemon=True
        )

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@contextmanager
def live_server(url: str, **settings: Any) -> Iterator[LiveServer]:
    server = LiveServer(url, **settings).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"tracedb_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(admin_url, dbname=name)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            dbname = conninfo_to_dict(url)["dbname"]
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


# What a response must never contain: the database's own words.
DATABASE_WORDS = ("psycopg", "violates", "syntax for type", "ERROR:", "DETAIL:", "pg_", "tracedb_append")


def assert_clean(response: httpx.Response) -> None:
    """A JSON response that is no server error and says nothing the database said."""
    assert response.status_code < 500 or response.status_code == 503, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    text = response.text
    for word in DATABASE_WORDS:
        assert word not in text, text[:500]
    if response.status_code >= 400:
        assert "detail" in response.json()
