"""app.py: navigation, the shared sidebar, deep links through app.py, and pages that stay
usable without a database."""

from __future__ import annotations

import logging

import pytest
from apptest_support import APP, dashboard_env, open_page
from psycopg.conninfo import conninfo_to_dict
from streamlit.testing.v1 import AppTest

from dashboard import common, navigation

PAGES = ("traces", "thread", "compare", "overview", "chat", "settings")
UNREACHABLE = "postgresql://tracer:s3cret-pw@127.0.0.1:9/tracedb"


def sidebar_texts(at: AppTest) -> list[str]:
    return (
        [c.value for c in at.sidebar.caption]
        + [t.value for t in at.sidebar.text]
        + [c.value for c in at.sidebar.code]
    )


def test_sidebar_names_the_database_as_a_url_to_paste_and_the_user(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER="ana"):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    label = at.sidebar.code[0].value
    assert conninfo_to_dict(label) == conninfo_to_dict(db_url)  # the same database when pasted
    assert at.sidebar.text[0].value == "ana"
    assert ":green[answers]" in [c.value for c in at.sidebar.caption]
    assert [t.value for t in at.title] == ["Traces"]


def test_default_user_is_local(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=None):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert at.sidebar.text[0].value == "local"


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("postgresql:///tracedb", "postgresql:///tracedb"),
        ("postgresql://u:pw@h:5433/db?sslmode=require", "postgresql://u@h:5433/db?sslmode=require"),
        ("host=/var/run/postgresql dbname=ux_demo", "postgresql:///ux_demo?host=/var/run/postgresql"),
        (
            "postgresql:///ux?host=/var/run/postgresql&port=5999",
            "postgresql:///ux?host=/var/run/postgresql&port=5999",
        ),
        ("postgresql://ana%40corp:pw@db.example/traces", "postgresql://ana%40corp@db.example/traces"),
    ],
)
def test_database_label_is_a_url_without_the_password(url: str, label: str) -> None:
    assert common.database_label(url) == label
    expected = {k: v for k, v in conninfo_to_dict(url).items() if k != "password"}
    assert conninfo_to_dict(common.database_label(url)) == expected


def test_unreachable_database_is_a_message_on_every_page() -> None:
    with dashboard_env(TRACEDB_URL=UNREACHABLE, TRACEDB_CONNECT_TIMEOUT="1"):
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert not at.exception
        sidebar = " ".join(sidebar_texts(at))
        assert "127.0.0.1" in sidebar and "not reachable" in sidebar
        assert "s3cret" not in sidebar
        assert any("cannot be reached" in e.value for e in at.error)
        assert not any("s3cret" in e.value for e in at.error)
        for page in PAGES:
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, page
            assert any("cannot be reached" in e.value for e in at.error), page


def test_every_page_opens_on_an_empty_database(fresh_db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=fresh_db_url, LLM_MODEL=None):
        for page in PAGES:
            at = open_page(page)
            assert not at.exception, page
            assert [t.value for t in at.title] == [page.capitalize()]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_streamlit_runs_on_its_own_runs_inside_the_app(db_url: str, page: str) -> None:
    """Streamlit runs a page by itself when it picks its folder mode (a ``pages/`` folder
    exists and nothing has called ``st.navigation`` yet: a fresh server's first visitor on
    a deep link; every AppTest run). The page must then run inside the app's frame, with the
    sidebar, and the query parameters kept. This fails if Streamlit changes either."""
    with dashboard_env(TRACEDB_URL=db_url):
        at = open_page(page, trace="00000000-0000-4000-8000-000000000000")
    assert not at.exception
    assert "Database" in [c.value for c in at.sidebar.caption], "the page ran without app.py"
    assert [t.value for t in at.title] == [page.capitalize()]
    if page == "thread":
        assert any("No trace has this id" in e.value for e in at.error)


def test_only_runs_inside_framed_are_marked() -> None:
    assert not navigation.is_framed()
    with navigation.framed():
        assert navigation.is_framed()
    assert not navigation.is_framed()


def test_the_library_log_reaches_the_console_once(capfd: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("tracedb")
    level = logger.level

    def forget() -> None:
        for handler in [h for h in logger.handlers if getattr(h, "_tracedb_dashboard", False)]:
            logger.removeHandler(handler)

    forget()  # a store opened by an earlier test added it, writing to that test's stderr
    try:
        common.show_library_log()
        common.show_library_log()
        logger.info("embedded PostgreSQL is running; data in /somewhere")
        assert capfd.readouterr().err.count("data in /somewhere") == 1
    finally:
        forget()
        logger.setLevel(level)


def page_globals_read_by_functions(source: str) -> list[str]:
    """Names a page's functions read from the page's own top-level variables (not constants,
    imports, functions or classes): what a function should get as an argument instead."""
    import ast

    tree = ast.parse(source)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    variables = {
        name.id
        for statement in tree.body
        if not isinstance(statement, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
        for name in ast.walk(statement)
        if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store) and not name.id.isupper()
    }
    found = []
    for function in functions:
        local = {a.arg for a in ast.walk(function) if isinstance(a, ast.arg)}
        local |= {
            n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        found += [
            f"{function.name}: {name.id}"
            for name in ast.walk(function)
            if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load)
            if name.id in variables and name.id not in local
        ]
    return found


@pytest.mark.parametrize("page", PAGES)
def test_page_functions_get_what_they_use_as_arguments(page: str) -> None:
    from apptest_support import ROOT

    assert page_globals_read_by_functions((ROOT / "pages" / f"{page}.py").read_text()) == []


def test_the_check_of_page_functions_finds_a_page_global() -> None:
    source = "def show():\n    return db.get(1)\n\n\ndb = open_store()\nshow()\n"
    assert page_globals_read_by_functions(source) == ["show: db"]


def test_no_page_fails_on_entries_that_are_not_json_objects(fresh_db_url: str) -> None:
    from tracedb import AutomationTraceDB

    odd = [5, "plain text", [1, {"a": 2}], None, True, 1.5, {"node": "model", "output": "x"}, []]
    with AutomationTraceDB(fresh_db_url) as db:
        one = db.save_trace("local", None, "odd-1", odd, name="odd one")
        two = db.save_trace("local", None, "odd-2", odd[::-1], name="odd two")
    with dashboard_env(TRACEDB_URL=fresh_db_url, TRACEDB_USER="local", LLM_MODEL=None):
        for page, params in (
            ("traces", {}),
            ("thread", {"trace": one}),
            ("compare", {"a": one, "b": two}),
            ("overview", {}),
            ("chat", {}),
        ):
            at = open_page(page, **params)
            assert not at.exception, page
            if page == "chat":
                at.selectbox(key="chat_thread_widget").set_value("odd-1").run()
                assert not at.exception
