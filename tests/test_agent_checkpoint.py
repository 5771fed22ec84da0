"""Conversations persist in PostgreSQL through LangGraph's PostgresSaver (real server)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from psycopg_pool import ConnectionPool
from store_support import in_threads

from agent import build_graph, make_checkpointer, user_input
from agent.checkpoint import _SETUP_LOCK, connection_kwargs

pytestmark = pytest.mark.usefixtures("notes_file")


def test_a_thread_resumes_in_a_new_graph_and_connection(db_url: str) -> None:
    config = {"configurable": {"thread_id": "resume-1"}}
    with make_checkpointer(db_url) as checkpointer:
        first = build_graph(checkpointer=checkpointer).invoke(user_input("what is 17 * 23?"), config)
    assert first["messages"][-1].content == "17 * 23 = 391"
    # A new connection and a new graph, as after a restart.
    with make_checkpointer(db_url) as checkpointer:
        graph = build_graph(checkpointer=checkpointer)
        assert len(graph.get_state(config).values["messages"]) == 4
        second = graph.invoke(user_input("what did I ask before?"), config)
    assert second["messages"][-1].content == "Earlier in this conversation you said:\n1. what is 17 * 23?"
    humans = [m.content for m in second["messages"] if isinstance(m, HumanMessage)]
    assert humans == ["what is 17 * 23?", "what did I ask before?"]
    assert [e["kind"] for e in second["automation_trace"]].count("plan") == 2


def test_threads_are_separate(db_url: str) -> None:
    with make_checkpointer(db_url) as checkpointer:
        graph = build_graph(checkpointer=checkpointer)
        graph.invoke(user_input("what is 1 + 1"), {"configurable": {"thread_id": "sep-a"}})
        out = graph.invoke(user_input("what did I ask before?"), {"configurable": {"thread_id": "sep-b"}})
    assert out["messages"][-1].content == "This is the first message of our conversation."


def test_a_pool_serves_concurrent_conversations(db_url: str) -> None:
    results: dict[int, str] = {}

    with make_checkpointer(db_url, max_size=4) as checkpointer:
        graph = build_graph(checkpointer=checkpointer)

        def run(n: int) -> None:
            out = graph.invoke(user_input(f"what is {n} * 11"), {"configurable": {"thread_id": f"pool-{n}"}})
            results[n] = out["messages"][-1].content

        errors = in_threads(run, 8)
    assert not errors
    assert results == {n: f"{n} * 11 = {n * 11}" for n in range(8)}


def test_caller_owned_connection_and_pool_stay_open(db_url: str) -> None:
    with psycopg.connect(db_url, **connection_kwargs()) as conn:
        with make_checkpointer(conn) as checkpointer:
            build_graph(checkpointer=checkpointer).invoke(
                user_input("what is 2 + 2"), {"configurable": {"thread_id": "own-conn"}}
            )
        assert not conn.closed
        count = conn.execute("SELECT count(*) AS n FROM checkpoints WHERE thread_id = 'own-conn'").fetchone()
        assert count["n"] > 0
    with ConnectionPool(db_url, min_size=1, max_size=2, kwargs=connection_kwargs()) as pool:
        with make_checkpointer(pool) as checkpointer:
            assert checkpointer.get_tuple({"configurable": {"thread_id": "own-conn"}}) is not None
        assert not pool.closed


def test_a_connection_without_the_required_settings_is_refused(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, pytest.raises(ValueError, match="autocommit=True"):
        with make_checkpointer(conn):
            pass


def test_concurrent_setup_on_a_new_database(fresh_db_url: str) -> None:
    errors: list[BaseException] = []

    def setup() -> None:
        try:
            with make_checkpointer(fresh_db_url):
                pass
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=setup) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoint_migrations").fetchone()[0] > 0
        # every index built, none left invalid by a setup that raced another
        invalid = conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " WHERE c.relname LIKE 'checkpoint%' AND NOT i.indisvalid"
        ).fetchone()[0]
        assert invalid == 0
        # the setup lock lived in a transaction: nothing stays locked on any server connection
        held = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        ).fetchone()[0]
        assert held == 0


def test_setup_waits_for_the_lock_and_gives_up_clearly(fresh_db_url: str) -> None:
    """While another process sets up (holds the lock in its transaction), a setup waits for
    it and then gives up with a clear error; once it ends, the setup runs."""
    with psycopg.connect(fresh_db_url, prepare_threshold=None) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        with pytest.raises(TimeoutError, match="kept the checkpoint tables locked"):
            with make_checkpointer(fresh_db_url, timeout=1):
                pass
        holder.rollback()
    with make_checkpointer(fresh_db_url, timeout=5) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "none"}}) is None


def test_an_unreachable_server_raises_operational_error() -> None:
    with (
        pytest.raises(psycopg.OperationalError),
        make_checkpointer("postgresql://127.0.0.1:1/none", timeout=1),
    ):
        pass
