"""The project's vocabulary: every label, status, action, reject reason and review metric, defined once.

Pages, reports, the dataset card, the CLI and the store's queries all name these constants instead of spelling the
strings again, so a status cannot be renamed in one place and silently keep its old spelling in another (a filter that
matches nothing, a chart with a category of its own). Pure data and pure functions: no imports from the project.

Words, by what they describe:

* evaluator labels of a candidate (`candidates.label`): good, flawed, bad;
* review statuses of a candidate (`candidates.review_status`, derived from the decision log by `review.derive_state`);
* decision actions (`decisions.action`), split into a reviewer's, a curator's and bookkeeping;
* reject reasons a reviewer picks;
* human labels of a reviewed draft (`quality`): accept, edit, reject;
* the review rates (`rates`): acceptance, edit rate, and the edit distance that goes with them.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------------
# Evaluator labels
# ---------------------------------------------------------------------------------------------------------------------
GOOD, FLAWED, BAD = "good", "flawed", "bad"
LABELS = (GOOD, FLAWED, BAD)
UNLABELED = "unlabeled"  # filter value (and chart category) for candidates the evaluator has not labelled yet

# ---------------------------------------------------------------------------------------------------------------------
# Review statuses
# ---------------------------------------------------------------------------------------------------------------------
PENDING, IN_REVIEW, ACCEPTED, EDITED, REJECTED, CONFLICT = (
    "pending", "in_review", "accepted", "edited", "rejected", "conflict")
STATUSES = (PENDING, IN_REVIEW, ACCEPTED, EDITED, REJECTED, CONFLICT)
FINAL_STATUSES = (ACCEPTED, EDITED, REJECTED)  # decided: what the review rates count
KEPT = (ACCEPTED, EDITED)  # final states of a pair that goes into the data (`--status accepted` exports both)
UNDECIDED = "undecided"  # chart category for every status that is not final

# ---------------------------------------------------------------------------------------------------------------------
# Decision actions
# ---------------------------------------------------------------------------------------------------------------------
ACCEPT, EDIT, REJECT, SKIP, UNDO = "accept", "edit", "reject", "skip", "undo"
BULK_ACCEPT, SEND_TO_REVIEW, ADJUDICATE = "bulk_accept", "send_to_review", "adjudicate"
RELABEL_LANG = "relabel_lang"  # a reviewer corrected the document's language: logged, not a review decision
REVIEW_ACTIONS = (ACCEPT, EDIT, REJECT, SKIP)
CURATOR_ACTIONS = (BULK_ACCEPT, SEND_TO_REVIEW, ADJUDICATE)
ACTIONS = (*REVIEW_ACTIONS, UNDO, *CURATOR_ACTIONS)
VERDICTS = (ACCEPT, EDIT, REJECT)  # a completed review (a reviewer's verdict); skip is not one
STATUS_OF = {ACCEPT: ACCEPTED, EDIT: EDITED, REJECT: REJECTED}  # the status k agreeing verdicts give

# ---------------------------------------------------------------------------------------------------------------------
# Reject reasons (code -> what the reviewer reads; the order is the keyboard order 1-6)
# ---------------------------------------------------------------------------------------------------------------------
REJECT_REASONS: dict[str, str] = {
    "wrong_language": "Wrong language",
    "not_an_answer": "Not an answer to the instruction",
    "unsafe": "Unsafe or harmful",
    "personal_data": "Contains personal data",
    "poor_quality": "Poor quality text",
    "other": "Other (describe)",
}
OTHER_REASON = "other"  # needs a note saying what is wrong

# ---------------------------------------------------------------------------------------------------------------------
# Human labels of a reviewed draft (quality, eval labels) and the training target of the evaluator
# ---------------------------------------------------------------------------------------------------------------------
HUMAN_LABELS = (ACCEPT, EDIT, REJECT)
STATUS_TO_LABEL = {ACCEPTED: ACCEPT, EDITED: EDIT, REJECTED: REJECT}

# ---------------------------------------------------------------------------------------------------------------------
# Documents, model versions
# ---------------------------------------------------------------------------------------------------------------------
DOC_KEPT, DOC_DROPPED = "kept", "dropped"
GENERATOR, EVALUATOR, CALIBRATION = "generator", "evaluator", "calibration"  # model_versions.kind

# ---------------------------------------------------------------------------------------------------------------------
# Review rates: the one definition
# ---------------------------------------------------------------------------------------------------------------------
EDIT_DISTANCE_SAMPLE = 2000  # edited pairs per group the mean edit distance is computed over (a fixed sample by id)
RATES_CAPTION = ("Acceptance = (accepted + edited) / decided; edit rate = edited / (accepted + edited); edit distance = "
                 f"characters changed in the instruction, mean over edited pairs (up to {EDIT_DISTANCE_SAMPLE:,} each).")
RATE_COLUMNS = ("acceptance_rate", "edit_rate", "mean_edit_distance")  # the names every report and page uses


def rates(accepted: int, edited: int, rejected: int) -> dict[str, float | int | None]:
    """The one definition of the review rates, used by every page, the round report, the dataset card and the CLI.

    decided = accepted + edited + rejected; acceptance = (accepted + edited) / decided (the pairs that go into the
    data, as `--status accepted` exports them); edit rate = edited / (accepted + edited) (the share of kept pairs that
    needed a correction). None where the denominator is 0, so that "no data" never reads as 0%."""
    decided, kept = accepted + edited + rejected, accepted + edited
    return {"decided": decided, "acceptance_rate": kept / decided if decided else None,
            "edit_rate": edited / kept if kept else None}


def human_label(status: str) -> int | None:
    """The calibration's target: 1 = accepted as it was; 0 = it needed an edit or was rejected; None = not decided."""
    return {ACCEPTED: 1, EDITED: 0, REJECTED: 0}.get(status)


def is_kept(status: str) -> bool:
    """The trained evaluator's target: the pair goes into the data (accepted or edited)."""
    return status in KEPT


def decision_group(status: str) -> str:
    """A review status as a chart category of the human outcome: accepted, edited, rejected or undecided."""
    return status if status in FINAL_STATUSES else UNDECIDED
