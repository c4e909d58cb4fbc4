"""The review queue: which item a reviewer sees next, and the decision log that everything else is derived from.

The package, by layer (each imports only those above it; all SQL is in `xinstruct.store.review`):

* `rules` — pure: the actions and reject reasons, which decisions are in force (`effective_decisions`), the state a log
  derives (`derive_state`, the rule of record), k per candidate, the queue order's Python twin, word diffs.
* `locks` — per-language serialisation: a lock per language in this process, and a counter row per language in the store
  that every read-then-write transaction bumps so DuckDB retries the loser instead of allowing write skew.
* `cache` — the per-process cache of each language's queue order, refreshed by background threads; it only proposes.
* `queue` — next_item (claim with a lease), release, get_item, queue_size, progress.
* `decisions` — record_decision (append, then re-derive in one transaction), undo, language corrections.
* `settings` — k and lease length per language (curators), guidelines, reviewers' unsaved drafts.

Pages, the CLI and tests use the names re-exported here (`from xinstruct import review; review.next_item(...)`).
"""

from .cache import QUEUE_DEPTH, QUEUE_TTL, invalidate as invalidate_queues  # noqa: F401
from .decisions import ItemGone, last_decision, record_decision, set_document_lang, undo_last  # noqa: F401
from .queue import get_item, next_item, progress, queue_size, release  # noqa: F401
from .rules import (  # noqa: F401
    ACTIONS,
    COMPLETING,
    CURATOR_ACTIONS,
    FINAL_STATUSES,
    REJECT_REASONS,
    REVIEW_ACTIONS,
    STATUS_OF,
    UNDOABLE,
    derive_state,
    effective_decisions,
    k_for,
    order_key,
    request_id_for,
    word_diff,
)
from .settings import (  # noqa: F401
    DEFAULT_GUIDELINES,
    DEFAULT_K,
    DEFAULT_LEASE_MINUTES,
    MAX_K,
    MAX_LEASE_MINUTES,
    ReviewSettings,
    clear_draft,
    get_guidelines,
    k_settings,
    load_draft,
    review_settings,
    save_draft,
    set_guidelines,
    set_k,
    set_review_settings,
)
