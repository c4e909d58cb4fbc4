"""Choose and fit the trained evaluator on the dev split; measure it and the earlier gain score on the test split.

Feature sets are compared by 5-fold cross-validation on dev only (ROC-AUC, accept vs rest); the chosen one is refitted
on all of dev (plus hard negatives from the packaged seed pairs when --synthetic names their features file) and
measured once on test, beside the gain score of the earlier evaluator on the same candidates.

    .venv/bin/python bench/quality/analyze.py --tag v1 [--synthetic bench/out/quality/features-seed.npz] [--save]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[0] / "out" / "quality"


def rows_for(items: list[dict], feats: dict, model: str) -> tuple[list[dict], np.ndarray]:
    from xinstruct.evaluator import ModelSignals, feature_dict

    index = {k: i for i, k in enumerate(feats["id"].tolist())}
    rows, hidden = [], []
    for it in items:
        i = index[it["id"]]
        sig = ModelSignals(float(feats[f"{model}_fit"][i]), float(feats[f"{model}_prior"][i]), feats[f"{model}_hidden"][i])
        r = feature_dict(it["instruction"], it["text"], it["lang"], sig)
        r["gain"] = float(feats["gain"][i]) if "gain" in feats else 0.0
        rows.append(r)
        hidden.append(sig.hidden)
    return rows, np.stack(hidden)


def cv_auc(rows, hidden, y, features, components, C, folds=5, seed=0, extra=None) -> float:
    from sklearn.metrics import roc_auc_score

    from xinstruct.evaluator import fit

    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(y)) % folds
    pred = np.zeros(len(y))
    for k in range(folds):
        tr, te = fold != k, fold == k
        R = [r for r, t in zip(rows, tr) if t]
        H, Y, W = hidden[tr], y[tr], np.ones(int(tr.sum()))
        if extra is not None:
            er, eh, ey, ew = extra
            R, H, Y, W = R + er, np.vstack([H, eh]), np.concatenate([Y, ey]), np.concatenate([W, ew])
        ev = fit(R, Y, features=features, hidden=H, components=components, C=C, weights=W)
        pred[te] = ev.predict([r for r, t in zip(rows, te) if t], hidden[te])
    return float(roc_auc_score(y, pred))


def main() -> None:
    from labels import table

    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--features", default=None)
    ap.add_argument("--synthetic", default=None)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args()
    items = table(args.tag)
    feats = dict(np.load(args.features or OUT / f"features-{args.tag}.npz"))
    have = set(feats["id"].tolist())
    items = [it for it in items if it["id"] in have]
    dev = [it for it in items if it["split"] == "dev"]
    test = [it for it in items if it["split"] == "test"]
    y_dev = np.array([it["label"] == "accept" for it in dev], dtype=int)
    print(f"dev {len(dev)} (accept {y_dev.sum()}), test {len(test)}")
    scalar = ["fit", "prior", "pmi", "grounded", "missing", "log_words", "refers_to_text", "question"]
    results = {}
    for model in ("gen", "base"):
        rows, hidden = rows_for(dev, feats, model)
        for name, fs, k in [("gain", ["gain"], 0), ("scalar", scalar, 0), ("scalar+gain", scalar + ["gain"], 0),
                            ("scalar+h8", scalar, 8), ("scalar+h16", scalar, 16), ("scalar+h32", scalar, 32),
                            ("grounding+surface", scalar[3:], 0)]:
            for C in (0.1, 1.0):
                results[f"{model}:{name}:C={C}"] = round(cv_auc(rows, hidden, y_dev, fs, k, C), 3)
    for k, v in sorted(results.items(), key=lambda kv: -kv[1]):
        print(f"{v:.3f}  {k}")
    (OUT / f"cv-{args.tag}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
