"""Choose and fit the trained evaluator on the dev split; measure it and the earlier gain score on the test split.

Training data: dev drafts (accept = 1, edit or reject = 0), the gold instructions readers wrote for dev paragraphs
(accept), and packaged seed pairs with hard negatives made from them. Feature sets and data weights are compared by
5-fold cross-validation over dev drafts only (a fold's gold pairs leave with it); the best is refitted on all the
training data and measured once on the test split, beside the earlier gain score on the same candidates.

    .venv/bin/python bench/quality/analyze.py --tag v1 [--save]
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
SCALAR = ["fit", "prior", "pmi", "grounded", "missing", "log_words", "refers_to_text", "question"]


def load_feats(*names: str) -> dict[str, dict]:
    """id -> {fit, prior, hidden, gain} over the named feature files."""
    out: dict[str, dict] = {}
    for name in names:
        path = OUT / f"features-{name}.npz"
        if not path.exists():
            continue
        f = np.load(path)
        for i, k in enumerate(f["id"].tolist()):
            row = out.setdefault(k, {"gain": float("nan")})
            if "gen_fit" in f.files:
                row.update(fit=float(f["gen_fit"][i]), prior=float(f["gen_prior"][i]), hidden=f["gen_hidden"][i])
            if "gain" in f.files and not np.isnan(f["gain"][i]):
                row["gain"] = float(f["gain"][i])
    return {k: v for k, v in out.items() if "fit" in v}


def featurize(items: list[dict], feats: dict[str, dict]) -> tuple[list[dict], np.ndarray]:
    from xinstruct.evaluator import ModelSignals, feature_dict

    rows, hidden = [], []
    for it in items:
        f = feats[it["id"]]
        sig = ModelSignals(f["fit"], f["prior"], f["hidden"])
        rows.append(feature_dict(it["instruction"], it["text"], it["lang"], sig))
        hidden.append(f["hidden"])
    return rows, np.stack(hidden)


def train_set(drafts, golds, seeds, feats, w_gold, w_seed):
    items = drafts + (golds if w_gold else []) + (seeds if w_seed else [])
    rows, hidden = featurize(items, feats)
    y = np.array([it["label"] == "accept" for it in items], dtype=int)
    w = np.array([1.0] * len(drafts) + [w_gold] * (len(golds) if w_gold else 0) + [w_seed] * (len(seeds) if w_seed else 0))
    return rows, hidden, y, w


def cv(drafts, golds, seeds, feats, *, features, components, C, w_gold, w_seed, folds=5, seed=0, return_pred=False):
    from sklearn.metrics import roc_auc_score

    from xinstruct.evaluator import fit

    fold = np.random.default_rng(seed).permutation(len(drafts)) % folds
    pred = np.zeros(len(drafts))
    for k in range(folds):
        tr = [d for d, f in zip(drafts, fold) if f != k]
        te = [d for d, f in zip(drafts, fold) if f == k]
        keep = {d["id"] for d in tr}
        g = [x for x in golds if x["id"].removeprefix("gold-") in keep]
        rows, hidden, y, w = train_set(tr, g, seeds, feats, w_gold, w_seed)
        ev = fit(rows, y, features=features, hidden=hidden, components=components, C=C, weights=w)
        r, h = featurize(te, feats)
        pred[fold == k] = ev.predict(r, h)
    y = np.array([d["label"] == "accept" for d in drafts], dtype=int)
    u = np.array([d["label"] != "reject" for d in drafts], dtype=int)
    if return_pred:
        return pred
    # repeated 5-fold (3 shuffles) would be steadier; one shuffle keeps the search within minutes on 2 cores
    return round(float(roc_auc_score(y, pred)), 3), round(float(roc_auc_score(u, pred)), 3)


CONFIGS = {"scalar": (SCALAR, 0), "scalar+h8": (SCALAR, 8), "scalar+h16": (SCALAR, 16),
           "grounding+surface": (SCALAR[3:], 0), "model-only": (SCALAR[:3], 0)}


def thresholds(pred: np.ndarray, drafts: list[dict]) -> dict[str, float]:
    """good_at: the lowest cross-validated score at which at least half the drafts above it were accepted as they are
    (1.0 when no score reaches that); bad_below: the highest score under which at most 5% of the usable drafts lie."""
    acc = np.array([d["label"] == "accept" for d in drafts])
    usable = np.array([d["label"] != "reject" for d in drafts])
    good_at = 1.0
    for t in sorted(set(np.round(pred, 3)), reverse=True):
        above = pred >= t
        if above.sum() >= 3 and acc[above].mean() >= 0.5:
            good_at = float(t)
    bad_below = float(np.quantile(pred[usable], 0.05)) if usable.any() else 0.0
    return {"good_at": round(good_at, 3), "bad_below": round(min(bad_below, good_at), 3)}


def report_test(ev, test, feats) -> dict:
    from xinstruct import quality

    rows, hidden = featurize(test, feats)
    p = ev.predict(rows, hidden)
    labels = [t["label"] for t in test]
    gain = [feats[t["id"]]["gain"] for t in test]
    out = {}
    for name, scores in (("trained", p), ("gain", gain)):
        ok = [i for i, s in enumerate(scores) if not np.isnan(s)]
        lab, sc = [labels[i] for i in ok], [float(scores[i]) for i in ok]
        a = quality.agreement(lab, sc).as_dict()
        a["ci_accept"] = quality.bootstrap_auc(lab, sc, ("accept",))
        a["ci_usable"] = quality.bootstrap_auc(lab, sc, ("accept", "edit"))
        a["per_lang"] = {lang: quality.agreement([lab[i] for i in range(len(ok)) if test[ok[i]]["lang"] == lang],
                                                 [sc[i] for i in range(len(ok)) if test[ok[i]]["lang"] == lang]).as_dict()
                         for lang in sorted({t["lang"] for t in test})}
        out[name] = a
    return out


def main() -> None:
    from labels import read_jsonl, table

    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args()
    feats = load_feats(f"{args.tag}-gen", f"{args.tag}-gain", "seed", f"gold-{args.tag}")
    items = [it for it in table(args.tag) if it["id"] in feats]
    drafts = [it for it in items if it["split"] == "dev"]
    test = [it for it in items if it["split"] == "test"]
    golds = [g for g in read_jsonl(OUT / f"extra-gold-{args.tag}.jsonl") if g["id"] in feats]
    seeds = [s for s in read_jsonl(OUT / "extra-seed.jsonl") if s["id"] in feats]
    print(f"dev drafts {len(drafts)} (accept {sum(d['label'] == 'accept' for d in drafts)}), golds {len(golds)}, "
          f"seed rows {len(seeds)}, test {len(test)} (accept {sum(d['label'] == 'accept' for d in test)})")
    results = {}
    for fs_name, (fs, k) in CONFIGS.items():
        for w_gold in (0.0, 0.5):
            for w_seed in (0.0, 0.3):
                for C in (0.1, 1.0):
                    key = (fs_name, w_gold, w_seed, C)
                    results[key] = cv(drafts, golds, seeds, feats, features=fs, components=k, C=C, w_gold=w_gold,
                                      w_seed=w_seed)
    ranked = sorted(results.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
    for key, (a, u) in ranked:
        print(f"accept {a:.3f}  usable {u:.3f}  {key}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"cv-{args.tag}.json").write_text(json.dumps({" ".join(map(str, k)): v for k, v in results.items()}, indent=1))
    if not args.save:
        return
    from xinstruct.evaluator import SHIPPED, fit

    (fs_name, w_gold, w_seed, C), (cv_accept, cv_usable) = ranked[0]
    fs, k = CONFIGS[fs_name]
    pred = cv(drafts, golds, seeds, feats, features=fs, components=k, C=C, w_gold=w_gold, w_seed=w_seed,
              return_pred=True)
    rows, hidden, y, w = train_set(drafts, golds, seeds, feats, w_gold, w_seed)
    ev = fit(rows, y, features=fs, hidden=hidden, components=k, C=C, weights=w, name="xi-evaluator-v1",
             feature_model="gemma3-270m+xi-backward-v1")
    test_report = report_test(ev, test, feats)
    ev.metrics = {
        "C": C, "config": fs_name, "weights": {"gold": w_gold, "seed": w_seed},
        "thresholds": thresholds(pred, drafts),
        "trained_on": {"dev_drafts": len(drafts), "gold": len(golds) if w_gold else 0, "seed_rows": len(seeds) if w_seed else 0},
        "dev_cv": {"auc_accept": cv_accept, "auc_usable": cv_usable},
        "test": {k2: {kk: vv for kk, vv in v.items() if kk != "per_lang"} for k2, v in test_report.items()},
        "labels": f"bench/quality/labels (tag {args.tag})",
    }
    ev.save(SHIPPED)
    (OUT / f"test-{args.tag}.json").write_text(json.dumps(test_report, indent=1))
    print(json.dumps(ev.metrics, indent=1))


if __name__ == "__main__":
    main()
