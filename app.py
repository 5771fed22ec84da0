"""tracedb dashboard: ``streamlit run app.py``."""

from __future__ import annotations

import psycopg
import streamlit as st

from dashboard import common
from tracedb import TraceDBError

st.set_page_config(page_title="tracedb", page_icon=":material/timeline:", layout="wide")

PAGES = [
    st.Page("pages/traces.py", title="Traces", icon=":material/table_rows:", url_path="traces", default=True),
    st.Page("pages/thread.py", title="Thread", icon=":material/timeline:", url_path="thread"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", url_path="overview"),
    st.Page("pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat"),
]
page = st.navigation(PAGES)

db = common.get_db()
with st.sidebar:
    st.caption("Database")
    st.text(db.server.label if db else common.server_label())
    if db is None:
        st.caption(":red[not reachable]")
    elif db.ping():
        st.caption(":green[answers]")
    else:
        st.caption(":red[does not answer]")
    st.caption("User")
    st.text(common.current_user())

try:
    page.run()
except (TraceDBError, psycopg.Error) as exc:
    st.error(f"The database failed this request: {exc}")
