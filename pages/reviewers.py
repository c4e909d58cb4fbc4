"""Reviewers for curators: throughput per reviewer and day, agreement where an item had several reviewers, and the
review settings (k and lease length per language). Thin page: data from xinstruct.curate.reviewer_stats, settings
through xinstruct.review (which checks the curator role again on save)."""

import pandas as pd
import streamlit as st

from xinstruct import auth, curate, render, review
from xinstruct.errors import XInstructError
from xinstruct.langs import LANGS

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
    st.caption("Agreement needs items reviewed by two or more people: raise k for a language in the review settings "
               "below.")

if stats.reviewers.empty:
    st.info("No decisions yet.")
else:
    table = stats.reviewers.rename(columns={"per_day": "per active day", "pairwise_agreement": "agreement with others",
                                            "pairs": "shared items"})
    st.dataframe(table, hide_index=True,
                 column_config={"agreement with others": st.column_config.NumberColumn(format="%.2f"),
                                "per active day": st.column_config.NumberColumn(format="%.1f")})
    st.caption("Decisions count every logged action (accept, edit, reject, skip, undo, curator actions). Agreement "
               "with others: the share of shared items on which this reviewer's verdict matched the other reviewer's.")

    st.subheader("Decisions per day")
    st.bar_chart(stats.per_day, x="day", y="decisions", color="reviewer", stack=True)

st.subheader("Review settings")
st.caption("k: completed reviews that must agree before an item is final (a new k applies at once to items still "
           "waiting for reviews). Lease: how long an item shown to a reviewer stays reserved for them.")
ss = st.session_state


def save_settings(lang: str) -> None:
    """Runs before the page is drawn (button callback), so the table below already shows what was saved."""
    try:
        saved = review.set_review_settings(store, user, lang, k=ss[f"xi_rs_k_{lang}"],
                                           lease_minutes=ss[f"xi_rs_lease_{lang}"])
        ss.xi_rs_flash = ("success", f"Saved: {render.lang_name(lang)} needs k = {saved.k} and leases items for "
                                     f"{saved.lease_minutes:g} minutes.")
    except XInstructError as exc:
        ss.xi_rs_flash = ("error", f"Could not save: {render.md_escape(exc)}")


current = {s.lang: s for s in review.review_settings(store)}
st.dataframe(pd.DataFrame([{"language": render.lang_name(s.lang), "k": s.k, "lease (minutes)": f"{s.lease_minutes:g}",
                            "set by": s.updated_by or ("" if s.stored else "default")} for s in current.values()]),
             hide_index=True)
lang = st.selectbox("Language", list(LANGS), format_func=render.lang_name, key="xi_rs_lang")
now = current[lang]
left, right = st.columns(2)
left.number_input("Reviews needed (k)", min_value=1, max_value=review.MAX_K, value=now.k, step=1, key=f"xi_rs_k_{lang}")
right.number_input("Lease (minutes)", min_value=1, max_value=review.MAX_LEASE_MINUTES,
                   value=max(1, round(now.lease_minutes)), step=1, key=f"xi_rs_lease_{lang}")
st.button("Save review settings", type="primary", key="xi_rs_save", on_click=save_settings, args=(lang,))
flash = ss.pop("xi_rs_flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])
