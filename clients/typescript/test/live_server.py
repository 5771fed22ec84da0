"""Live API servers on real databases for the client's node tests.

Makes two new databases on ``TRACEDB_TEST_URL`` (else ``TRACEDB_URL``): one with API keys
(two users and an admin), one with none (served as a local user, as a seed-era front end
without keys would use it), serves each with uvicorn on a free loopback port, prints one
JSON line saying where, and runs until its standard input closes; then it stops the servers
and drops the databases.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import psycopg  # noqa: E402
import uvicorn  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from tracedb import AutomationTraceDB  # noqa: E402
from tracedb.api import create_app  # noqa: E402


def serve(url: str, **settings: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    # Answers in one packet: without it each response waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(url, **settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the API server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    admin_url = os.environ.get("TRACEDB_TEST_URL") or os.environ.get("TRACEDB_URL")
    if not admin_url:
        raise SystemExit("set TRACEDB_TEST_URL to a server where databases can be made")
    names = [f"tracedb_node_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("keys", "local")]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    urls = [make_conninfo(admin_url, dbname=name) for name in names]
    running = []
    try:
        suffix = uuid.uuid4().hex[:6]
        users = {"ana": f"ana-{suffix}", "ben": f"ben-{suffix}", "admin": f"admin-{suffix}"}
        with AutomationTraceDB(urls[0]) as db:
            keys = {
                who: db.create_api_key(user, admin=(who == "admin"), label="node tests")[1]
                for who, user in users.items()
            }
        local_user = "test_user_frontend"
        running.append(serve(urls[0], max_body_bytes=1024 * 1024))
        running.append(serve(urls[1], local_user=local_user))
        print(
            json.dumps(
                {
                    "keysUrl": running[0][2],
                    "localUrl": running[1][2],
                    "users": users,
                    "keys": keys,
                    "localUser": local_user,
                    "maxBodyBytes": 1024 * 1024,
                }
            ),
            flush=True,
        )
        sys.stdin.read()  # until the tests close it
    finally:
        for server, thread, _ in running:
            server.should_exit = True
            thread.join(timeout=30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
