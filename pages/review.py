"""Review one item at a time: accept, edit, reject with a reason, skip, undo. Keyboard: A E X S U; Ctrl+Enter / Esc.

Thin page: widgets, calls into xinstruct.review, HTML from xinstruct.render. Every write carries a request id made from the
shown item and the action, so pressing Retry after a failed write never records it twice.
"""

import time
import uuid

import streamlit as st

from xinstruct import auth, render, review
from xinstruct.errors import AccessDenied, InputError, XInstructError
from xinstruct.langs import LANGS

user = auth.require("reviewer")
store = auth.get_store()
ss = st.session_state


# -- state helpers ---------------------------------------------------------------------------------------------------
def show(item):
    """Make `item` the shown one (new request-id nonce); restore an unsaved edit draft if there is one."""
    ss.xi_item = item
    ss.xi_nonce = uuid.uuid4().hex
    ss.xi_mode = "view"
    if item:
        draft = item.get("draft")  # an unsaved edit from before a reload
        if draft:
            ss.xi_mode = "edit"
            ss[f"xi_ed_i_{item['id']}"] = draft.get("instruction") or ""
            ss[f"xi_ed_r_{item['id']}"] = draft.get("response") or ""
            ss.xi_draft_saved = (item["id"], ss[f"xi_ed_i_{item['id']}"], ss[f"xi_ed_r_{item['id']}"])
            ss.xi_flash = ("info", "Restored your unsaved edit of this item.")


def flash(kind, message):
    ss.xi_flash = (kind, message)


def forget_item():
    item = ss.pop("xi_item", None)
    if item:
        for prefix in ("xi_ed_i_", "xi_ed_r_", "xi_note_", "xi_lang_"):
            ss.pop(prefix + item["id"], None)
    ss.xi_mode = "view"


def attempt(job):
    """Run one write; on a store failure keep the job for Retry (same request id), never drop it silently."""
    try:
        if job["action"] == "undo":
            undone = review.undo_last(store, user, request_id=job["rid"])
        else:
            review.record_decision(store, job["cid"], user, job["action"], request_id=job["rid"], **job["kw"])
    except review.ItemGone as exc:
        ss.xi_failed = None
        forget_item()  # others completed it while it was open here: move on to the next item
        flash("warning", render.md_escape(exc))
        st.rerun()
    except (InputError, AccessDenied) as exc:
        ss.xi_failed = None
        flash("warning", render.md_escape(exc))
        st.rerun()
    except XInstructError as exc:
        ss.xi_failed = {**job, "error": str(exc)}
        st.rerun()
    ss.xi_failed = None
    if job["action"] == "edit":
        try:
            review.clear_draft(store, user, job["cid"])
        except XInstructError:
            pass
    if job["action"] == "undo":
        if undone is None:
            flash("info", "Nothing to undo.")
        else:
            flash("success", f"Undid your {undone['action']}; the item is back.")
            forget_item()
    else:
        done = {"accept": "Accepted", "edit": "Saved your edit", "reject": "Rejected", "skip": "Skipped"}
        flash("success", f"{done.get(job['action'], job['action'])}.")
        forget_item()
    st.rerun()


def act(action, **kw):
    item = ss.get("xi_item") or {}
    cid = item.get("id", "-")
    attempt({"action": action, "cid": cid, "kw": kw, "rid": review.request_id_for(user, cid, action, ss.get("xi_nonce"))})


# -- load ------------------------------------------------------------------------------------------------------------
if "xi_item" not in ss:
    try:
        show(review.next_item(store, user))
    except XInstructError as exc:
        st.error(f"Could not load the next item: {render.md_escape(exc)}")
        st.button("Try again", key="xi_reload", type="primary")
        st.stop()
item = ss.xi_item

# -- header: progress, messages, failed writes -------------------------------------------------------------------------
try:
    p = review.progress(store, user)
    render.caption("Reviewed today ", ("b", p["done_today"]), " · left in your queue ", ("b", p["left_in_queue"]),
                   f" · {user.name} ({', '.join(user.langs) if user.langs else 'all languages'})")
except XInstructError as exc:
    render.caption(f"progress unavailable: {exc}")

if ss.get("xi_flash"):
    kind, message = ss.pop("xi_flash")
    {"success": st.success, "info": st.info, "warning": st.warning}.get(kind, st.info)(message)

failed = ss.get("xi_failed")
if failed:
    st.error(f"Your {failed['action']} was NOT saved: {render.md_escape(failed['error'])}. Nothing is lost: "
             "press Retry "
             "(it is recorded once, however often you press it).")
    retry_col, drop_col = st.columns(2)
    if retry_col.button("Retry", key="xi_retry", type="primary"):
        attempt(failed)
    if drop_col.button("Discard this action", key="xi_discard"):
        ss.xi_failed = None
        st.rerun()

with st.expander("Guidelines", icon=":material/menu_book:"):
    if time.monotonic() - ss.get("xi_guidelines_at", -1e9) > 60:  # re-read at most once a minute
        ss.xi_guidelines, ss.xi_guidelines_at = review.get_guidelines(store), time.monotonic()
    st.html(render.markdown_html(ss.xi_guidelines))

if not item:
    st.success("Your queue is empty. Thank you!")
    c1, c2 = st.columns(2)
    if c1.button("Check again", key="xi_check", type="primary"):
        forget_item()
        st.rerun()
    if c2.button("Undo my last decision", key="xi_undo", shortcut="U"):
        act("undo")
    st.stop()

cid = item["id"]
mode = ss.get("xi_mode", "view")

# -- the item ----------------------------------------------------------------------------------------------------------
pair, source = st.columns(2, gap="medium")
with pair:
    if mode == "edit":
        ikey, rkey = f"xi_ed_i_{cid}", f"xi_ed_r_{cid}"
        ss.setdefault(ikey, item["instruction"] or "")
        ss.setdefault(rkey, item["response"] or "")
        new_i = st.text_area("Instruction (English)", key=ikey, height=110)
        new_r = st.text_area(f"Response · {render.lang_name(item['lang'])}", key=rkey, height=300)
        changed = (new_i, new_r) != (item["instruction"] or "", item["response"] or "")
        if changed and ss.get("xi_draft_saved") != (cid, new_i, new_r):
            try:
                review.save_draft(store, user, cid, new_i, new_r)
                ss.xi_draft_saved = (cid, new_i, new_r)
            except XInstructError as exc:
                st.warning(f"Draft not saved yet ({render.md_escape(exc)}); it is kept in this tab.")
        if changed:
            if new_i != (item["instruction"] or ""):
                st.caption("Your changes to the instruction")
                st.html(render.diff_html(review.word_diff(item["instruction"], new_i), "en"))
            if new_r != (item["response"] or ""):
                st.caption("Your changes to the response")
                st.html(render.diff_html(review.word_diff(item["response"], new_r), item["lang"]))
        else:
            st.caption("No changes yet. Edit the text, then press Save (Ctrl+Enter).")
        bar = st.container(horizontal=True)
        if bar.button("Save edit", key="xi_save", type="primary", shortcut="Ctrl+Enter"):
            act("edit", instruction=new_i, response=new_r)
        if bar.button("Cancel", key="xi_cancel", shortcut="Esc"):
            review.clear_draft(store, user, cid)
            ss.pop(ikey, None)
            ss.pop(rkey, None)
            ss.xi_mode = "view"
            st.rerun()
    else:
        st.html(render.field_html(item["instruction"], "en", css_class="xi-field xi-instruction",
                                  label="Instruction (English)"))
        st.html(render.field_html(item["response"], item["lang"], css_class="xi-field xi-response",
                                  label=f"Response · {render.lang_name(item['lang'])}"))
        st.html(render.suggestion_html(item["label"], item["score"], item["label_reason"]))
        if mode == "reject":
            note = st.text_input("Details (required for Other)", key=f"xi_note_{cid}")
            st.caption("Reject because (press 1-6):")
            bar = st.container(horizontal=True)
            for number, (code, label) in enumerate(review.REJECT_REASONS.items(), start=1):
                if bar.button(label, key=f"xi_reject_{code}", shortcut=str(number)):
                    act("reject", reason=code, note=note)
            if bar.button("Cancel", key="xi_cancel_reject", shortcut="Esc"):
                ss.xi_mode = "view"
                st.rerun()
        else:
            bar = st.container(horizontal=True)
            if bar.button("Accept", key="xi_accept", type="primary", shortcut="A"):
                act("accept")
            if bar.button("Edit", key="xi_edit", shortcut="E"):
                ss.xi_mode = "edit"
                st.rerun()
            if bar.button("Reject", key="xi_reject", shortcut="X"):
                ss.xi_mode = "reject"
                st.rerun()
            if bar.button("Skip", key="xi_skip", shortcut="S"):
                act("skip")
            if bar.button("Undo last", key="xi_undo", shortcut="U"):
                act("undo")

with source:
    same = (item["text"] or "") == (item["response"] or "")
    meta = [f"cluster: {item['cluster_label']}" if item.get("cluster_label") else None,
            f"reviews needed: {item.get('k', item['reviews_needed'])}",
            f"status: {item['review_status']}"]
    box = st.expander("Source web text (identical to the response)") if same and mode != "edit" else st.container()
    with box:
        if not same or mode == "edit":
            st.html(render.field_html(item["text"], item["doc_lang"] or item["lang"], css_class="xi-field xi-source",
                                      label="Source web text"))
        st.html(render.url_html(item["url"]))
        render.caption(" · ".join(m for m in meta if m))
    codes = list(LANGS)
    current = item["doc_lang"] if item["doc_lang"] in LANGS else item["lang"]
    new_lang = st.selectbox("Document language (correct it if wrong)", codes, index=codes.index(current),
                            format_func=render.lang_name, key=f"xi_lang_{cid}")
    if new_lang != current:
        try:
            review.set_document_lang(store, item["doc_id"], new_lang, user, candidate_id=cid,
                                     request_id=review.request_id_for(user, cid, f"lang-{new_lang}", ss.xi_nonce))
            flash("success", f"Marked as {render.lang_name(new_lang)}; it goes to those reviewers.")
            forget_item()
        except XInstructError as exc:
            flash("warning", f"Language not changed: {render.md_escape(exc)}")
            ss.pop(f"xi_lang_{cid}", None)
        st.rerun()
