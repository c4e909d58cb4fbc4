"""Closing the loop: human decisions recalibrate the evaluator and retrain the generator, round after round.

`feedback(store)` turns the decisions since the last feedback into
1. a calibrated scorer per language: logistic regression on the evaluator's features (refine.features) with
   the human label (accepted as is = 1; edited or rejected = 0), fitted on one half of the reviewed candidates (split
   by a hash of the candidate id) and reported on the other half (ROC-AUC, accuracy, best threshold);
2. refinement examples: (original -> human-edited) instructions, which the refiner shows as in-context examples and
   which are kept as a JSON Lines file;
3. generator data: accepted and edited pairs in seed format, added to the seed to train a new generator version.
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

from .refine import Signals, features
from .store import Store, to_json

MIN_PER_CLASS = 3  # fewer reviewed examples of either class: no calibration for that language


def human_label(status: str) -> int | None:
    """1 = the pair was accepted as it was; 0 = it needed an edit or was rejected; None = not decided."""
    return {"accepted": 1, "edited": 0, "rejected": 0}.get(status)


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


def _reviewed(store: Store, since_decision: int = 0) -> list[dict]:
    with store.session() as tx:
        return tx.dicts(
            "SELECT c.id, c.lang, c.round_id, c.review_status, c.p_good, c.raw_score AS gain, c.ll_text, c.score, "
            "c.features, "
            "c.instruction, c.response, c.final_instruction, c.final_response, d.text "
            "FROM candidates c JOIN documents d ON d.id = c.doc_id "
            "WHERE c.review_status IN ('accepted', 'edited', 'rejected') "
            "AND EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id > ?) ORDER BY c.id",
            [since_decision])


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
    """Turn the decisions since the last feedback into a calibration, refinement examples and generator data."""
    with store.session() as tx:
        since = int(tx.scalar("SELECT coalesce(max(CAST(value AS BIGINT)), 0) FROM settings WHERE key = 'feedback.last_decision'") or 0)
        last = int(tx.scalar("SELECT coalesce(max(id), 0) FROM decisions") or 0)
        rnd = int(tx.scalar("SELECT coalesce(max(id), 1) FROM rounds") or 1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    out = Path(out_dir) if out_dir else (Path(str(store.path)).parent if not store.memory else Path("store")) / "feedback"
    out.mkdir(parents=True, exist_ok=True)
    # 1. calibration on everything reviewed so far (more data, same no-leakage split by candidate)
    rows = _reviewed(store)
    languages = calibrate([r for r in rows if r["p_good"] is not None])  # the gain evaluator's measurements
    name = f"calibration-r{rnd}-{stamp}"
    if any(v["calibration"] for v in languages.values()):
        store.write(lambda tx: tx.execute(
            "INSERT INTO model_versions (name, kind, metrics) VALUES (?, 'calibration', ?)",
            [name, to_json({"languages": languages, "round": rnd, "reviewed": len(rows)})]))
    else:
        name = None
    # 2. refinement examples and 3. generator data from the new decisions
    fresh = _reviewed(store, since)
    edits = [{"lang": r["lang"], "text": r["text"], "before": r["instruction"], "after": r["final_instruction"],
              "response_before": r["response"], "response_after": r["final_response"]}
             for r in fresh if r["review_status"] == "edited"]
    pairs = [{"id": f"human-{r['id']}", "lang": r["lang"], "instruction": r["final_instruction"] or r["instruction"],
              "response": r["final_response"] or r["response"], "verb": None}
             for r in fresh if r["review_status"] in ("accepted", "edited")]
    examples_path = _write_jsonl(out / f"refine_examples-r{rnd}-{stamp}.jsonl", edits)
    seed_path = _write_jsonl(out / f"seed-r{rnd}-{stamp}.jsonl", pairs)
    store.set_setting("feedback.last_decision", str(last))
    evaluator_version = retrain_evaluator(store, rows, f"evaluator-r{rnd}-{stamp}")
    result: dict[str, Any] = {"calibration": name, "languages": languages, "evaluator": evaluator_version,
                              "refine_examples": len(edits),
                              "generator_pairs": len(pairs), "files": [str(examples_path), str(seed_path)],
                              "generator": None}
    if train and pairs:
        from .train import TrainConfig, train_generator

        cfg = train_config or TrainConfig()
        cfg.seed_files = [*cfg.seed_files, *_all_feedback_seed(out)] if cfg.seed_files else _packaged_plus(out)
        result["generator"] = train_generator(store, cfg)
    return result


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
    y = np.array([r["review_status"] in ("accepted", "edited") for r in reviewed], dtype=int)  # kept, the target
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
    folder = new.save(models_root() / name)
    store.write(lambda tx: tx.execute(
        "INSERT INTO model_versions (name, kind, path, metrics) VALUES (?, 'evaluator', ?, ?)",
        [name, str(folder), to_json(report)]))
    return {"name": name, **report}


def _packaged_plus(out: Path) -> list[str]:
    from .seed import packaged_files

    return [str(p) for p in packaged_files()] + _all_feedback_seed(out)


def _all_feedback_seed(out: Path) -> list[str]:
    return [str(p) for p in sorted(out.glob("seed-r*.jsonl")) if p.stat().st_size > 0]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def latest_version(store: Store, kind: str) -> str | None:
    with store.session() as tx:
        return tx.scalar("SELECT name FROM model_versions WHERE kind = ? ORDER BY created_at DESC, name DESC LIMIT 1", [kind])


def new_round(store: Store, notes: str | None = None) -> dict:
    """Record the next round with the latest generator and calibration; generation then uses it by default."""
    generator, evaluator = latest_version(store, "generator"), latest_version(store, "calibration")

    def write(tx) -> int:
        current = tx.scalar("SELECT max(id) FROM rounds")
        if current is None:  # round 1 is implicit until the first `round new`
            tx.execute("INSERT INTO rounds (id, notes) VALUES (1, 'initial round')")
            current = 1
        tx.execute("UPDATE rounds SET finished_at = current_timestamp WHERE id = ? AND finished_at IS NULL", [current])
        tx.execute("INSERT INTO rounds (id, generator, evaluator, notes) VALUES (?, ?, ?, ?)",
                   [current + 1, generator, evaluator, notes])
        return current + 1

    return {"round": store.write(write), "generator": generator, "evaluator": evaluator}


def round_report(store: Store) -> list[dict]:
    """Per round and language: reviewed, acceptance rate, edit rate, mean edit distance (curate.review_rates, the one
    definition every page and the dataset card use), the evaluator's agreement with the reviewers (quality.agreement,
    the one definition `xinstruct eval labels` and the review page use: ROC-AUC accept vs the rest), versions."""
    from .curate import review_rates
    from .quality import STATUS_TO_LABEL, agreement

    rated = review_rates(store, ("round", "lang"))
    with store.session() as tx:
        rows = tx.dicts(
            "SELECT c.round_id, c.lang, c.review_status, c.score, c.model_version, "
            "r.generator, r.evaluator FROM candidates c LEFT JOIN rounds r ON r.id = c.round_id "
            "WHERE c.review_status IN ('accepted', 'edited', 'rejected') ORDER BY c.round_id, c.lang, c.id")
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["round_id"], r["lang"]), []).append(r)
    report = []
    for (rnd, lang), items in sorted(groups.items()):
        r = rated[(rnd, lang)]
        auc = agreement([STATUS_TO_LABEL[i["review_status"]] for i in items], [i["score"] for i in items]).auc_accept
        report.append({
            "round": rnd, "lang": lang, "reviewed": r["decided"],
            "acceptance_rate": r["acceptance_rate"], "edit_rate": r["edit_rate"],
            "mean_edit_distance": r["mean_edit_distance"],
            "evaluator_auc": auc,
            "generator": items[0]["generator"] or items[0]["model_version"],
            "evaluator": items[0]["evaluator"] or "uncalibrated",
        })
    return report
