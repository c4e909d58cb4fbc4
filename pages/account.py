"""Your account: who you are, what you review, change your password."""

import streamlit as st

from xinstruct import auth, render, review
from xinstruct.errors import XInstructError

user = auth.require("reviewer")
store = auth.get_store()

st.title("Account")
if st.session_state.get("xi_account_done"):
    st.success(st.session_state.pop("xi_account_done"))
st.html(render.caption_html(("b", user.name), f" · role {user.role} · languages: "
                             f"{', '.join(user.langs) if user.langs else 'all'}"))
p = review.progress(store, user)
st.write(f"Reviewed today: {p['done_today']} · left in your queue: {p['left_in_queue']}")
if st.button("Log out", key="xi_logout_account"):
    item = st.session_state.get("xi_item")
    if item:
        review.release(store, user, item["id"])  # give the shown item back to the queue
    auth.logout()
    st.rerun()

with st.form("xi_password", clear_on_submit=True):
    old = st.text_input("Current password", type="password", autocomplete="current-password")
    new = st.text_input("New password", type="password", autocomplete="new-password")
    again = st.text_input("New password again", type="password", autocomplete="new-password")
    if st.form_submit_button("Change password"):
        if new != again:
            st.error("The new passwords differ.")
        else:
            try:
                user = auth.change_password(store, user, old, new)  # ends every session of yours, here too
                auth.begin(store, user, keep_state=True)  # ... so this tab starts a new one
                st.session_state["xi_account_done"] = "Password changed. Your other sessions have ended."
                st.rerun()
            except XInstructError as exc:
                st.error(render.md_escape(exc))
