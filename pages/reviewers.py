"""Reviewers for curators: throughput per reviewer and day, and agreement where an item had several reviewers.
Thin page: data from xinstruct.curate.reviewer_stats."""

import streamlit as st

from xinstruct import auth, curate, render

user = auth.require("curator")
store = auth.get_store()

st.title("Reviewers")
langs = render.language_filter("xi_rv_langs")
stats = curate.reviewer_stats(store, langs)


def fmt(value):
    return "–" if value is None else f"{value:.3f}"


a, b, c = st.columns(3)
a.metric("Krippendorff's alpha", fmt(stats.alpha), help="Nominal, over items with two or more verdicts; categories as "
         "the review rule counts agreement: accept, reject, or an edit to one particular text.")
b.metric("Alpha, keep vs reject", fmt(stats.alpha_keep), help="Accept and any edit count as the same verdict.")
c.metric("Items with several verdicts", stats.multi_reviewed)
if stats.multi_reviewed == 0:
    st.caption("Agreement needs items reviewed by two or more people: raise k for a language on the review settings.")

if stats.reviewers.empty:
    st.info("No decisions yet.")
    st.stop()

table = stats.reviewers.rename(columns={"per_day": "per active day", "pairwise_agreement": "agreement with others",
                                        "pairs": "shared items"})
st.dataframe(table, hide_index=True,
             column_config={"agreement with others": st.column_config.NumberColumn(format="%.2f"),
                            "per active day": st.column_config.NumberColumn(format="%.1f")})
st.caption("Decisions count every logged action (accept, edit, reject, skip, undo, curator actions). Agreement with "
           "others: the share of shared items on which this reviewer's verdict matched the other reviewer's.")

st.subheader("Decisions per day")
st.bar_chart(stats.per_day, x="day", y="decisions", color="reviewer", stack=True)
