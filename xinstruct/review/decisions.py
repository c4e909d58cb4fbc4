"""Recording decisions: accept / edit / reject / skip / undo by reviewers, curator actions, and language corrections.

The `decisions` table is an append-only log. After every decision the candidate's `review_status`, `final_instruction`
and `final_response` are re-derived from its whole log by the pure `derive_state` in the same transaction, so a retry,
an undo or a curator's adjudication never leaves the candidate half updated. Every write carries an optional
`request_id` (idempotency key): a retried request records nothing new and returns the first decision's id.
"""

from __future__ import annotations

from datetime import timedelta

from ..auth import User, authorize, utcnow
from ..errors import AccessDenied, InputError, StoreError
from ..langs import LANGS
from ..store import Store, Tx, to_json
from ..store import review as db
from . import cache, locks
from .rules import (
    ACTIONS,
    COMPLETING,
    CURATOR_ACTIONS,
    FINAL_STATUSES,
    REJECT_REASONS,
    REVIEW_ACTIONS,
    UNDOABLE,
    derive_state,
    effective_decisions,
    k_for,
    word_diff,
)


class ItemGone(InputError):
    """The item was completed by others while it was open here (e.g. a tab left open past its lease)."""


def _existing(store: Store, request_id: str | None) -> int | None:
    if not request_id:
        return None
    with store.session() as tx:
        return db.decision_for_request(tx, request_id)


def record_decision(store: Store, candidate_id: str, user: User, action: str, *, instruction: str | None = None,
                    response: str | None = None, reason: str | None = None, note: str | None = None,
                    request_id: str | None = None) -> int:
    """Append one decision and re-derive the candidate's review state, in one transaction; returns the decision id.

    A retry with the same `request_id` records nothing and returns the first id. accept/edit/reject/skip/undo need the
    reviewer role and the candidate's language; bulk_accept/send_to_review/adjudicate need a curator. reject needs a
    `reason` from REJECT_REASONS ('other' needs a `note`). An edit that changes nothing is recorded as an accept. An
    adjudicate with a `reason` rejects; with a changed instruction/response it edits; otherwise it accepts.
    """
    user = authorize(user, "reviewer", store)
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")
    if action in CURATOR_ACTIONS:
        user = authorize(user, "curator", store)
    note = (note or "").strip() or None
    if action == "reject" or (action == "adjudicate" and reason):
        if reason not in REJECT_REASONS:
            raise InputError(f"unknown reject reason {reason!r}", hint=f"use one of {', '.join(REJECT_REASONS)}")
        if reason == "other" and not note:
            raise InputError("a reject with reason 'other' needs a description", hint="say what is wrong in the note")
    elif action not in ("adjudicate",):
        reason = reason or None
    if action == "edit" and instruction is None and response is None:
        raise InputError("an edit needs a new instruction or response")
    with store.session() as tx:
        found = db.decision_for_request(tx, request_id)
        lang = None if found is not None else db.candidate_lang(tx, candidate_id)
    if found is not None:
        return found
    if lang is None:
        raise InputError(f"no candidate {candidate_id!r}")
    if not user.can_review(lang):
        raise AccessDenied(f"{user.name} reviews {', '.join(user.langs)}; this item is in {lang}")
    locks.ensure_counter(store, lang)

    def write(tx: Tx) -> int:
        prior = db.decision_for_request(tx, request_id)
        if prior is not None:
            return prior
        locks.bump(tx, lang)
        cur_instruction, cur_response, cur_lang, reviews_needed, old_status = db.decision_target(tx, candidate_id)
        outcome["old"] = old_status
        if cur_lang != lang:  # relabelled meanwhile
            if not user.can_review(cur_lang):
                raise AccessDenied(f"this item was relabelled to {cur_lang}, which {user.name} does not review")
        log = db.decision_log(tx, candidate_id)
        ks = db.ks(tx)
        if action in COMPLETING:  # a tab left open past its lease: others may have completed the item meanwhile
            done_by = {d["reviewer"] for d in effective_decisions(log) if d["action"] in COMPLETING}
            if user.name not in done_by and (old_status in FINAL_STATUSES
                                             or len(done_by) >= k_for(cur_lang, reviews_needed, ks)):
                raise ItemGone("other reviewers completed this item while it was open here; your decision was "
                               "not recorded", hint="go on with the next item")
        before = {"instruction": cur_instruction, "response": cur_response}
        act, after = action, None
        new_instruction = cur_instruction if instruction is None else instruction
        new_response = cur_response if response is None else response
        if act == "edit" and (new_instruction, new_response) == (cur_instruction, cur_response):
            act = "accept"
        if act in ("accept", "bulk_accept"):
            after = {"instruction": cur_instruction, "response": cur_response}
        elif act == "edit":
            after = {"instruction": new_instruction, "response": new_response,
                     "diff": {"instruction": word_diff(cur_instruction, new_instruction),
                              "response": word_diff(cur_response, new_response)}}
        elif act == "reject":
            after = {"reason": reason}
        elif act == "adjudicate":
            status = "rejected" if reason else (
                "edited" if (new_instruction, new_response) != (cur_instruction, cur_response) else "accepted")
            after = {"status": status, "instruction": new_instruction, "response": new_response}
            if status == "edited":
                after["diff"] = {"instruction": word_diff(cur_instruction, new_instruction),
                                 "response": word_diff(cur_response, new_response)}
        elif act == "undo":
            target = [d for d in effective_decisions(log) if d["reviewer"] == user.name]
            if not target:
                raise InputError("nothing of yours to undo on this item")
            after = {"undoes": int(target[-1]["id"]), "action": target[-1]["action"]}
        did = db.add_decision(tx, candidate_id=candidate_id, reviewer=user.name, action=act, before=to_json(before),
                              after=None if after is None else to_json(after), reason=reason, note=note,
                              request_id=request_id)
        log.append({"id": did, "reviewer": user.name, "action": act, "after": after, "reason": reason})
        state = derive_state(log, k_for(cur_lang, reviews_needed, ks))
        db.set_review_state(tx, candidate_id, state["review_status"], state["final_instruction"],
                            state["final_response"])
        outcome["status"], outcome["lang"] = state["review_status"], cur_lang
        if act in REVIEW_ACTIONS or act in CURATOR_ACTIONS:
            db.drop_lease(tx, candidate_id, user.name)
        if act == "edit" or (act == "adjudicate" and after["status"] == "edited"):
            db.add_human_version(tx, candidate_id, new_instruction, f"{act} by {user.name}")
        return did

    outcome: dict[str, str] = {}
    try:
        with locks.serial(store, [lang]):
            did = store.write(write)
            closed = (*FINAL_STATUSES, "conflict")
            if outcome.get("status") in closed:
                cache.drop(store, outcome["lang"], candidate_id)
            elif outcome.get("old") in closed:  # reopened (undo, send_to_review): read the order afresh
                cache.invalidate(store, [outcome["lang"]])
            return did
    except StoreError:
        found = _existing(store, request_id)  # a concurrent retry with the same request_id won
        if found is not None:
            return found
        raise


def last_decision(store: Store, user: User) -> dict | None:
    """The user's latest review decision still in force (what undo would take back)."""
    with store.session() as tx:
        return db.last_in_force(tx, user.name, UNDOABLE)


def undo_last(store: Store, user: User, *, request_id: str | None = None,
              lease_seconds: float | None = None) -> dict | None:
    """Take back the user's latest decision in force; returns that decision (or None). The item is leased back to the
    user (for `lease_seconds`, default the language's lease length), so next_item shows it again."""
    user = authorize(user, "reviewer", store)
    done = _existing(store, request_id)
    if done is not None:  # a retry of an undo that went through: report what it undid, change nothing
        with store.session() as tx:
            return db.undone_by(tx, done)
    last = last_decision(store, user)
    if last is None:
        return None
    record_decision(store, last["candidate_id"], user, "undo", request_id=request_id)

    def lease(tx: Tx) -> None:
        seconds = lease_seconds
        if seconds is None:
            lang = db.candidate_lang(tx, last["candidate_id"])
            seconds = db.lease_seconds(tx, lang) if lang else db.DEFAULT_LEASE_SECONDS
        db.put_lease(tx, last["candidate_id"], user.name, utcnow() + timedelta(seconds=seconds))

    store.write(lease)
    return last


def set_document_lang(store: Store, doc_id: str, lang: str, user: User, *, candidate_id: str | None = None,
                      request_id: str | None = None) -> int | None:
    """A reviewer says the document is in `lang`: documents.lang and the language of its candidates change (so the item
    goes to that language's reviewers); recorded as a 'relabel_lang' decision with before/after. Needs the document's
    current language among the user's languages."""
    user = authorize(user, "reviewer", store)
    lang = (lang or "").strip().lower()
    if lang not in LANGS:
        raise InputError(f"unknown language code {lang!r}", hint=f"use one of {', '.join(LANGS)}")
    found = _existing(store, request_id)
    if found is not None:
        return found
    with store.session() as tx:
        exists, old = db.document_lang(tx, doc_id)
        cands = db.document_candidates(tx, doc_id)
    if not exists:
        raise InputError(f"no document {doc_id!r}")
    langs_now = {old, *(c[1] for c in cands)} - {None}
    for code in langs_now:
        if not user.can_review(code):
            raise AccessDenied(f"{user.name} may not relabel a document in {code}")
    if old == lang and all(c[1] == lang for c in cands):
        return None
    target = candidate_id or (cands[0][0] if cands else f"doc:{doc_id}")
    for code in {*langs_now, lang}:
        locks.ensure_counter(store, code)

    def write(tx: Tx) -> int:
        for code in sorted({*langs_now, lang}):
            locks.bump(tx, code)
        db.relabel_document(tx, doc_id, lang)
        return db.add_decision(tx, candidate_id=target, reviewer=user.name, action="relabel_lang",
                               before=to_json({"doc_id": doc_id, "lang": old}),
                               after=to_json({"doc_id": doc_id, "lang": lang}), request_id=request_id)

    with locks.serial(store, {*langs_now, lang}):
        did = store.write(write)
        cache.invalidate(store, {*langs_now, lang})
        return did
