"""tracedb dashboard: ``streamlit run app.py``.

The navigation, the sidebar and the pages' frame are in ``dashboard/navigation.py``, so
that a page Streamlit runs on its own can run the same frame.
"""

from __future__ import annotations

from dashboard import navigation

navigation.run_app()
