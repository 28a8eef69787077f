"""The dashboard's entry point: `streamlit run dashboard/app.py` (what `inferwatch dashboard` runs).

Reads INFERWATCH_CONFIG (default inferwatch.yaml) for the database, target order and dashboard
URL; INFERWATCH_DATABASE overrides the database. Pages live in views/, not pages/, so Streamlit
does not also discover them on its own. Emails link to `/target?name=...` and
`/incident?id=N`, hence url_path.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import streamlit as st

try:
    import dashboard  # noqa: F401  (installed, or run from the repository root)
except ImportError:  # `streamlit run` from a checkout puts only this folder on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import widgets

# A local favicon: otherwise the pages' Material icons are fetched from Google's CDN, which a
# wall screen on an internal network may not reach.
st.set_page_config(
    page_title="inferwatch", page_icon=Path(__file__).with_name("favicon.svg"), layout="wide"
)
widgets.keep_shared_widgets()

page = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(
            "views/target.py", title="Target", icon=":material/monitor_heart:", url_path="target"
        ),
        st.Page(
            "views/incidents.py", title="Incidents", icon=":material/history:", url_path="incidents"
        ),
        st.Page("views/alerts.py", title="Alerts", icon=":material/mail:", url_path="alerts"),
        st.Page(
            "views/incident.py",
            title="Incident",
            icon=":material/report:",
            url_path="incident",
            visibility="hidden",  # reached by its links (?id=N), not from the menu
        ),
    ]
)
try:
    page.run()
except Exception:  # the last line of defence: never a traceback on the wall screen
    logging.getLogger("inferwatch.dashboard").exception("dashboard page failed")
    st.error(widgets.SORRY, icon=":material/error:")
