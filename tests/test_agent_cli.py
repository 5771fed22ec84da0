"""``python -m agent``: one headless turn, its reply, and its trace in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.__main__ import main
from agent.tools import notes
from tracedb import AutomationTraceDB

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("notes_file")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_one_turn_is_answered_and_recorded(
    db: AutomationTraceDB, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _run(
        capsys,
        "what",
        "is",
        "17 * 23?",
        "--url",
        db_url,
        "--thread",
        "cli-t1",
        "--user",
        "ana",
        "--name",
        "arithmetic",
    )
    assert code == 0, err
    assert lines[0] == "17 * 23 = 391"
    assert lines[-1] == "thread: cli-t1"
    trace_id = lines[-2].removeprefix("trace: ")
    trace = db.load_trace_by_id(trace_id)
    assert trace is not None
    assert (trace.user_id, trace.provider_id, trace.thread_id, trace.name) == (
        "ana",
        "offline",
        "cli-t1",
        "arithmetic",
    )
    assert trace.status == "completed"
    nodes = [e["node"] for e in trace.trace_data]
    assert nodes == ["planner", "model", "tools", "model", "summarise"]
    assert trace.trace_data[2]["output"] == "391"


def test_a_second_turn_continues_the_thread(
    db: AutomationTraceDB, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first, _ = _run(capsys, "convert 5 km to miles", "--url", db_url, "--thread", "cli-t2")
    code, lines, _ = _run(capsys, "what did I ask before?", "--url", db_url, "--thread", "cli-t2", "--stream")
    assert code == 0
    assert lines[:2] == ["Earlier in this conversation you said:", "1. convert 5 km to miles"]
    assert lines[-2] == first[-2]  # one trace per thread
    trace = db.load_trace_by_id(lines[-2].removeprefix("trace: "))
    assert trace is not None
    assert [e["kind"] for e in trace.trace_data].count("plan") == 2


def test_a_failing_tool_is_recorded_as_an_error(
    db: AutomationTraceDB, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, _ = _run(capsys, "what is 1 / 0", "--url", db_url)
    assert code == 0
    assert lines[0] == "The calculator tool failed: division by zero."
    assert lines[-1].startswith("thread: cli-")
    trace = db.load_trace_by_id(lines[-2].removeprefix("trace: "))
    assert trace is not None
    failed = [e for e in trace.trace_data if e["status"] == "error"]
    assert [(e["node"], e["error"]) for e in failed] == [("tools", "ValueError: division by zero")]


def test_an_unavailable_model_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = _run(capsys, "hi", "--model", "nonsense:model")
    assert code == 2 and lines == []
    assert err.startswith("error: LLM_MODEL='nonsense:model' is not a model init_chat_model knows")
    assert "Traceback" not in err


def test_runs_as_a_module(db_url: str, notes_file: Path) -> None:
    env = {**os.environ, "TRACEDB_URL": db_url, notes.NOTES_ENV: str(notes_file)}
    env.pop("LLM_MODEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "save a note: ship it"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Saved note #1: ship it"
    assert done.stdout.splitlines()[1].startswith("trace: ")
