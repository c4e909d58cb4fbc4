"""Serve the review app with its session cookie: `streamlit run serve.py` (what `xinstruct app` runs).

app.py is the app; this wraps it in Streamlit's ASGI entry point (st.App) with the two routes that set and clear the
HttpOnly session cookie (xinstruct/websession.py), so a reload or a reopened tab stays logged in.
"""

import streamlit as st

from xinstruct import websession

app = st.App("app.py", routes=websession.routes())
