"""``python -m tracedb`` against a real database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tracedb.cli import main


@pytest.fixture()
def seeded(db, ids):
    user = ids("cli")
    a = db.save_trace(user, None, ids("th"), [{"node": "tools", "output": "needle"}], name="alpha")
    b = db.save_trace(user, None, ids("th"), [{"node": "model"}], name="beta")
    return user, a, b


def test_init_and_status(db_url, capsys):
    assert main(["--url", db_url, "init"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["--url", db_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL" in out and "automation_trace_entries" in out
    assert "automation_trace_search_words_idx" in out and "tracedb_append(" in out


def test_list_count_show_rename_delete(db_url, seeded, capsys):
    user, a, b = seeded
    assert main(["--url", db_url, "list", "--user", user, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["id"] for r in rows} == {a, b}
    assert main(["--url", db_url, "count", "--user", user, "--text", "needle"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert main(["--url", db_url, "count", "--user", user, "--contains", '{"node": "model"}']) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert main(["--url", db_url, "show", a]) == 0
    assert json.loads(capsys.readouterr().out)["trace_data"] == [{"node": "tools", "output": "needle"}]
    assert main(["--url", db_url, "rename", a, "renamed"]) == 0
    assert main(["--url", db_url, "show", "nope"]) == 1
    assert main(["--url", db_url, "delete", "--user", user, "--name", "ren", "--yes"]) == 0
    assert "deleted 1" in capsys.readouterr().out
    assert main(["--url", db_url, "delete", "--yes"]) == 2  # no filter, no --all
    assert "allow_all" in capsys.readouterr().err


def test_bad_input_is_a_message(db_url, capsys):
    with pytest.raises(SystemExit):
        main(["--url", db_url, "count", "--contains", "{oops"])
    assert main(["--url", db_url, "list", "--status", "nope"]) == 2
    assert "status must be one of" in capsys.readouterr().err


def test_runs_as_a_module(db_url, seeded, tmp_path):
    user, a, b = seeded
    out = tmp_path / "t.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracedb",
            "--url",
            db_url,
            "export",
            "--user",
            user,
            "--format",
            "csv",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "exported 2 traces" in proc.stderr
    assert out.read_text().count("\n") == 3


def test_prune_and_index(db, db_url, ids, capsys):
    from datetime import UTC, datetime, timedelta

    user = ids("prune")
    old = db.save_trace(user, None, ids("th"), [{"node": "a"}])
    new = db.save_trace(user, None, ids("th"), [{"node": "a"}])
    long_ago = datetime.now(UTC) - timedelta(days=45)
    db.set_trace_times([(old, long_ago, long_ago)])
    assert main(["--url", db_url, "prune", "--older-than", "30d", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would delete 1 trace ")
    assert db.get_summary(old) is not None
    assert main(["--url", db_url, "prune", "--older-than", "30d", "--status", "completed"]) == 0
    assert "deleted 1 trace" in capsys.readouterr().out
    assert db.get_summary(old) is None and db.get_summary(new) is not None
    with pytest.raises(SystemExit):
        main(["--url", db_url, "prune", "--older-than", "soon"])
    assert "not an age" in capsys.readouterr().err
    assert main(["--url", db_url, "index"]) == 0
    assert capsys.readouterr().out.startswith("indexed ")


@pytest.mark.parametrize("flt", [["--contains", "{}"], ["--text=-zzzz"]])
def test_a_filter_that_matches_everything_needs_all_to_delete(db_url, seeded, capsys, flt):
    assert main(["--url", db_url, "delete", *flt, "--yes"]) == 2
    err = capsys.readouterr().err
    assert "allow_all" in err and "Traceback" not in err


def test_status_lists_each_tables_columns(db_url, capsys):
    assert main(["--url", db_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "tracedb_api_keys" in out
    assert "      trace_data" not in out  # tracedb has no such column; the seed's table had
    assert "      seq integer not null" in out and "      nodes text[] not null" in out


def test_api_keys_from_the_command_line(db, db_url, capsys, ids):
    user = ids("cli")
    assert main(["--url", db_url, "api-key", "create", "--user", user, "--label", "ci"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    assert secret.startswith("tdb_") and " " not in secret
    key = db.authenticate(secret)
    assert key is not None and key.user_id == user and not key.admin and key.label == "ci"
    assert main(["--url", db_url, "api-key", "create", "--user", user, "--admin"]) == 0
    admin_secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert db.authenticate(admin_secret).admin is True
    assert main(["--url", db_url, "api-key", "list", "--user", user]) == 0
    listed = capsys.readouterr().out
    assert key.id in listed and secret not in listed and "admin" in listed
    assert main(["--url", db_url, "api-key", "revoke", key.id]) == 0
    assert db.authenticate(secret) is None
    assert main(["--url", db_url, "api-key", "revoke", key.id]) == 1
    assert main(["--url", db_url, "api-key", "create", "--user", ""]) == 2
    assert "user_id" in capsys.readouterr().err


def test_openapi_needs_no_database(capsys):
    assert main(["--url", "postgresql://nobody@127.0.0.1:1/none", "openapi"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert "/automation/traces/thread/{thread_id}" in spec["paths"]


def test_serve_refuses_other_addresses_without_a_key(pg_admin_url):
    from api_support import scratch_database

    with scratch_database(pg_admin_url, "serve") as url:
        proc = subprocess.run(
            [sys.executable, "-m", "tracedb", "--url", url, "serve", "--host", "0.0.0.0", "--port", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "no API key is configured" in proc.stderr and "--no-auth" in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["serve", "uvicorn"])
def test_the_server_starts_both_ways(db, db_url, ids, how):
    import os
    import time

    import httpx

    port = _free_port()
    if how == "serve":
        cmd = [sys.executable, "-m", "tracedb", "--url", db_url, "serve", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "tracedb.api:app", "--port", str(port)]
    secret = db.create_api_key(ids("srv"))[1]
    env = {**os.environ, "TRACEDB_URL": db_url}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        assert health.json() == {"ok": True}
        headers = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"http://127.0.0.1:{port}/automation/traces", headers=headers).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/automation/traces").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_upsert_makes_the_threads_trace_exactly_the_json_given(
    db, db_url, ids, tmp_path, capsys, monkeypatch
):
    user, thread = ids("cli"), ids("th")
    path = tmp_path / "trace.json"
    path.write_text(json.dumps([{"node": "a"}, {"node": "b"}]))
    assert main(["--url", db_url, "upsert", thread, str(path), "--user", user, "--name", "first"]) == 0
    tid, count = capsys.readouterr().out.split()[:2]
    assert count == "2" and db.load_trace_by_id(tid).trace_data == [{"node": "a"}, {"node": "b"}]
    # a longer list extends it, a different one replaces it; the seed's dict shape from stdin
    path.write_text(json.dumps([{"node": "a"}, {"node": "b"}, {"node": "c"}]))
    assert main(["--url", db_url, "upsert", thread, str(path), "--user", user]) == 0
    monkeypatch.setattr(
        "sys.stdin", __import__("io").StringIO(json.dumps({"automation_trace": [{"node": "x"}]}))
    )
    assert main(["--url", db_url, "upsert", thread, "--user", user]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [tid, tid] and out[-1].endswith("1 entry")
    trace = db.load_trace_by_id(tid)
    assert (trace.trace_data, trace.name) == ([{"node": "x"}], "first")
    # bad input: a message, and what is stored stays
    path.write_text("[{oops")
    assert main(["--url", db_url, "upsert", thread, str(path), "--user", user]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["--url", db_url, "upsert", thread, str(tmp_path / "missing.json"), "--user", user]) == 2
    assert "cannot read" in capsys.readouterr().err
    path.write_text(json.dumps({"not": "a trace"}))
    assert main(["--url", db_url, "upsert", thread, str(path), "--user", user]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert db.load_trace_by_id(tid).trace_data == [{"node": "x"}]


def test_upsert_of_an_integer_too_long_to_read_is_a_message(db_url, ids, tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text('[{"n": ' + "9" * 5000 + "}]")
    assert main(["--url", db_url, "upsert", ids("th"), str(path), "--user", ids("cli")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
