"""Adjudicate for curators: items whose reviewers disagreed, with every review beside the source text; the curator
chooses the final version (one 'adjudicate' decision in the log). Thin page: xinstruct.curate and xinstruct.render."""

import uuid

import streamlit as st

from xinstruct import auth, curate, render, review, vocab
from xinstruct.errors import XInstructError

user = auth.require("curator")
store = auth.get_store()
ss = st.session_state

st.title("Adjudicate")
langs = render.language_filter("xi_adj_langs")
if ss.get("xi_adj_done"):
    st.success(ss.pop("xi_adj_done"))
items = curate.conflicts(store, langs)
if not items:
    st.info("No conflicts: every item with several reviews has reviewers who agree.")
    st.stop()

st.caption(f"{len(items)} item(s) in conflict" + (" (the first 200)" if len(items) >= 200 else ""))
index = st.selectbox("Item", range(len(items)), key="xi_adj_item", format_func=lambda i: (
    f"{render.lang_name(items[i]['lang'])} · {(items[i]['instruction'] or '')[:70]} · {items[i]['id']}"))
item = items[index]
cid = item["id"]
if ss.get("xi_adj_for") != cid:  # a new nonce per shown item: a retried click is recorded once
    ss.xi_adj_for, ss.xi_adj_nonce = cid, uuid.uuid4().hex

st.html(render.url_html(item.get("url")))
st.html(render.field_html(item["source_text"] or item["response"], item["lang"], label="Source text"))
st.html(render.field_html(item["instruction"], "en", label="Generated instruction"))
if item["response"] != item["source_text"]:
    st.html(render.field_html(item["response"], item["lang"], label="Response"))
st.html(render.suggestion_html(item["label"], item["score"], None))

st.subheader("Reviews")
edits = []
for d in item["decisions"]:
    with st.container(border=True):
        st.html(render.caption_html(("b", d["reviewer"]), f" · {d['action']} · {d['at']:%Y-%m-%d %H:%M}"))
        if d["action"] == vocab.EDIT:
            edits.append(d)
            if d["instruction"] != item["instruction"]:
                st.html(render.diff_html(review.word_diff(item["instruction"], d["instruction"]), "en"))
            if d["response"] != item["response"]:
                st.html(render.diff_html(review.word_diff(item["response"], d["response"]), item["lang"]))
        if d["reason"]:
            render.caption("reason: ", vocab.REJECT_REASONS.get(d["reason"], d["reason"]))
        if d["note"]:
            render.caption("note: ", d["note"])

st.subheader("Final decision")
options = ["accept as generated", *[f"take the edit by {d['reviewer']} (#{d['id']})" for d in edits], "edit myself",
           "reject"]
choice = st.radio("Decision", options, key=f"xi_adj_choice_{cid}", format_func=render.md_escape)
instruction = response = reason = note = None
if choice == "edit myself":
    base = edits[-1] if edits else {"instruction": item["instruction"], "response": item["response"]}
    instruction = st.text_area("Instruction", base["instruction"] or "", key=f"xi_adj_i_{cid}")
    response = st.text_area("Response", base["response"] or "", height=240, key=f"xi_adj_r_{cid}")
elif choice.startswith("take the edit by"):
    chosen = edits[options.index(choice) - 1]
    instruction, response = chosen["instruction"], chosen["response"]
elif choice == "reject":
    reason = st.selectbox("Reason", list(vocab.REJECT_REASONS), format_func=vocab.REJECT_REASONS.get,
                          key=f"xi_adj_reason_{cid}")
    note = st.text_input("Note", key=f"xi_adj_note_{cid}")

if st.button("Record the final decision", type="primary", key=f"xi_adj_save_{cid}"):
    action = vocab.ACCEPT if choice == "accept as generated" else vocab.REJECT if choice == "reject" else vocab.EDIT
    try:
        curate.adjudicate(store, cid, user, action, instruction=instruction, response=response, reason=reason,
                          note=note, request_id=f"adjudicate:{user.name}:{cid}:{ss.xi_adj_nonce}")
    except XInstructError as exc:
        st.error(render.md_escape(exc))
    else:
        ss.xi_adj_done = render.md_escape(f"Recorded: {choice} for {cid}.")
        ss.pop("xi_adj_item", None)
        st.rerun()
