"""The review rules, pure: what the actions are, which decisions are in force, and the state a decision log derives.

Nothing here reads or writes the store, so the rules can be tested over random logs and reused by anything that holds
a log (the queue, curation reports, the reliability checks). `derive_state` is the rule of record; the SQL form that
curation keeps for speed (`store.curation.verdicts_sql`) is checked against it (tests/test_verdicts.py).
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..auth import User

# The words of the decision log and the review states are defined once, in the vocabulary.
from ..vocab import ACTIONS, CURATOR_ACTIONS, FINAL_STATUSES, REJECT_REASONS, REVIEW_ACTIONS, STATUS_OF  # noqa: E402,F401
from ..vocab import VERDICTS as COMPLETING  # noqa: E402  (a completed review; skip is not one)

# The decisions an undo can take back (its own kind and relabel_lang cannot be undone).
UNDOABLE = (*REVIEW_ACTIONS, *CURATOR_ACTIONS)


def _after(d: Mapping) -> dict:
    value = d.get("after")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    return value if isinstance(value, dict) else {}


def effective_decisions(decisions: Iterable[Mapping]) -> list[Mapping]:
    """The decisions still in force, in log order: an undo cancels its reviewer's latest decision not yet cancelled, and a
    send_to_review (still in force) cancels everything before it. relabel_lang rows are not review decisions."""
    stacks: dict[str, list[Mapping]] = {}
    order: list[Mapping] = []
    for d in sorted(decisions, key=lambda d: d["id"]):
        action = d["action"]
        if action == "undo":
            stack = stacks.get(d["reviewer"])
            if stack:
                undone = stack.pop()
                order = [x for x in order if x is not undone]
        elif action in REVIEW_ACTIONS or action in CURATOR_ACTIONS:
            stacks.setdefault(d["reviewer"], []).append(d)
            order.append(d)
    resets = [i for i, d in enumerate(order) if d["action"] == "send_to_review"]
    if resets:
        order = order[resets[-1] + 1:]
    return order


def derive_state(decisions: Iterable[Mapping], k: int) -> dict[str, Any]:
    """A candidate's review state from its decision log (pure; the rule of record).

    Each decision: {id, reviewer, action, after (dict or JSON), reason}. Returns {review_status, final_instruction,
    final_response, reviews} where reviews is the number of completed reviews counted.

    - The latest bulk_accept or adjudicate in force decides (curators).
    - Otherwise each reviewer's latest accept/edit/reject counts once. None: 'pending'; fewer than k: 'in_review';
      k or more that agree: 'accepted' / 'edited' / 'rejected'; else 'conflict'. Agreement: all accept, all reject (the
      reasons may differ), or all edit to the same text. Skips never count.
    """
    k = max(1, int(k))
    eff = effective_decisions(decisions)
    curator = [d for d in eff if d["action"] in ("bulk_accept", "adjudicate")]
    if curator:
        d = curator[-1]
        after = _after(d)
        status = "accepted" if d["action"] == "bulk_accept" else after.get("status", "accepted")
        if status not in FINAL_STATUSES:
            status = "accepted"
        keep = status != "rejected"
        return {
            "review_status": status,
            "final_instruction": after.get("instruction") if keep else None,
            "final_response": after.get("response") if keep else None,
            "reviews": 0,
        }
    latest: dict[str, Mapping] = {}
    for d in eff:
        if d["action"] in COMPLETING:
            latest[d["reviewer"]] = d
    reviews = sorted(latest.values(), key=lambda d: d["id"])
    state = {"review_status": "pending", "final_instruction": None, "final_response": None, "reviews": len(reviews)}
    if not reviews:
        return state
    if len(reviews) < k:
        state["review_status"] = "in_review"
        return state
    actions = {d["action"] for d in reviews}
    if len(actions) != 1:
        state["review_status"] = "conflict"
        return state
    action = actions.pop()
    afters = [_after(d) for d in reviews]
    if action == "edit":
        texts = {(a.get("instruction"), a.get("response")) for a in afters}
        if len(texts) != 1:
            state["review_status"] = "conflict"
            return state
    state["review_status"] = STATUS_OF[action]
    if action != "reject":
        state["final_instruction"] = afters[-1].get("instruction")
        state["final_response"] = afters[-1].get("response")
    return state


def k_for(lang: str, reviews_needed: int | None, ks: Mapping[str, int]) -> int:
    """Reviews needed: the larger of the language's k (review settings, default 1) and the candidate's reviews_needed."""
    return max(int(reviews_needed or 1), int(ks.get(lang, 1)))


def order_key(selected: bool | None, score: float | None, candidate_id: str) -> tuple:
    """Python twin of the queue's SQL order (store.review.ORDER): selected first, then |score - 0.5| smallest (no score
    last), then id."""
    return (0 if selected else 1, 1 if score is None else 0, 0.0 if score is None else abs(score - 0.5), candidate_id)


_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(a: str | None, b: str | None) -> list[tuple[str, str]]:
    """Word-level diff of a -> b as (op, text) pairs, op in equal/insert/delete; joining the equal+delete texts gives a,
    joining equal+insert gives b. Whitespace runs are tokens of their own."""
    ta, tb = _TOKEN.findall(a or ""), _TOKEN.findall(b or "")
    out: list[tuple[str, str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", "".join(ta[i1:i2]))
        else:
            add("delete", "".join(ta[i1:i2]))
            add("insert", "".join(tb[j1:j2]))
    return out


def request_id_for(user: User | str, candidate_id: str, action: str, nonce: str | None = None) -> str:
    """An idempotency key for one shown item + action (the page makes one nonce per showing)."""
    name = user.name if isinstance(user, User) else user
    return f"{name}:{candidate_id}:{action}:{nonce or uuid.uuid4().hex}"
