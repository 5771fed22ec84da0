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
