"""app.py: navigation, the shared sidebar, and pages that stay usable without a database."""

from __future__ import annotations

from apptest_support import APP, dashboard_env, open_page
from psycopg.conninfo import conninfo_to_dict
from streamlit.testing.v1 import AppTest

PAGES = ("traces", "thread", "compare", "overview", "chat")
UNREACHABLE = "postgresql://tracer:s3cret-pw@127.0.0.1:9/tracedb"


def test_sidebar_names_the_database_and_the_user(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER="ana"):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    sidebar = [t.value for t in at.sidebar.text]
    assert conninfo_to_dict(db_url)["dbname"] in sidebar[0]
    assert sidebar[1] == "ana"
    assert ":green[answers]" in [c.value for c in at.sidebar.caption]
    assert [t.value for t in at.title] == ["Traces"]


def test_default_user_is_local(db_url: str) -> None:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_USER=None):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert at.sidebar.text[1].value == "local"


def test_unreachable_database_is_a_message_on_every_page() -> None:
    with dashboard_env(TRACEDB_URL=UNREACHABLE, TRACEDB_CONNECT_TIMEOUT="1"):
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert not at.exception
        sidebar = " ".join(t.value for t in at.sidebar.text) + " ".join(c.value for c in at.sidebar.caption)
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
