"""Review one item at a time: accept, edit, reject with a reason, skip, undo. Keyboard: A E X S U, 1-6, Esc; Ctrl+Enter.

Thin page: widgets, calls into xinstruct.review, HTML from xinstruct.render, keys from xinstruct.keyboard. Every action
runs in a callback before the page is drawn, so one script run shows its result. Every write carries a request id made
from the shown item and the action, so pressing Retry after a failed write never records it twice. Keys come from one
browser listener (assets/review_keys.js) that queues a key pressed while the page is busy and applies it to the item it
was pressed on, or refuses it with a message; never silently.
"""

import time
import uuid

import streamlit as st

from xinstruct import auth, keyboard, render, review
from xinstruct import vocab as V
from xinstruct.errors import AccessDenied, InputError, XInstructError
from xinstruct.langs import LANGS

user = auth.require("reviewer")
store = auth.get_store()


@st.cache_data(ttl=120, show_spinner=False)
def _agreement_text(db: str, lang: str) -> str:
    """The evaluator's measured agreement with this language's reviewers (quality.suggestion_status), refreshed every
    two minutes: unproven until MIN_PROVEN reviews of the language."""
    from xinstruct.quality import suggestion_status

    return suggestion_status(store, lang).text
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


def current_mode() -> str:
    return "empty" if not ss.get("xi_item") else ss.get("xi_mode", "view")


# -- actions (callbacks: they run before the page is drawn) ------------------------------------------------------------
def attempt(job):
    """Run one write; on a store failure keep the job for Retry (same request id), never drop it silently."""
    try:
        if job["action"] == V.UNDO:
            undone = review.undo_last(store, user, request_id=job["rid"])
        else:
            review.record_decision(store, job["cid"], user, job["action"], request_id=job["rid"], **job["kw"])
    except review.ItemGone as exc:
        ss.xi_failed = None
        forget_item()  # others completed it while it was open here: move on to the next item
        flash("warning", render.md_escape(exc))
        return
    except (InputError, AccessDenied) as exc:
        ss.xi_failed = None
        flash("warning", render.md_escape(exc))
        return
    except XInstructError as exc:
        ss.xi_failed = {**job, "error": str(exc)}
        return
    ss.xi_failed = None
    if job["action"] == V.EDIT:
        try:
            review.clear_draft(store, user, job["cid"])
        except XInstructError:
            pass
    if job["action"] == V.UNDO:
        if undone is None:
            flash("info", "Nothing to undo.")
        else:
            flash("success", f"Undid your {undone['action']}; the item is back.")
            forget_item()
    else:
        done = {V.ACCEPT: "Accepted", V.EDIT: "Saved your edit", V.REJECT: "Rejected", V.SKIP: "Skipped"}
        flash("success", f"{done.get(job['action'], job['action'])}.")
        forget_item()


def act(action, **kw):
    item = ss.get("xi_item") or {}
    cid = item.get("id", "-")
    attempt({"action": action, "cid": cid, "kw": kw, "rid": review.request_id_for(user, cid, action, ss.get("xi_nonce"))})


def set_mode(mode):
    ss.xi_mode = mode


def reject_with(code):
    cid = (ss.get("xi_item") or {}).get("id", "-")
    act(V.REJECT, reason=code, note=ss.get(f"xi_note_{cid}", ""))


def save_edit():
    item = ss.get("xi_item") or {}
    cid = item.get("id", "-")
    act(V.EDIT, instruction=ss.get(f"xi_ed_i_{cid}", item.get("instruction") or ""),
        response=ss.get(f"xi_ed_r_{cid}", item.get("response") or ""))


def cancel_edit():
    cid = (ss.get("xi_item") or {}).get("id", "-")
    try:
        review.clear_draft(store, user, cid)
    except XInstructError as exc:
        flash("warning", f"Your draft could not be removed ({exc}); it may come back after a reload.")
    ss.pop(f"xi_ed_i_{cid}", None)
    ss.pop(f"xi_ed_r_{cid}", None)
    ss.xi_mode = "view"


def check_again():
    forget_item()


def discard_failed():
    ss.xi_failed = None


ACTIONS = {"accept": lambda: act(V.ACCEPT), "edit": lambda: set_mode("edit"), "reject": lambda: set_mode("reject"),
           "skip": lambda: act(V.SKIP), "undo": lambda: act(V.UNDO), "cancel": lambda: set_mode("view"),
           "cancel_edit": cancel_edit}


def on_key():
    """A key from the browser listener: applied to the item it was pressed on, once, or refused with a message."""
    try:
        press = ss["xi_keys"]["press"]
    except (KeyError, TypeError):
        return
    if press is None:
        return
    item = ss.get("xi_item") or {}
    action, refusal = keyboard.resolve(press, item_id=item.get("id", ""), mode=current_mode(),
                                       seen=ss.setdefault("xi_keys_seen", []))
    if isinstance(press, dict) and isinstance(press.get("id"), str):
        ss.xi_keys_ack = press["id"]
    if refusal:
        flash("warning", refusal)
    elif action and action.startswith("reject:"):
        reject_with(action.removeprefix("reject:"))
    elif action:
        ACTIONS[action]()


def keys_listener():
    """The browser listener with what it needs: the item on screen, the mode, its keys and the last key handled."""
    mode = current_mode()
    ss.xi_run = ss.get("xi_run", 0) + 1  # new data every run, so the listener always sees the latest ack
    keyboard.component()(key="xi_keys", on_press_change=on_key, data={
        "item": (ss.get("xi_item") or {}).get("id", ""), "mode": mode, "keys": keyboard.keys_for(mode),
        "hint": keyboard.MODE_HINT[mode], "ack": ss.get("xi_keys_ack", ""), "run": ss.xi_run})


def keys_cue():
    """Under the buttons whose keys the listener handles: "shortcuts are starting" until it has mounted (keys pressed
    before that never reach its queue), then "shortcuts on" (the listener marks the page; review.css swaps the text)."""
    st.html(render.keys_cue_html())


# -- load ------------------------------------------------------------------------------------------------------------
if "xi_item" not in ss:
    try:
        show(review.next_item(store, user))
    except XInstructError as exc:
        st.error(f"Could not load the next item: {render.md_escape(exc)}")
        st.button("Try again", key="xi_reload", type="primary")
        st.stop()
item = ss.xi_item
keys_listener()

# -- header: progress (filled in last: its query must not delay the item), messages, failed writes --------------------
progress_slot = st.empty()


def show_progress():
    try:
        p = review.progress(store, user)
        progress_slot.html(render.caption_html(
            "Reviewed today ", ("b", p["done_today"]), " · left in your queue ", ("b", p["left_in_queue"]),
            f" · {user.name} ({', '.join(user.langs) if user.langs else 'all languages'})"))
    except XInstructError as exc:
        progress_slot.html(render.caption_html(f"progress unavailable: {exc}"))


if ss.get("xi_flash"):
    kind, message = ss.pop("xi_flash")
    {"success": st.success, "info": st.info, "warning": st.warning}.get(kind, st.info)(message)

failed = ss.get("xi_failed")
if failed:
    st.error(f"Your {failed['action']} was NOT saved: {render.md_escape(failed['error'])}. Nothing is lost: "
             "press Retry "
             "(it is recorded once, however often you press it).")
    retry_col, drop_col = st.columns(2)
    retry_col.button("Retry", key="xi_retry", type="primary", on_click=attempt, args=(failed,))
    drop_col.button("Discard this action", key="xi_discard", on_click=discard_failed)


def guidelines():
    with st.expander("Guidelines", icon=":material/menu_book:"):
        if time.monotonic() - ss.get("xi_guidelines_at", -1e9) > 60:  # re-read at most once a minute
            ss.xi_guidelines, ss.xi_guidelines_at = review.get_guidelines(store), time.monotonic()
        st.html(render.markdown_html(ss.xi_guidelines))


if not item:
    st.success("Your queue is empty. Thank you!")
    c1, c2 = st.columns(2)
    c1.button("Check again", key="xi_check", type="primary", on_click=check_again)
    c2.button("Undo my last decision", key="xi_undo", shortcut="U", on_click=act, args=(V.UNDO,))
    keys_cue()
    guidelines()
    show_progress()
    st.stop()

cid = item["id"]
mode = ss.get("xi_mode", "view")

# -- the item: the pair and the decision first (in view without scrolling), the source beside it or below -------------
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
        bar = st.container(horizontal=True)
        bar.button("Save edit", key="xi_save", type="primary", shortcut="Ctrl+Enter", on_click=save_edit)
        bar.button("Cancel", key="xi_cancel", shortcut="Esc", on_click=cancel_edit)
        if changed:
            if new_i != (item["instruction"] or ""):
                st.caption("Your changes to the instruction")
                st.html(render.diff_html(review.word_diff(item["instruction"], new_i), "en"))
            if new_r != (item["response"] or ""):
                st.caption("Your changes to the response")
                st.html(render.diff_html(review.word_diff(item["response"], new_r), item["lang"]))
        else:
            st.caption("No changes yet. Edit the text, then press Save (Ctrl+Enter).")
    else:
        st.html(render.review_pair_html(item))
        if mode == "reject":
            st.caption("Reject because (press 1-6, Esc to go back):")
            bar = st.container(horizontal=True)
            for number, (code, label) in enumerate(review.REJECT_REASONS.items(), start=1):
                bar.button(label, key=f"xi_reject_{code}", shortcut=str(number), on_click=reject_with, args=(code,))
            bar.button("Cancel", key="xi_cancel_reject", shortcut="Esc", on_click=set_mode, args=("view",))
            keys_cue()
            st.text_input("Details (required for Other)", key=f"xi_note_{cid}")
        else:
            bar = st.container(horizontal=True)
            bar.button("Accept", key="xi_accept", type="primary", shortcut="A", on_click=act, args=(V.ACCEPT,))
            bar.button("Edit", key="xi_edit", shortcut="E", on_click=set_mode, args=("edit",))
            bar.button("Reject", key="xi_reject", shortcut="X", on_click=set_mode, args=("reject",))
            bar.button("Skip", key="xi_skip", shortcut="S", on_click=act, args=(V.SKIP,))
            bar.button("Undo last", key="xi_undo", shortcut="U", on_click=act, args=(V.UNDO,))
            keys_cue()
        agreement = _agreement_text(str(store.path), item["lang"])  # how far this evaluator has agreed with reviewers
        st.html(render.suggestion_html(item["label"], item["score"], agreement, reason=item["label_reason"]))

with source:
    st.html(render.source_html(item, show_text=mode == "edit"))
    meta = [f"cluster: {item['cluster_label']}" if item.get("cluster_label") else None,
            f"reviews needed: {item.get('k', item['reviews_needed'])}",
            f"status: {item['review_status']}"]
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

guidelines()
show_progress()
