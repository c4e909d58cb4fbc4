"""Explore for curators: filter candidates, read them, act on many at once (each action is one logged decision per
candidate under the curator's name, after a confirmation). Thin page: data and actions from xinstruct.curate."""

import streamlit as st

from xinstruct import auth, curate, render
from xinstruct.curate import CandidateFilter
from xinstruct.vocab import BULK_ACCEPT, LABELS, SEND_TO_REVIEW, STATUSES, UNLABELED
from xinstruct.errors import XInstructError
from xinstruct.langs import LANGS

user = auth.require("curator")
store = auth.get_store()
ss = st.session_state
PAGE_SIZE = 50
ANYONE = "(anyone)"

st.title("Explore")

with st.expander("Filter", expanded=True):
    c1, c2, c3 = st.columns(3)
    langs = c1.multiselect("Languages", list(LANGS), format_func=render.lang_name, key="xi_ex_langs",
                           placeholder="All languages")
    labels = c2.multiselect("Evaluator label", [*LABELS, UNLABELED], key="xi_ex_labels", placeholder="Any label")
    statuses = c3.multiselect("Review status", list(STATUSES), key="xi_ex_statuses", placeholder="Any status")
    c4, c5, c6 = st.columns(3)
    low, high = c4.slider("Evaluator score", 0.0, 1.0, (0.0, 1.0), 0.01, key="xi_ex_score",
                          help="The full range also shows candidates without a score.")
    clusters = c5.multiselect("Clusters", curate.clusters(store, langs), key="xi_ex_clusters", placeholder="Any cluster")
    reviewer = c6.selectbox("Decided by", [ANYONE, *curate.reviewers(store)], key="xi_ex_reviewer")
    c7, c8 = st.columns([1, 2])
    agreement = c7.radio("Reviewers", ["any", "agree", "disagree"], horizontal=True, key="xi_ex_agreement",
                         help="Among items with verdicts from two or more reviewers.")
    search = c8.text_input("Text in instruction or response", key="xi_ex_search")

filt = CandidateFilter(
    langs=tuple(langs), labels=tuple(labels), statuses=tuple(statuses),
    min_score=low if (low, high) != (0.0, 1.0) else None, max_score=high if (low, high) != (0.0, 1.0) else None,
    clusters=tuple(clusters), reviewer=None if reviewer == ANYONE else reviewer, agreement=agreement,
    search=search or None)
ss["xi_curate_filter"] = filt  # the export page can reuse it

total = curate.count(store, filt)
pages = max(1, -(-total // PAGE_SIZE))
left, right = st.columns([3, 1])
# A new filter starts at page 1 (the widget key follows the filter).
page = right.number_input("Page", 1, pages, 1, key=f"xi_ex_page_{hash(filt)}") if pages > 1 else 1
left.markdown(f"**{total}** candidates" + (f" · page {page} of {pages}" if pages > 1 else ""))
rows = curate.search(store, filt, limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)
if rows.empty:
    st.info("No candidate matches this filter.")
else:
    st.dataframe(rows, hide_index=True, column_config={
        "score": st.column_config.NumberColumn(format="%.2f"),
        "instruction": st.column_config.TextColumn(width="large"),
        "response": st.column_config.TextColumn(width="large"),
    })

st.subheader("Bulk actions")
st.caption("Each action records one decision per candidate in the log, under your name. Accepting touches only pending "
           "candidates; sending back touches only decided or conflicting ones (their earlier decisions stop counting).")
b1, b2 = st.columns(2)
min_score = b1.number_input("Accept pending candidates with a score of at least", 0.0, 1.0, 0.9, 0.01,
                            key="xi_ex_bulk_min")
if b1.button("Accept above score…", key="xi_ex_bulk_accept"):
    ss.xi_bulk = (BULK_ACCEPT, float(min_score), filt)
if b2.button("Send decided candidates back to review…", key="xi_ex_bulk_review"):
    ss.xi_bulk = (SEND_TO_REVIEW, None, filt)

pending = ss.get("xi_bulk")
if pending:
    action, score, bulk_filter = pending
    n = curate.bulk_preview(store, bulk_filter, action, score)
    what = (f"accept {n} pending candidates with score ≥ {score:.2f}" if action == BULK_ACCEPT
            else f"send {n} decided candidates back to review")
    st.warning(f"Confirm: {what} (filter as shown above when you clicked).")
    yes, no = st.columns(2)
    if yes.button("Confirm", type="primary", key="xi_ex_bulk_yes", disabled=n == 0):
        bar = st.progress(0.0, text="recording decisions…")

        def advance(done, matched):
            bar.progress(min(1.0, done / max(matched, 1)), text=f"{done} of {matched}")

        try:
            if action == BULK_ACCEPT:
                result = curate.bulk_accept_above(store, bulk_filter, score, user, progress=advance)
            else:
                result = curate.bulk_send_to_review(store, bulk_filter, user, progress=advance)
        except XInstructError as exc:
            st.error(render.md_escape(exc))
        else:
            ss.xi_bulk_result = render.md_escape(result)
            ss.xi_bulk = None
            st.rerun()
    if no.button("Cancel", key="xi_ex_bulk_no"):
        ss.xi_bulk = None
        st.rerun()
if ss.get("xi_bulk_result"):
    st.success(ss.xi_bulk_result)
