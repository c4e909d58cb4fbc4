"""The trained evaluator: the probability that a native reviewer keeps a draft (English instruction, native text):
accepts it as it is or after a small edit.

The paper's evaluator is a trained model; ours is a small logistic regression over signals that one pass of the
generator (the backward model, text -> instruction) gives, plus the grounding check and a few surface features:

* `fit`: mean log P(instruction | text) under the generator, per token: how natural this instruction is for this text;
* `prior`: mean log P(instruction | no text): generic instructions are likely without any text;
* `pmi` = fit - prior: how much the text explains the instruction (low for off-topic and generic drafts);
* `hidden`: the generator's mean last hidden state over the instruction's tokens, read in the text's context;
* grounding (xinstruct.grounding): the share of the instruction's names and numbers found in the text;
* surface: length, a reference to "the text"/"the article" (the user never sees the text), a question mark.

Why not the likelihood gain of the text under the base model (the earlier score)? Measured on real drafts it separated
acceptable from unacceptable ones weakly (ROC-AUC 0.72) and could not see an invented detail; the measurements that
chose these features are in BENCHMARKS.md ("Quality engine") and `bench/quality/`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .models.base import Model
from .prompts import build_generation_prompt

MAX_TEXT_CHARS = 1000  # the text as the generator saw it (GenerateConfig.max_text_chars)
_REFERS = re.compile(r"\b(?:the|this|given|above|following|provided)\s+(?:text|article|passage|paragraph|story|news|"
                     r"report|excerpt|document|content|piece)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ModelSignals:
    fit: float  # mean log P(instruction | text), generator
    prior: float  # mean log P(instruction | empty text), generator
    hidden: np.ndarray | None  # mean last hidden state over the instruction tokens (None: backend gives none)

    @property
    def pmi(self) -> float:
        return self.fit - self.prior


def generation_prompt(text: str, lang: str) -> str:
    return build_generation_prompt(text, lang, (), max_chars=MAX_TEXT_CHARS)


def _empty_prompt(lang: str) -> str:
    return build_generation_prompt("", lang, ())


def model_signals(model: Model, items: Sequence[tuple[str, str, str]], *, pool: bool = True) -> list[ModelSignals]:
    """Signals of one generator pass per (instruction, text, lang), plus one short pass per instruction for the prior."""
    prompts = [generation_prompt(t, lang) for _, t, lang in items]
    targets = [" " + i.strip() if not i.startswith(" ") else i for i, _, _ in items]
    scorer = getattr(model, "score", None)
    if scorer is not None:
        with_text = scorer(prompts, targets, pool=pool)
    else:  # backends without hidden states (fake, vLLM, llama.cpp): likelihoods only
        with_text = [(ll, None) for ll in model.loglik(prompts, targets)]
    priors = model.loglik([_empty_prompt(lang) for _, _, lang in items], targets)
    return [ModelSignals(ll, prior, vec) for (ll, vec), prior in zip(with_text, priors)]


def surface(instruction: str) -> dict[str, float]:
    """Cheap features of the instruction alone."""
    words = instruction.split()
    return {
        "log_words": math.log1p(len(words)),
        "refers_to_text": float(bool(_REFERS.search(instruction))),
        "question": float(instruction.rstrip().endswith("?")),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Hard negatives from seed pairs: drafts that fail the way real drafts fail (measured on the labelled set: invented
# entities, off-topic or generic instructions guessed from one keyword, instructions that need the text as input).
# ---------------------------------------------------------------------------------------------------------------------
_NAME = re.compile(r"(?<=[\s(])(?:[A-Z][\w'’.-]+)(?:\s+(?:of|the|de|al|bin|van|von)?\s*[A-Z][\w'’.-]+)*|\b\d[\d,.]*\b")
_STOP = frozenset("""a an the and or of in on at to for from with about by as is are was were be this that these those it
its into over under how what why who when where which write explain describe summarize summarise give list tell provide
create compose draft short brief article essay text paragraph story news report some their his her our your them they
""".split())
GENERIC = ("Write a short text about {topic}.", "Tell me about {topic}.", "Write an essay on {topic} in general.",
           "What do you know about {topic}?")
REFERS = ("Summarize the text above.", "What is the main point of this article?", "Rewrite the passage in your own words.")


def _spans(instruction: str) -> list[str]:
    """Names and numbers, not the sentence's first word (capitalised anyway)."""
    return [m.group(0).strip(" .,") for m in _NAME.finditer(instruction) if m.group(0).strip(" .,")]


def _topic(instruction: str) -> str | None:
    words = [w.strip(".,;:?!\"'()").lower() for w in instruction.split()]
    content = [w for w in words if len(w) > 3 and w.isalpha() and w not in _STOP]
    return max(content, key=len) if content else None


def hard_negatives(pairs: Sequence, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(instruction, text, lang, kind) drafts a reader rejects, made from seed pairs (each with .instruction,
    .response, .lang): `other_text` (another text's instruction), `wrong_detail` (a name or number swapped for one of
    another pair), `too_broad` (generic, from one keyword), `refers_to_text`."""
    import random

    rng = random.Random(seed)
    by_lang: dict[str, list] = {}
    for p in pairs:
        by_lang.setdefault(p.lang, []).append(p)
    out = []
    for lang, mine in sorted(by_lang.items()):
        for i, p in enumerate(mine):
            others = [q for j, q in enumerate(mine) if j != i]
            if not others:
                continue
            out.append((rng.choice(others).instruction, p.response, lang, "other_text"))
            spans = _spans(p.instruction)
            foreign = [s for q in others for s in _spans(q.instruction) if s not in p.response and s not in p.instruction]
            if spans and foreign:
                old = rng.choice(spans)
                out.append((p.instruction.replace(old, rng.choice(foreign), 1), p.response, lang, "wrong_detail"))
            topic = _topic(p.instruction)
            if topic:
                out.append((rng.choice(GENERIC).format(topic=topic), p.response, lang, "too_broad"))
            if rng.random() < 0.25:
                out.append((rng.choice(REFERS), p.response, lang, "refers_to_text"))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Features, fitting, and the stored evaluator
# ---------------------------------------------------------------------------------------------------------------------
def feature_dict(instruction: str, text: str, lang: str, sig: ModelSignals, ground=None) -> dict[str, float]:
    """The named features of one draft (`ground`: a grounding.check result, computed here when not given)."""
    from . import grounding

    g = ground if ground is not None else grounding.check(instruction, text, lang)
    return {"fit": sig.fit, "prior": sig.prior, "pmi": sig.pmi, "grounded": g.share_found,
            "missing": float(len(g.missing)), **surface(instruction)}


@dataclass
class TrainedEvaluator:
    """A fitted logistic regression: standardised named features plus a PCA projection of the hidden state."""

    name: str
    feature_model: str  # the model whose signals the features are (recorded; the same model must score)
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    hidden_mean: np.ndarray | None = None
    hidden_components: np.ndarray | None = None  # k x hidden_size
    metrics: dict | None = None
    train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # raw design matrix, y, weights it was fitted on

    @property
    def columns(self) -> list[str]:
        """The design's columns: the named features, then h0..h{k-1} (hidden-state components)."""
        k = 0 if self.hidden_components is None else len(self.hidden_components)
        return [*self.features, *(f"h{j}" for j in range(k))]

    def raw(self, rows: Sequence[dict[str, float]], hidden: np.ndarray | None) -> np.ndarray:
        X = np.array([[r[f] for f in self.features] for r in rows], dtype=float).reshape(len(rows), len(self.features))
        if self.hidden_components is not None:
            if hidden is None:
                raise ValueError(f"evaluator {self.name} needs hidden states; this backend gives none")
            X = np.hstack([X, (hidden - self.hidden_mean) @ self.hidden_components.T])
        return X

    def _p(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1 / (1 + np.exp(-np.clip(z, -30, 30)))

    def predict(self, rows: Sequence[dict[str, float]], hidden: np.ndarray | None = None) -> np.ndarray:
        return self._p(self.raw(rows, hidden))

    def predict_stored(self, stored: Sequence[dict[str, float]]) -> np.ndarray:
        """P(accept) from features as stored with a label (the named features and h0..h{k-1})."""
        return self._p(np.array([[r[c] for c in self.columns] for r in stored], dtype=float))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef}
        if self.hidden_components is not None:
            arrays |= {"hidden_mean": self.hidden_mean, "hidden_components": self.hidden_components}
        np.savez(folder / "weights.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})
        if self.train is not None:
            X, y, w = self.train
            np.savez_compressed(folder / "train.npz", X=X.astype(np.float32), y=y.astype(np.int8), w=w.astype(np.float32))
        meta = {"name": self.name, "feature_model": self.feature_model, "features": self.features,
                "intercept": self.intercept, "metrics": self.metrics or {}}
        (folder / "evaluator.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TrainedEvaluator:
        folder = Path(folder)
        meta = json.loads((folder / "evaluator.json").read_text(encoding="utf-8"))
        w = np.load(folder / "weights.npz")
        train = None
        if (folder / "train.npz").exists():
            t = np.load(folder / "train.npz")
            train = (t["X"].astype(float), t["y"].astype(int), t["w"].astype(float))
        return cls(meta["name"], meta["feature_model"], meta["features"], w["mean"].astype(float),
                   w["scale"].astype(float), w["coef"].astype(float), float(meta["intercept"]),
                   w["hidden_mean"].astype(float) if "hidden_mean" in w else None,
                   w["hidden_components"].astype(float) if "hidden_components" in w else None, meta.get("metrics"),
                   train)


def fit(rows: Sequence[dict[str, float]], y: Sequence[int], *, features: Sequence[str], hidden: np.ndarray | None = None,
        components: int = 0, weights: Sequence[float] | None = None, C: float = 1.0, name: str = "evaluator",
        feature_model: str = "") -> TrainedEvaluator:
    """Fit the evaluator: y = 1 for drafts accepted as they are. `components` > 0 adds that many principal components
    of the hidden states (fitted on these rows)."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([[r[f] for f in features] for r in rows], dtype=float)
    h_mean = h_comp = None
    if components and hidden is not None:
        h_mean = hidden.mean(0)
        _, _, vt = np.linalg.svd(hidden - h_mean, full_matrices=False)
        h_comp = vt[:components]
        X = np.hstack([X, (hidden - h_mean) @ h_comp.T])
    w = np.ones(len(X)) if weights is None else np.asarray(weights, dtype=float)
    return _fit_design(X, np.asarray(y), w, C, TrainedEvaluator(name, feature_model, list(features), None, None, None,
                                                                 0.0, h_mean, h_comp, metrics={"C": C}))


def _fit_design(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, ev: TrainedEvaluator) -> TrainedEvaluator:
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(0), X.std(0) + 1e-9
    model = LogisticRegression(C=C, max_iter=2000).fit((X - mean) / scale, y, sample_weight=w)
    ev.mean, ev.scale, ev.coef, ev.intercept = mean, scale, model.coef_[0], float(model.intercept_[0])
    ev.train = (X, y, w)
    return ev


HUMAN_WEIGHT = 2.0  # a store decision weighs this much against one row of the shipped training data


def retrain(base: TrainedEvaluator, stored: Sequence[dict[str, float]], y: Sequence[int], *, name: str) -> TrainedEvaluator:
    """`base` refitted on its own training data plus reviewed drafts (features as stored when they were labelled;
    y = 1 when accepted as is). Same features and hidden-state projection, so stored features stay comparable."""
    X_new = np.array([[r[c] for c in base.columns] for r in stored], dtype=float).reshape(len(stored), len(base.columns))
    if base.train is not None:
        X0, y0, w0 = base.train
    else:
        X0, y0, w0 = np.zeros((0, len(base.columns))), np.zeros(0, dtype=int), np.zeros(0)
    X = np.vstack([X0, X_new])
    yy = np.concatenate([y0, np.asarray(y, dtype=int)])
    w = np.concatenate([w0, np.full(len(X_new), HUMAN_WEIGHT)])
    C = float((base.metrics or {}).get("C", 1.0))
    ev = TrainedEvaluator(name, base.feature_model, list(base.features), None, None, None, 0.0, base.hidden_mean,
                          base.hidden_components, metrics=dict(base.metrics or {}))
    return _fit_design(X, yy, w, C, ev)


SHIPPED = Path(__file__).resolve().parent / "assets" / "evaluator"


def load_default() -> TrainedEvaluator | None:
    """The evaluator shipped with the package (xinstruct/assets/evaluator/), or None when there is none."""
    return TrainedEvaluator.load(SHIPPED) if (SHIPPED / "evaluator.json").exists() else None


def current(store=None) -> TrainedEvaluator | None:
    """The evaluator in use: the latest one `xinstruct feedback` retrained in this store, else the shipped one."""
    if store is not None:
        from .store import registry
        from .vocab import EVALUATOR

        path = registry.latest_path(store, EVALUATOR)
        if path and (Path(path) / "evaluator.json").exists():
            return TrainedEvaluator.load(path)
    return load_default()


def feature_adapter(ev: TrainedEvaluator) -> Path | None:
    """The adapter folder of the embedded model whose signals `ev` was trained on (None: the bare base).

    The evaluator's features are one model's likelihood signals, so that exact model must score: when the shipped
    generator adapter is a newer one than the evaluator was trained on, the evaluator's own copy
    (xinstruct/assets/evaluator/feature_model/) is used. Raises ConfigError when neither matches."""
    from .models.embedded import EMBEDDED_NAME, shipped_adapter
    from .models.hf import read_metadata

    if ev.feature_model == EMBEDDED_NAME:
        return None
    wanted = ev.feature_model.removeprefix(EMBEDDED_NAME + "+")
    for folder in (shipped_adapter(), SHIPPED / "feature_model"):
        if folder is not None and (folder / "adapter_config.json").exists() \
                and (read_metadata(folder).get("name") or folder.name) == wanted:
            return folder
    raise ConfigError(f"the evaluator {ev.name!r} was trained on the signals of {ev.feature_model}, whose adapter "
                      "this installation lacks; reinstall xinstruct, or retrain the evaluator (xinstruct feedback)")


def load_feature_model(ev: TrainedEvaluator, device: str | None = None) -> Model:
    """The model whose signals `ev` was trained on (the embedded generator with the adapter it was trained with)."""
    from .models.embedded import EMBEDDED_NAME, load_embedded

    if ev.feature_model == EMBEDDED_NAME or ev.feature_model.startswith(EMBEDDED_NAME + "+"):
        return load_embedded(adapter=feature_adapter(ev) or "none", device=device)
    from .models.base import load_model

    return load_model(ev.feature_model, device=device)


@dataclass
class Assessment:
    p_keep: float  # P(a reviewer keeps the draft: accepted as it is or after a small edit)
    features: dict[str, float]  # the named features and the hidden-state components the evaluator used
    missing: list[str]  # names and numbers of the instruction not found in the text (grounding)
    grounding_message: str  # e.g. "'Sri Ghalib Airport' not in the text"; empty when all were found


def assess(ev: TrainedEvaluator, model: Model, items: Sequence[tuple[str, str, str]]) -> list[Assessment]:
    """Score each (instruction, text, lang) with the trained evaluator over `model`'s signals."""
    from . import grounding

    if not items:
        return []
    sigs = model_signals(model, items, pool=ev.hidden_components is not None)
    grounds = [grounding.check(i, t, lang) for i, t, lang in items]
    rows = [feature_dict(i, t, lang, s, g) for (i, t, lang), s, g in zip(items, sigs, grounds)]
    hidden = np.stack([s.hidden for s in sigs]) if ev.hidden_components is not None else None
    probs = ev.predict(rows, hidden)
    if hidden is not None:
        comps = (hidden - ev.hidden_mean) @ ev.hidden_components.T
        rows = [{**r, **{f"h{j}": round(float(c), 5) for j, c in enumerate(row)}} for r, row in zip(rows, comps)]
    return [Assessment(float(p), r, [m.text for m in g.missing], g.message) for p, r, g in zip(probs, rows, grounds)]


def score(ev: TrainedEvaluator, model: Model, items: Sequence[tuple[str, str, str]]) -> list[float]:
    """P(accepted as is) for each (instruction, text, lang)."""
    return [a.p_keep for a in assess(ev, model, items)]
