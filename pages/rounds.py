"""Rounds (admin): run feedback from the latest decisions, start the next round, compare rounds."""

import pandas as pd
import streamlit as st

from xinstruct import auth, feedback, judge_report, render, vocab
from xinstruct.store import judging as judging_store
from xinstruct.errors import XInstructError

user = auth.require("admin")
store = auth.get_store()

st.title("Rounds")
st.caption("Each round of review should need fewer corrections: acceptance up, edit rate and distance down, "
           "evaluator-human AUC up.")

report = pd.DataFrame(feedback.round_report(store))
RATE_FORMATS = dict(zip(vocab.RATE_COLUMNS, ("percent", "percent", "%.1f")))  # vocab.rates and the edit distance


def rate_columns(columns) -> dict:
    """Rates as percentages, distances with one decimal (as the Overview page shows them)."""
    return {c: st.column_config.NumberColumn(c, format=RATE_FORMATS[c.split(" ")[0]])
            for c in columns if c.split(" ")[0] in RATE_FORMATS}



if report.empty:
    st.info("No reviewed candidates yet: the report appears after the first decisions.")
else:
    st.subheader("Round report")
    st.dataframe(report, hide_index=True, use_container_width=True, column_config=rate_columns(report.columns))
    st.caption(vocab.RATES_CAPTION)
    rounds = sorted(report["round"].unique())
    if len(rounds) >= 2:
        last, prev = rounds[-1], rounds[-2]
        cols = ["lang", *vocab.RATE_COLUMNS, "evaluator_auc"]
        both = report[report["round"] == last][cols].merge(
            report[report["round"] == prev][cols], on="lang", suffixes=(f" r{last}", f" r{prev}"))
        st.subheader(f"Round {last} against round {prev}")
        st.dataframe(both, hide_index=True, use_container_width=True,
                     column_config=rate_columns(both.columns))

st.subheader("Feedback")
st.write("Fit the evaluator's calibration on the human decisions, collect refinement examples and generator data.")
train = st.checkbox("Also train a new generator version (minutes on CPU; better on a GPU machine with the CLI)",
                    key="xi_rounds_train")
if st.button("Run feedback", type="primary", key="xi_rounds_feedback"):
    try:
        with st.spinner("Fitting..."):
            result = feedback.feedback(store, train=train)
        st.success(render.md_escape(
            f"Calibration: {result['calibration'] or 'not enough decisions yet'}; "
            f"{result['refine_examples']} refinement examples; {result['generator_pairs']} generator pairs; "
            f"new generator: {result['generator'] or '-'}"))
        rows = [{"lang": lang, **{k: v for k, v in fit.items() if k != "calibration"}}
                for lang, fit in result["languages"].items()]
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
    except XInstructError as exc:
        st.error(f"Feedback failed, nothing was changed: {render.md_escape(exc)}")

st.subheader("Next round")
st.write("Records round N+1 with the latest generator and calibration. Generation itself runs from the command line "
         "(`xinstruct round new`), on this machine or a GPU machine, while reviewers keep working.")
if st.button("Start next round", key="xi_rounds_new"):
    info = feedback.new_round(store)
    st.success(render.md_escape(f"Round {info['round']} started: generator {info['generator'] or 'embedded default'}, "
                                f"evaluator {info['evaluator'] or 'uncalibrated'}."))

st.subheader("Model comparisons")
st.write("Does the reviewed data make a better model? Models tuned on two exports answer the same questions; a judge "
         "scores both answers in both orders (`xinstruct eval answer`, `xinstruct eval judge`). A pair is a win for A "
         "only if A wins in both orders, a loss only if it loses in both, a tie otherwise.")
stored = judging_store.comparisons(store)
if not stored:
    st.info("No comparisons yet: run `xinstruct eval judge --a A --b B --judge MODEL` from the command line.")
else:
    labels = [f"{c['model_a']} vs {c['model_b']} · judge {c['judge']} · {c['question_set']} · {c['prompt_version']}"
              for c in stored]
    pick = st.selectbox("Comparison", range(len(stored)), format_func=lambda i: labels[i], key="xi_rounds_comparison")
    chosen = stored[pick]

    @st.cache_data(ttl=600, show_spinner="Measuring the answers...")
    def comparison_report(_store, path: str, a: str, b: str, judge: str, question_set: str, last) -> dict:
        """Cached per comparison and its last judgement (language ID over every answer takes seconds)."""
        return judge_report.report(_store, a, b, judge=judge, question_set=question_set)

    try:
        rep = comparison_report(store, str(store.path), chosen["model_a"], chosen["model_b"], chosen["judge"],
                                chosen["question_set"], str(chosen["last"]))
    except XInstructError as exc:
        st.error(f"The comparison cannot be shown: {render.md_escape(exc)}")
    else:
        st.dataframe(pd.DataFrame(judge_report.table(rep)), hide_index=True, use_container_width=True,
                     column_config={c: st.column_config.NumberColumn(c, format="percent")
                                    for c in ("win_rate", "loss_rate", "in_lang_a", "in_lang_b", "empty_a", "empty_b",
                                              "trunc_a", "trunc_b", "rep_a", "rep_b", "accept_a",
                                              "accept_b")})
        st.caption(render.md_escape(
            f"A = {rep['model_a']}, B = {rep['model_b']}. Intervals: {rep['interval']}. unparseable: pairs with an "
            "order whose judge output could not be read (bad_outputs counts the outputs); pending: an order not judged "
            "yet. Measures per model: in_lang (answers in the asked language, by language ID), empty, trunc (stopped "
            "at the token limit), rep (repeated word trigrams), chars (mean length); accept: the store's review "
            "acceptance rate in the language, shown when the model's data is an export of this store."))
        st.dataframe(pd.DataFrame(judge_report.model_rows(rep)), hide_index=True, use_container_width=True)
        if rep["unparseable_total"]:
            with st.expander(f"{rep['unparseable_total']} unparseable judge outputs"):
                st.dataframe(pd.DataFrame(rep["unparseable"]), hide_index=True, use_container_width=True)
