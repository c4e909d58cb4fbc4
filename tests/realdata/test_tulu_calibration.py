"""Real-data check of the evaluator: human acceptability labels (Tulu 1 human evaluation, ../shared/data/quality).

A fixed, class-balanced sample of SAMPLE (instruction, completion) pairs — 60 acceptable, 60 not by default, sized
to fit CI's time on 2 CPU cores — is scored by the embedded evaluator (Gemma 3 270M base: likelihood gain, conditional
likelihood, length; the label-word pass is skipped to halve the time). The calibration is fitted on one half
(alternating within each class) and ROC-AUC is reported on the other half.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from xinstruct.feedback import fit_calibration
from xinstruct.refine import Evaluator, RefineConfig, features

SAMPLE = int(os.environ.get("XI_TULU_SAMPLE", "120"))


def load_pairs(path) -> list[tuple[str, str, int]]:
    """(prompt, completion, acceptable) with the majority label over annotators; empty texts left out."""
    votes: dict[tuple[str, str], list[bool]] = {}
    for line in path.open(encoding="utf-8"):
        row = json.loads(line)
        for side in "ab":
            key = (row["prompt"], row[f"completion_{side}"])
            votes.setdefault(key, []).append(row[f"completion_{side}_is_acceptable"] == "yes")
    return [(p, c, int(2 * sum(v) >= len(v))) for (p, c), v in votes.items() if p and c]


@pytest.mark.slow
def test_calibrated_embedded_evaluator_separates_acceptable_from_unacceptable(shared_data):
    from xinstruct.models.embedded import load_embedded

    pairs = load_pairs(shared_data / "quality" / "tulu1_human_acceptability_preference.jsonl")
    rng = random.Random(0)
    good = [p for p in pairs if p[2] == 1]
    bad = [p for p in pairs if p[2] == 0]
    rng.shuffle(good)
    rng.shuffle(bad)
    sample = good[: SAMPLE // 2] + bad[: SAMPLE // 2]
    evaluator = Evaluator(load_embedded(adapter=None), RefineConfig(max_text_chars=600))
    signals = evaluator.signals([(p[:600], c, "en") for p, c, _ in sample], label_words=False)
    X = np.array([features(s) for s in signals])
    y = np.array([label for _, _, label in sample])
    test = np.array([i % 2 == 1 for i in range(len(sample))])  # alternate within each class block
    fit = fit_calibration(X, y, test)
    print(f"\nTulu 1 acceptability, {len(sample)} pairs ({int(y.sum())} acceptable): calibration fitted on "
          f"{fit.n_train}, held-out ROC-AUC {fit.auc:.3f}, accuracy {fit.accuracy:.3f} at threshold {fit.threshold:.3f}; "
          f"coefficients {fit.calibration}")
    assert fit.auc is not None and fit.auc >= 0.65, f"held-out ROC-AUC {fit.auc} < 0.65"
