"""Overview for curators: per language documents, candidates, review progress and rates; charts of scores, progress,
the instruction map and the most common instruction topics. Thin page: data from xinstruct.curate."""

import pandas as pd
import streamlit as st

from xinstruct import auth, curate, palette, render, vocab
from xinstruct.curate import CandidateFilter

user = auth.require("curator")
store = auth.get_store()

st.title("Overview")
langs = render.language_filter("xi_ov_langs")
rows = curate.overview(store, langs)
if not rows:
    st.info("Nothing in the store yet: ingest native text with `xinstruct ingest`, then generate candidates.")
    st.stop()


def bars(frame, empty: str, **encoding):
    """One stacked bar chart in the status palette, or a caption saying why there is none."""
    if frame.empty:
        st.caption(empty)
    else:
        st.altair_chart(palette.stacked_bars(frame, **encoding), width="stretch")


def pct(value):
    return None if value is None else round(100 * value, 1)


table = pd.DataFrame([{
    "language": render.lang_name(r["lang"]),
    "docs kept": r["docs_kept"],
    "docs dropped": r["docs_dropped"],
    "candidates": r["candidates"],
    **{label: r["labels"][label] for label in (*vocab.LABELS, vocab.UNLABELED)},
    **{status.replace("_", " "): r["status"][status] for status in vocab.STATUSES},
    "acceptance %": pct(r["acceptance_rate"]),
    "edit %": pct(r["edit_rate"]),
    "mean edit distance": None if r["mean_edit_distance"] is None else round(r["mean_edit_distance"], 1),
} for r in rows])
st.dataframe(table, hide_index=True)
st.caption(vocab.RATES_CAPTION)

dropped = pd.DataFrame([{"language": render.lang_name(r["lang"]), "reason": reason, "documents": n}
                        for r in rows for reason, n in r["dropped"].items()])
with st.expander("Dropped documents by reason"):
    if dropped.empty:
        st.caption("No document was dropped.")
    else:
        st.dataframe(dropped.pivot_table(index="language", columns="reason", values="documents", fill_value=0))

st.subheader("Review status")
status = pd.DataFrame([{"language": r["lang"], "status": s, "candidates": n}
                       for r in rows for s, n in r["status"].items() if n])
bars(status, "No candidates yet.", x="language", y="candidates", color="status")

filt = CandidateFilter(langs=tuple(langs or ()))
left, right = st.columns(2)
with left:
    st.subheader("Evaluator score by human decision")
    bars(curate.score_histogram(store, filt), "No scored candidates yet.", x="bin", y="candidates", color="decision")
with right:
    st.subheader("Decisions per day")
    prog = curate.progress(store, langs)
    bars(prog.assign(day=prog["day"].astype(str)) if not prog.empty else prog, "No decisions yet.",
         x="day", y="decisions", color="action")

st.subheader("Instruction map")
points = curate.embedding_map(store, filt)
if points.empty:
    st.info(curate.EMPTY_MAP_MESSAGE)
else:
    st.altair_chart(palette.scatter(points, x="x", y="y", color="review_status", tooltip=["review_status", "lang"]),
                    width="stretch")
    st.caption(f"{len(points)} instructions, PCA of their embeddings, coloured by review status.")

st.subheader("Top instruction topics (verb and object)")
topics = curate.top_topics(store, filt, n=20)
if topics.empty:
    st.caption("No instructions yet.")
else:
    topics["topic"] = (topics["verb"] + " " + topics["object"]).str.strip()
    st.bar_chart(topics, x="topic", y="candidates", horizontal=True, sort="-candidates")
