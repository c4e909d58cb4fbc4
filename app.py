"""The xinstruct review app (Streamlit router).

    streamlit run app.py            # or: xinstruct app --port 8501 --db store/xinstruct.duckdb

Nothing but the login form is shown before login. Reviewers get Review, Guidelines and Account; curators and admins also
get the curation pages that exist in pages/. The database is $XINSTRUCT_DB (default store/xinstruct.duckdb).

Single sign-on (optional): with an [auth] section in .streamlit/secrets.toml (see Streamlit's st.login documentation:
redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url) the login screen also offers "Log in with single
sign-on"; the e-mail address the provider returns must be the name of a user created with `xinstruct users add`, whose
role and languages apply.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from xinstruct import auth, render, review

ROOT = Path(__file__).resolve().parent
CURATOR_PAGES = [  # written by the curation, export and rounds work; listed only once the file exists
    ("overview", "Overview", ":material/monitoring:"),
    ("explore", "Explore", ":material/search:"),
    ("reviewers", "Reviewers", ":material/group:"),
    ("adjudicate", "Adjudicate", ":material/gavel:"),
    ("export", "Export", ":material/download:"),
    ("rounds", "Rounds", ":material/autorenew:"),
]

st.set_page_config(page_title="xinstruct review", page_icon=":material/translate:", layout="wide")
st.html(render.style_tag())

store = auth.get_store()
user = auth.current_user()
if user is None:
    st.title("xinstruct review")
    auth.login_form(store)
    st.stop()

pages = [
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:", default=True),
    st.Page("pages/guidelines.py", title="Guidelines", icon=":material/menu_book:"),
]
if (ROOT / "pages" / "account.py").exists():
    pages.append(st.Page("pages/account.py", title="Account", icon=":material/person:"))
if user.can("curator"):
    pages += [st.Page(f"pages/{name}.py", title=title, icon=icon)
              for name, title, icon in CURATOR_PAGES if (ROOT / "pages" / f"{name}.py").exists()]

nav = st.navigation(pages)
with st.sidebar:
    render.caption("Logged in as ", ("b", user.name), f" ({user.role}) · "
                   f"{', '.join(user.langs) if user.langs else 'all languages'}")
    if st.button("Log out", key="xi_logout"):
        item = st.session_state.get("xi_item")
        if item:
            review.release(store, user, item["id"])
        auth.logout()
        st.rerun()
nav.run()
