"""Review guidelines: everyone reads them; curators edit them (markdown; each save is kept, the latest is shown)."""

import streamlit as st

from xinstruct import auth, render, review
from xinstruct.errors import XInstructError

user = auth.require("reviewer")
store = auth.get_store()

st.title("Guidelines")
text = review.get_guidelines(store)
if user.can("curator"):
    view, edit = st.tabs(["Read", "Edit"])
    with edit:
        new = st.text_area("Guidelines (markdown)", value=text, height=400, key="xi_guidelines_text")
        if st.button("Save guidelines", type="primary", key="xi_guidelines_save"):
            try:
                review.set_guidelines(store, new, user)
                st.success("Saved.")
                text = new
            except XInstructError as exc:
                st.error(f"Could not save: {render.md_escape(exc)}")
    with view:
        st.html(render.markdown_html(text))
else:
    st.html(render.markdown_html(text))
