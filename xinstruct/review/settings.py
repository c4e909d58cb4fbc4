"""What curators set for review (k and lease length per language, the guidelines) and reviewers' unsaved drafts.

k is the number of completed reviews that must agree before an item is final; the lease is how long an item a reviewer
was shown stays reserved for them. Both are per language (a language with few reviewers may need a long lease and k 1;
one where agreement is being measured, k 2). Curators change them on the Reviewers page or with
`xinstruct review settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..auth import User, authorize
from ..errors import InputError
from ..langs import LANGS
from ..store import Store, Tx
from ..store import review as db
from . import cache, locks
from .rules import derive_state, k_for

MAX_K = 20  # more agreeing reviews than this is a typo, not a policy
MAX_LEASE_MINUTES = 24 * 60
DEFAULT_K = db.DEFAULT_K
DEFAULT_LEASE_MINUTES = db.DEFAULT_LEASE_SECONDS // 60

DEFAULT_GUIDELINES = """\
### How to review

Each item is an **English instruction** written by a model for a **native web text** (the response). Read the source text,
then decide whether the response is a good answer to the instruction.

- **Accept** (`A`) when the instruction fits the text and the text is a useful, safe answer.
- **Edit** (`E`) when a small change makes it good: usually rewrite the instruction; trim boilerplate from the response
  (menus, ads, "read more"). Never translate the response. `Ctrl+Enter` saves, `Esc` cancels.
- **Reject** (`X`, then `1`-`6`) when it cannot be fixed: wrong language, not an answer, unsafe, personal data, poor
  quality, or other (describe it).
- **Skip** (`S`) when you are unsure; someone else will review it.
- **Undo** (`U`) takes back your last decision.

The evaluator's label and score are only a suggestion.
"""


# -- k and leases ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewSettings:
    """One language's review settings as shown to curators (`stored`: False when it runs on the defaults)."""

    lang: str
    k: int
    lease_minutes: float
    stored: bool = False
    updated_by: str | None = None


def k_settings(tx: Tx) -> dict[str, int]:
    """k per language, for the languages that set one (`k_for` applies the default and the candidate's own need)."""
    return db.ks(tx)


def review_settings(store: Store) -> list[ReviewSettings]:
    """The settings of all ten languages, defaults included, in LANGS order."""
    with store.session() as tx:
        stored = db.lang_settings(tx)
    out = []
    for lang in LANGS:
        s = stored.get(lang)
        out.append(ReviewSettings(lang, DEFAULT_K, DEFAULT_LEASE_MINUTES) if s is None else
                   ReviewSettings(lang, s.k, s.lease_seconds / 60, True, s.updated_by))
    return out


def _check_int(name: str, value, low: int, high: int, hint: str) -> int:
    try:
        number = int(value)
        exact = number == value or (isinstance(value, str) and str(number) == value.strip())
    except (TypeError, ValueError):
        exact = False
    if not exact or isinstance(value, bool) or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, not {value!r}", hint=hint)
    return number


def set_review_settings(store: Store, user: User, lang: str, *, k: int | None = None,
                        lease_minutes: int | None = None) -> ReviewSettings:
    """Set a language's k and/or lease length (curators). Returns the language's settings as they are now.

    A new k applies at once to the items still waiting for reviews: an item 'in_review' that already has as many agreeing
    reviews as the new k becomes final (without this, lowering k would strand such items: nobody is shown them again).
    Items already accepted, edited, rejected or in conflict keep their outcome. A new lease length applies to the
    claims made from now on.
    """
    user = authorize(user, "curator", store)
    code = (lang or "").strip().lower()
    if code not in LANGS:
        raise InputError(f"unknown language code {lang!r}", hint=f"use one of {', '.join(LANGS)}")
    if k is None and lease_minutes is None:
        raise InputError("nothing to change", hint="give k (reviews needed), the lease length in minutes, or both")
    if k is not None:
        k = _check_int("k (reviews needed)", k, 1, MAX_K, "1 lets one review decide an item; 2 or more ask that many "
                       "reviewers to agree")
    if lease_minutes is not None:
        lease_minutes = _check_int("the lease length in minutes", lease_minutes, 1, MAX_LEASE_MINUTES,
                                   "how long an item shown to a reviewer stays reserved for them; 10 is the default")
    locks.ensure_counter(store, code)

    def write(tx: Tx) -> None:
        locks.bump(tx, code)  # conflicts with claims and decisions of the language in flight: they retry with the new k
        db.save_lang_settings(tx, code, k=k, lease_seconds=None if lease_minutes is None else lease_minutes * 60,
                              by=user.name)
        if k is not None:
            _rederive_in_review(tx, code)

    with locks.serial(store, [code]):
        store.write(write)
        cache.invalidate(store, [code])
    return next(s for s in review_settings(store) if s.lang == code)


def _rederive_in_review(tx: Tx, lang: str) -> None:
    ks = db.ks(tx)
    waiting = db.review_states(tx, lang, ["in_review"])
    for start in range(0, len(waiting), 2048):
        chunk = waiting[start:start + 2048]
        logs = db.decision_logs(tx, [row[0] for row in chunk])
        for cid, reviews_needed, status, final_instruction, final_response in chunk:
            state = derive_state(logs.get(cid, []), k_for(lang, reviews_needed, ks))
            if (state["review_status"], state["final_instruction"], state["final_response"]) != (
                    status, final_instruction, final_response):
                db.set_review_state(tx, cid, state["review_status"], state["final_instruction"], state["final_response"])


def set_k(store: Store, lang: str, k: int, user: User) -> None:
    """Set a language's k (curators); `set_review_settings` sets the lease length too."""
    set_review_settings(store, user, lang, k=k)


# -- drafts ----------------------------------------------------------------------------------------------------------
def save_draft(store: Store, user: User, candidate_id: str, instruction: str, response: str) -> None:
    """Keep a reviewer's unsaved edit, so that a reload or a lost connection does not lose it."""
    store.write(lambda tx: db.save_draft(tx, user.name, candidate_id, instruction, response))


def load_draft(store: Store, user: User, candidate_id: str) -> dict | None:
    """The user's unsaved edit of this candidate ({instruction, response}) or None. next_item returns it as 'draft'."""
    with store.session() as tx:
        return db.draft(tx, user.name, candidate_id)


def clear_draft(store: Store, user: User, candidate_id: str) -> None:
    store.write(lambda tx: db.clear_draft(tx, user.name, candidate_id))


# -- guidelines ------------------------------------------------------------------------------------------------------
def get_guidelines(store: Store) -> str:
    """The guidelines in force (markdown); the built-in ones until a curator saves their own."""
    with store.session() as tx:
        return db.guidelines(tx) or DEFAULT_GUIDELINES


def set_guidelines(store: Store, text: str, user: User) -> None:
    """Save new guidelines (curators); earlier versions stay in the store. Empty text restores the built-in ones."""
    user = authorize(user, "curator", store)
    store.write(lambda tx: db.save_guidelines(tx, text or "", user.name))
