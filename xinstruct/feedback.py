"""Closing the loop: human decisions recalibrate the evaluator and retrain the generator, round after round.

`feedback(store)` turns the decisions since the last feedback into
1. a calibrated scorer per language: logistic regression on the evaluator's features (refine.features) with
   the human label (accepted as is = 1; edited or rejected = 0), fitted on one half of the reviewed candidates (split
   by a hash of the candidate id) and reported on the other half (ROC-AUC, accuracy, best threshold);
2. refinement examples: (original -> human-edited) instructions, for the refiner to show as in-context examples;
3. generator data: accepted and edited pairs in seed form, which `train_generator` adds to the seed when its config
   says `human_pairs` (as `feedback(train=True)` does) to train a new generator version.
All three are rows in the store (store.registry, one transaction with the watermark of decisions read), not files:
`export_feedback` (`xinstruct feedback --out FOLDER`) writes them as JSON Lines on request.
`new_round(store)` records the next round with the latest generator and calibration; `round_report` compares rounds.
No leakage: an item's own decision never trains the calibration that scored it (scores are stored when a candidate is
labelled, and a calibration only affects candidates labelled after it was fitted); the held-out report uses the half
of the candidates that the fit did not see.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import vocab as V
from .refine import Signals, features
from .store import Store
from .store import curation as cq
from .store import registry
from .store.registry import Calibration, GeneratorPair, RefinementExample
from .vocab import human_label  # noqa: F401  (the calibration's target, defined once in the vocabulary)

MIN_PER_CLASS = 3  # fewer reviewed examples of either class: no calibration for that language


def in_test_half(candidate_id: str) -> bool:
    return int(hashlib.sha256(candidate_id.encode()).hexdigest()[:8], 16) % 2 == 1


@dataclass
class Fit:
    calibration: dict | None
    auc: float | None
    accuracy: float | None
    threshold: float | None
    n_train: int
    n_test: int
    note: str = ""


def fit_calibration(X: np.ndarray, y: np.ndarray, test: np.ndarray) -> Fit:
    """Logistic regression on the train half, ROC-AUC / accuracy / best threshold on the test half."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score, roc_curve

    tr, te = ~test, test
    n_train, n_test = int(tr.sum()), int(te.sum())
    if min((y[tr] == 1).sum(), (y[tr] == 0).sum()) < MIN_PER_CLASS:
        return Fit(None, None, None, None, n_train, n_test, f"fewer than {MIN_PER_CLASS} of a class in the train half")
    model = LogisticRegression(C=1.0).fit(X[tr], y[tr])
    calibration = {"coef": [float(c) for c in model.coef_[0]], "intercept": float(model.intercept_[0])}
    if len(set(y[te])) < 2:
        return Fit(calibration, None, None, None, n_train, n_test, "test half has one class only: no AUC")
    p = model.predict_proba(X[te])[:, 1]
    fpr, tpr, thresholds = roc_curve(y[te], p)
    best = int(np.argmax(tpr - fpr))
    threshold = float(min(1.0, thresholds[best]))
    accuracy = float(((p >= threshold).astype(int) == y[te]).mean())
    return Fit(calibration, float(roc_auc_score(y[te], p)), accuracy, threshold, n_train, n_test)


def calibrate(rows: list[dict]) -> dict[str, dict]:
    """Per-language fits from reviewed rows (each with p_good, gain, review_status, id, lang)."""
    out: dict[str, dict] = {}
    for lang in sorted({r["lang"] for r in rows}):
        mine = [r for r in rows if r["lang"] == lang]
        X = np.array([features(Signals(r["p_good"], r["gain"], r["ll_text"], len(r["response"] or "")))
                      for r in mine], dtype=float)
        y = np.array([human_label(r["review_status"]) for r in mine], dtype=int)
        test = np.array([in_test_half(r["id"]) for r in mine])
        fit = fit_calibration(X, y, test)
        out[lang] = {"calibration": fit.calibration, "auc": fit.auc, "accuracy": fit.accuracy,
                     "threshold": fit.threshold, "n_train": fit.n_train, "n_test": fit.n_test, "note": fit.note}
    return out


def feedback(store: Store, *, train: bool = False, train_config=None, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Turn the decisions since the last feedback into a calibration, refinement examples and generator pairs, stored
    as rows with the new watermark in one transaction; then retrain the evaluator and (`train`) a generator on the
    seed plus every stored human pair. `out_dir`: also write this run's data as JSON Lines files there."""
    since, last = registry.feedback_watermark(store), registry.last_decision_id(store)
    rnd = registry.current_round(store)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    # 1. calibration on everything reviewed so far (more data, same no-leakage split by candidate)
    rows = cq.reviewed_candidates(store)
    languages = calibrate([r for r in rows if r["p_good"] is not None])  # the gain evaluator's measurements
    name = f"calibration-r{rnd}-{stamp}"
    calibration = None
    if any(v["calibration"] for v in languages.values()):
        fits = {lang: Calibration(lang, tuple(v["calibration"]["coef"]) if v["calibration"] else None,
                                  v["calibration"]["intercept"] if v["calibration"] else None, v["auc"], v["accuracy"],
                                  v["threshold"], v["n_train"], v["n_test"], v["note"])
                for lang, v in languages.items()}
        calibration = (name, {"languages": languages, "round": rnd, "reviewed": len(rows)}, fits)
    else:
        name = None
    # 2. refinement examples and 3. generator data from the new decisions
    fresh = cq.reviewed_candidates(store, since)
    edits = [RefinementExample(r["id"], r["lang"], r["text"], r["instruction"], r["final_instruction"], r["response"],
                               r["final_response"]) for r in fresh if r["review_status"] == V.EDITED]
    pairs = [GeneratorPair(r["id"], r["lang"], r["final_instruction"] or r["instruction"],
                           r["final_response"] or r["response"])
             for r in fresh if V.is_kept(r["review_status"]) and (r["final_instruction"] or r["instruction"])]
    run = registry.record_feedback(store, round_id=rnd, last_decision=last, reviewed=len(rows),
                                   calibration=calibration, pairs=pairs, examples=edits)
    evaluator_version = retrain_evaluator(store, rows, f"evaluator-r{rnd}-{stamp}")
    if evaluator_version:
        registry.set_feedback_evaluator(store, run, evaluator_version["name"])
    files = [str(p) for p in export_feedback(store, out_dir, run=run)] if out_dir else []
    result: dict[str, Any] = {"run": run, "calibration": name, "languages": languages, "evaluator": evaluator_version,
                              "refine_examples": len(edits), "generator_pairs": len(pairs), "files": files,
                              "generator": None}
    if train and pairs:
        from .train import TrainConfig, train_generator

        cfg = train_config or TrainConfig()
        cfg.human_pairs = True
        result["generator"] = train_generator(store, cfg)
    return result


def export_feedback(store: Store, out_dir: str | Path, *, run: int | None = None) -> list[Path]:
    """Write the stored feedback data (of one run, else of every run) as JSON Lines in `out_dir`: `seed-<tag>.jsonl`
    (generator pairs in seed form: id, lang, instruction, response, verb; `xinstruct train generator --seed` reads it)
    and `refine_examples-<tag>.jsonl` (lang, text, before, after, response_before, response_after). Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"run{run}" if run is not None else "all"
    pairs = [{"id": f"human-{p.candidate_id}", "lang": p.lang, "instruction": p.instruction, "response": p.response,
              "verb": None} for p in registry.generator_pairs(store, run=run)]
    edits = [{"lang": e.lang, "text": e.text, "before": e.instruction_before, "after": e.instruction_after,
              "response_before": e.response_before, "response_after": e.response_after}
             for e in registry.refinement_examples(store, run=run)]
    return [_write_jsonl(out / f"refine_examples-{tag}.jsonl", edits), _write_jsonl(out / f"seed-{tag}.jsonl", pairs)]


MIN_RETRAIN = 20  # reviewed drafts with the trained evaluator's features (and both outcomes) before it is retrained


def retrain_evaluator(store: Store, rows: list[dict], name: str) -> dict | None:
    """Retrain the trained evaluator on its shipped training data plus the store's human decisions (kept = accepted
    or edited = 1, its target), fitted on one half of the reviewed drafts (split by candidate id) and measured on the other half beside the
    evaluator that labelled them; registered as a model version of kind 'evaluator', which later labelling uses."""
    from sklearn.metrics import roc_auc_score

    from . import evaluator as trained
    from .models.hf import models_root

    base = trained.current(store)
    reviewed = [r for r in rows if r.get("features")]
    if base is None or len(reviewed) < MIN_RETRAIN:
        return None
    feats = [json.loads(r["features"]) if isinstance(r["features"], str) else r["features"] for r in reviewed]
    y = np.array([V.is_kept(r["review_status"]) for r in reviewed], dtype=int)  # kept, the target
    test = np.array([in_test_half(r["id"]) for r in reviewed])
    if len(set(y[~test])) < 2:
        return None
    new = trained.retrain(base, [f for f, t in zip(feats, test) if not t], y[~test], name=name)
    report = {"reviewed": len(reviewed), "n_train": int((~test).sum()), "n_test": int(test.sum())}
    if len(set(y[test])) == 2:
        held = [f for f, t in zip(feats, test) if t]
        report["auc_before"] = round(float(roc_auc_score(y[test], base.predict_stored(held))), 3)
        report["auc_after"] = round(float(roc_auc_score(y[test], new.predict_stored(held))), 3)
    new = trained.retrain(base, feats, y, name=name)  # the version in use learns from every decision
    new.metrics = {**(base.metrics or {}), "retrained": report}
    folder = new.save(models_root(store) / name)
    registry.register_version(store, name, V.EVALUATOR, path=str(folder), metrics=report)
    return {"name": name, **report}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def latest_version(store: Store, kind: str) -> str | None:
    """The newest model version of a kind (store.registry)."""
    return registry.latest_version(store, kind)


def new_round(store: Store, notes: str | None = None) -> dict:
    """Record the next round with the latest generator and calibration; generation then uses it by default."""
    generator, evaluator = latest_version(store, V.GENERATOR), latest_version(store, V.CALIBRATION)
    return {"round": registry.start_round(store, generator, evaluator, notes), "generator": generator,
            "evaluator": evaluator}


def round_report(store: Store) -> list[dict]:
    """Per round and language: reviewed, acceptance rate, edit rate, mean edit distance (curate.review_rates, the one
    definition every page and the dataset card use), the evaluator's agreement with the reviewers (quality.agreement,
    the one definition `xinstruct eval labels` and the review page use: ROC-AUC accept vs the rest), versions."""
    from .curate import review_rates
    from .quality import agreement

    rated = review_rates(store, ("round", "lang"))
    rows = cq.reviewed_by_round(store)
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["round_id"], r["lang"]), []).append(r)
    report = []
    for (rnd, lang), items in sorted(groups.items()):
        r = rated[(rnd, lang)]
        auc = agreement([V.STATUS_TO_LABEL[i["review_status"]] for i in items], [i["score"] for i in items]).auc_accept
        report.append({
            "round": rnd, "lang": lang, "reviewed": r["decided"],
            "acceptance_rate": r["acceptance_rate"], "edit_rate": r["edit_rate"],
            "mean_edit_distance": r["mean_edit_distance"],
            "evaluator_auc": auc,
            "generator": items[0]["generator"] or items[0]["model_version"],
            "evaluator": items[0]["evaluator"] or "uncalibrated",
        })
    return report
