"""Serve the review app with its session cookie: `streamlit run serve.py` (what `xinstruct app` runs).

app.py is the app; this wraps it in Streamlit's ASGI entry point (st.App) with the two routes that set and clear the
HttpOnly session cookie (xinstruct/websession.py), so a reload or a reopened tab stays logged in.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from xinstruct import websession

# app.py defines its pages with st.navigation (only the login page before login). Streamlit otherwise treats the first
# run of a fresh server as an old-style multipage app and sends the names of the files in pages/ to the browser before
# app.py has run; st.navigation sets this same flag on its first call.
PagesManager.uses_pages_directory = False

app = st.App("app.py", routes=websession.routes())
