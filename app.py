"""The xinstruct review app (Streamlit router).

    streamlit run serve.py          # or: xinstruct app --port 8501 --db store/xinstruct.duckdb

Nothing but the login form is shown before login (not even page names). Every run re-reads the user from the store
(xinstruct.auth): a password or role change, disabling or deleting a user ends their sessions at their next click.
Served through serve.py (`xinstruct app`), the login survives a reload and a reopened tab (an HttpOnly session cookie).
Reviewers get Review, Guidelines and Account; curators and admins also get the curation pages that exist in pages/.
The database is $XINSTRUCT_DB (default store/xinstruct.duckdb).

Single sign-on (optional): with an [auth] section in .streamlit/secrets.toml (see Streamlit's st.login documentation:
redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url) the login screen also offers "Log in with single
sign-on"; the e-mail address the provider returns must be the name of a user created with `xinstruct users add`, whose
role and languages apply.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from xinstruct import auth, keyboard, render, review
from xinstruct.errors import StoreError
from xinstruct.store import env_busy_timeout, waiting

log = logging.getLogger("xinstruct.app")

ROOT = Path(__file__).resolve().parent
CURATOR_PAGES = [  # written by the curation, export and rounds work; listed only once the file exists
    ("overview", "Overview", ":material/monitoring:"),
    ("explore", "Explore", ":material/search:"),
    ("reviewers", "Reviewers", ":material/group:"),
    ("adjudicate", "Adjudicate", ":material/gavel:"),
    ("export", "Export", ":material/download:"),
    ("rounds", "Rounds", ":material/autorenew:"),
]

# An emoji favicon (a data: URL): a :material/...: icon makes every browser fetch the favicon from fonts.gstatic.com.
st.set_page_config(page_title="xinstruct review", page_icon="🌐", layout="wide")
st.html(render.style_tag())
wait_box = st.empty()  # "Waiting for <what> (n s)" while a store call waits for the database file


def report_wait(what: str | None, seconds: float) -> None:
    if what is None:
        wait_box.empty()
    else:
        wait_box.info(f"Waiting for {render.md_escape(what)} ({seconds:.0f} s)…", icon=":material/hourglass_top:")


def run_app() -> None:
    store = auth.get_store()
    user = auth.signed_in()  # re-read from the store on every run: role, languages, disabled, credentials version
    if user is None:
        # Only the login page exists for Streamlit until login: no page names in the sidebar, no page reachable by URL.
        def login_page():
            st.title("xinstruct review")
            auth.login_form(store)
            keyboard.preload()  # the Review page's key listener, loaded while the reviewer logs in

        st.navigation([st.Page(login_page, title="Log in", icon=":material/login:", default=True)],
                      position="hidden").run()
        st.stop()
    auth.cookie_sync()

    pages = [
        st.Page("pages/review.py", title="Review", icon=":material/rate_review:", default=True),
        st.Page("pages/guidelines.py", title="Guidelines", icon=":material/menu_book:"),
    ]
    if (ROOT / "pages" / "account.py").exists():
        pages.append(st.Page("pages/account.py", title="Account", icon=":material/person:"))
    if user.can("curator"):
        pages += [st.Page(f"pages/{name}.py", title=title, icon=icon)
                  for name, title, icon in CURATOR_PAGES if (ROOT / "pages" / f"{name}.py").exists()]

    nav = st.navigation(pages, position="hidden")  # listed below: .streamlit/config.toml hides Streamlit's own list
    with st.sidebar:
        for page in pages:
            st.page_link(page)
        render.caption("Logged in as ", ("b", user.name), f" ({user.role}) · "
                       f"{', '.join(user.langs) if user.langs else 'all languages'}")
        if st.button("Log out", key="xi_logout"):
            item = st.session_state.get("xi_item")
            if item:
                review.release(store, user, item["id"])
            auth.logout()
            st.rerun()
    nav.run()


# One page run waits at most XINSTRUCT_BUSY_TIMEOUT for the database in all (not per call), saying what it waits for.
# A store error on any page (database busy past that budget, unreadable, corrupt) is a message and a Retry, never a
# traceback (and .streamlit/config.toml sets showErrorDetails = "none" for anything else).
try:
    with waiting(env_busy_timeout(), report_wait):
        run_app()
except StoreError as exc:
    log.warning("page run failed on the store: %s", exc)
    wait_box.empty()
    st.error(f"The database is not available right now: {render.md_escape(exc)}\n\nNothing you entered was saved "
             "twice or lost: press Retry. If this keeps happening, tell whoever runs xinstruct.",
             icon=":material/database:")
    st.button("Retry", key="xi_store_retry", type="primary")
