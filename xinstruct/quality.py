"""Human labels and how well a score agrees with them: one definition for `xinstruct eval labels`, the round report
and the app's suggestion.

A label is what a native reviewer decided about a draft: `accept` (usable as it is), `edit` (usable after a small edit;
`gold` is the corrected instruction) or `reject`. Labels come from a JSON Lines file or from the store's review
decisions (accepted -> accept, edited -> edit with the final instruction as gold, rejected -> reject).

Agreement of a score in [0, 1] with the labels, per language:
* `auc_accept`: ROC-AUC of the score for accept vs edit-or-reject (what the score claims: P(accepted as is));
* `auc_usable`: ROC-AUC for accept-or-edit vs reject;
* calibration: Brier score and expected calibration error (ECE, 5 equal-width bins) of the score as P(kept), kept
  = accept or edit (the trained evaluator's target).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import vocab as V
from .errors import XInstructError
from .langs import check_lang

LABELS = V.HUMAN_LABELS
STATUS_TO_LABEL = V.STATUS_TO_LABEL
MIN_PER_CLASS = 5  # fewer of either class: no AUC (it would be noise)
ECE_BINS = 5


@dataclass
class Label:
    id: str
    lang: str
    instruction: str
    text: str
    label: str
    gold: str | None = None
    score: float | None = None  # the evaluator's score when it was labelled (store decisions)


def read_labels(path: str | Path) -> list[Label]:
    """Labels from JSON Lines: id, lang, instruction, text (or response), label (accept | edit | reject), gold.

    Errors name the file, the line and what to do."""
    path = Path(path)
    if not path.exists():
        raise XInstructError(f"{path}: no such labels file")
    out: list[Label] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise XInstructError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line") from exc
            if not isinstance(row, dict):
                raise XInstructError(f"{where}: expected a JSON object with lang, instruction, text and label")
            text = row.get("text") or row.get("response")
            missing = [k for k, v in (("lang", row.get("lang")), ("instruction", row.get("instruction")),
                                      ("text", text), ("label", row.get("label"))) if not v]
            if missing:
                raise XInstructError(f"{where}: missing {', '.join(missing)} (every label needs lang, instruction, "
                                     "text or response, and label)")
            if row["label"] not in LABELS:
                raise XInstructError(f"{where}: label {row['label']!r} is not one of {', '.join(LABELS)}")
            out.append(Label(str(row.get("id", n)), check_lang(row["lang"], path=where), row["instruction"], text,
                             row["label"], row.get("gold")))
    if not out:
        raise XInstructError(f"{path}: no labels in the file")
    return out


def store_labels(store, lang: str | None = None) -> list[Label]:
    """The store's human decisions as labels, with the score each candidate had when it was labelled."""
    from .store.curation import reviewed_labels

    return [Label(cid, lg, instruction, response, STATUS_TO_LABEL[status], final if status == V.EDITED else None, score)
            for cid, lg, instruction, response, status, final, score in reviewed_labels(store, lang)]


@dataclass
class Agreement:
    n: int
    accept: int
    edit: int
    reject: int
    auc_accept: float | None
    auc_usable: float | None
    brier: float | None
    ece: float | None
    mean_score: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if min(int(y.sum()), int(len(y) - y.sum())) < MIN_PER_CLASS:
        return None
    return round(float(roc_auc_score(y, s)), 3)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted mean |observed rate - mean predicted| over equal-width probability bins."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(y[sel].mean() - p[sel].mean())
    return float(total / len(y))


def agreement(labels: Sequence[str], scores: Sequence[float | None]) -> Agreement:
    """How well scores agree with human labels; pairs without a score are left out. AUCs rank; calibration reads the
    score as P(kept), kept = accept or edit."""
    pairs = [(lab, s) for lab, s in zip(labels, scores) if s is not None]
    counts = {k: sum(1 for lab, _ in pairs if lab == k) for k in LABELS}
    if not pairs:
        return Agreement(0, 0, 0, 0, None, None, None, None, None)
    s = np.array([float(x) for _, x in pairs])
    accept = np.array([lab == V.ACCEPT for lab, _ in pairs], dtype=float)
    usable = np.array([lab != V.REJECT for lab, _ in pairs], dtype=float)
    return Agreement(
        n=len(pairs), accept=counts[V.ACCEPT], edit=counts[V.EDIT], reject=counts[V.REJECT],
        auc_accept=_auc(accept, s), auc_usable=_auc(usable, s),
        brier=round(float(np.mean((s - usable) ** 2)), 3),
        ece=round(expected_calibration_error(usable, s), 3),
        mean_score=round(float(s.mean()), 3),
    )


def by_language(labels: Iterable[Label], scores: dict[str, float | None]) -> dict[str, Agreement]:
    """Agreement per language and over all ("all")."""
    labels = list(labels)
    out = {}
    for lang in sorted({x.lang for x in labels}) + ["all"]:
        mine = [x for x in labels if lang in ("all", x.lang)]
        out[lang] = agreement([x.label for x in mine], [scores.get(x.id) for x in mine])
    return out


def bootstrap_auc(labels: Sequence[str], scores: Sequence[float], positive: tuple[str, ...] = (V.ACCEPT,),
                  reps: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the ROC-AUC (resampling labelled items)."""
    from sklearn.metrics import roc_auc_score

    y = np.array([lab in positive for lab in labels], dtype=int)
    s = np.asarray(scores, dtype=float)
    if min(y.sum(), len(y) - y.sum()) < MIN_PER_CLASS:
        return None
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            aucs.append(roc_auc_score(y[i], s[i]))
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    return round(float(lo), 3), round(float(hi), 3)


def score_labels(items: Sequence[Label], evaluator: str = "trained", *, model=None,
                 store=None) -> dict[str, float | None]:
    """Scores of each labelled draft: `trained` (the evaluator in use: the last one `xinstruct feedback` retrained in
    `store`, else the shipped one), `gain` (the uncalibrated likelihood-gain
    score of refine.combine), or `stored` (the score stored when the candidate was labelled)."""
    if evaluator == "stored":
        return {x.id: x.score for x in items}
    triples = [(x.instruction, x.text, x.lang) for x in items]
    if evaluator == "gain":
        from .models.embedded import load_embedded
        from .refine import Evaluator, RefineConfig, combine

        ev = Evaluator(model or load_embedded(adapter=None), RefineConfig())
        return {x.id: combine(s) for x, s in zip(items, ev.signals(triples, label_words=False))}
    from . import evaluator as trained

    ev = trained.current(store)
    if ev is None:
        raise XInstructError("no trained evaluator is shipped with this installation; use --evaluator gain")
    model = model or trained.load_feature_model(ev)
    return dict(zip([x.id for x in items], trained.score(ev, model, triples)))


def generator_similarity(items: Sequence[Label], generator: str, *, model=None, embedder=None) -> dict[str, float]:
    """Per language: mean cosine similarity (sentence embeddings) between the generator's greedy instruction for each
    text and the gold instruction of that label (labels without gold are left out)."""
    from .diversify import default_embedder
    from .generate import GenerateConfig, load_generator
    from .prompts import build_generation_prompt, parse_instruction

    with_gold = [x for x in items if x.gold]
    if not with_gold:
        return {}
    cfg = GenerateConfig(model=None if generator in ("default", "embedded") else generator, progress=False)
    model = model or load_generator(cfg)
    gens = model.generate([build_generation_prompt(x.text, x.lang, (), max_chars=cfg.max_text_chars) for x in with_gold],
                          cfg.sampling())
    written = [parse_instruction(g.text)[0] or "" for g in gens]
    embedder = embedder or default_embedder()
    a = embedder.encode(written)
    b = embedder.encode([x.gold for x in with_gold])
    sims = (np.asarray(a) * np.asarray(b)).sum(1)
    out: dict[str, float] = {}
    for lang in sorted({x.lang for x in with_gold}) + ["all"]:
        sel = [s for x, s in zip(with_gold, sims) if lang in ("all", x.lang)]
        out[lang] = round(float(np.mean(sel)), 3)
    return out


MIN_PROVEN = 30  # reviewed drafts of a language (with at least MIN_PER_CLASS of each class) before agreement is shown


@dataclass
class Suggestion:
    """What the review page says about the evaluator's suggestion for one language."""

    proven: bool
    text: str  # e.g. "unproven for sw: 12 of 30 reviews so far" or "agreed with sw reviewers: AUC 0.81 over 64 reviews"
    agreement: Agreement


def suggestion_status(store, lang: str) -> Suggestion:
    """How well the evaluator's stored scores have agreed with this language's reviewers (accept vs the rest)."""
    items = store_labels(store, lang)
    a = agreement([x.label for x in items], [x.score for x in items])
    if a.n < MIN_PROVEN or a.auc_accept is None:
        return Suggestion(False, f"unproven for {lang}: {a.n} of {MIN_PROVEN} reviews so far", a)
    return Suggestion(True, f"agreed with {lang} reviewers: ROC-AUC {a.auc_accept:.2f} over {a.n} reviews", a)
