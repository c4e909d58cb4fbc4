"""Real-data suite: the labelled set (bench/quality/) against ../shared/data/web, and the shipped evaluator on a fixed
sample of its test split.

The labelled set names each paragraph by its shared row id and the sha256 of its text; the readers' labels are ours.
SAMPLE test drafts (every accepted one, then edits and rejects in id order; 60 by default, about 3 minutes on 2 CPU
cores) are scored by the trained evaluator and by the earlier gain score in the same run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from xinstruct import quality

QUALITY = Path(__file__).resolve().parents[2] / "bench" / "quality"
SAMPLE = int(os.environ.get("XI_QUALITY_SAMPLE", "60"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.open(encoding="utf-8") if x.strip()]


def labelled(shared_data: Path, split: str | None = None) -> list[quality.Label]:
    """The first-pass labels of the v1 candidates (of one split), with their paragraphs from shared/."""
    cands = {c["id"]: c for c in _jsonl(QUALITY / "candidates-v1.jsonl")}
    texts: dict[str, dict[str, str]] = {}
    out = []
    for path in sorted((QUALITY / "labels").glob("*.pass1.jsonl")):
        for r in _jsonl(path):
            c = cands.get(r["id"])
            if c is None or split not in (None, c["split"]):
                continue  # labels of other candidate sets (e.g. v2) or of the other split
            if c["lang"] not in texts:
                texts[c["lang"]] = {x["id"]: x["text"] for x in _jsonl(shared_data / "web" / f"{c['lang']}.jsonl")}
            text = texts[c["lang"]][c["row"]]
            assert hashlib.sha256(text.encode()).hexdigest() == c["text_sha256"], f"{c['row']} changed in shared/"
            out.append(quality.Label(r["id"], c["lang"], c["instruction"], text, r["label"], r.get("gold")))
    return out


def test_labelled_set_matches_the_shared_paragraphs_and_readers_agree(shared_data):
    items = labelled(shared_data)
    assert len(items) >= 400 and len({x.lang for x in items}) == 10
    assert all(x.label in quality.LABELS for x in items)
    first = {x.id: x.label for x in items}
    second = {r["id"]: r["label"] for p in (QUALITY / "labels").glob("*.pass2.jsonl") for r in _jsonl(p)}
    both = [k for k in second if k in first]
    from sklearn.metrics import cohen_kappa_score

    kappa = cohen_kappa_score([first[k] for k in both], [second[k] for k in both])
    print(f"\n{len(items)} labelled drafts; {len(both)} judged twice, same label {sum(first[k] == second[k] for k in both)}"
          f", Cohen's kappa {kappa:.2f}")
    assert len(both) >= 100 and kappa >= 0.6


def test_written_instructions_are_for_dev_paragraphs_of_shared(shared_data, monkeypatch):
    """The readers' instructions that train the generator (bench/quality/gold.py) name shared paragraphs by row and
    text hash, and none is for a test-split document (gold.train_rows stops on either)."""
    monkeypatch.syspath_prepend(str(QUALITY))
    import gold

    rows = gold.train_rows(shared_data / "web")
    assert len(rows) >= 1000 and {r["lang"] for r in rows} == set(gold.LANGS)


@pytest.mark.slow
def test_trained_evaluator_beats_the_gain_score_on_held_out_drafts(shared_data):
    test = sorted(labelled(shared_data, "test"), key=lambda x: x.id)
    order = {"accept": 0, "edit": 1, "reject": 2}
    accepts = [x for x in test if x.label == "accept"]
    rest = [x for x in test if x.label != "accept"]
    edits, rejects = [x for x in rest if x.label == "edit"], [x for x in rest if x.label == "reject"]
    n_edit = min(len(edits), (SAMPLE - len(accepts)) // 2)
    sample = sorted(accepts + edits[:n_edit] + rejects[: SAMPLE - len(accepts) - n_edit], key=lambda x: order[x.label])
    trained = quality.score_labels(sample, "trained")
    gain = quality.score_labels(sample, "gain")
    a_t = quality.agreement([x.label for x in sample], [trained[x.id] for x in sample])
    a_g = quality.agreement([x.label for x in sample], [gain[x.id] for x in sample])
    print(f"\n{len(sample)} test drafts ({a_t.accept} accept, {a_t.edit} edit, {a_t.reject} reject): trained evaluator "
          f"ROC-AUC accept {a_t.auc_accept}, kept {a_t.auc_usable}; gain score accept {a_g.auc_accept}, "
          f"kept {a_g.auc_usable}")
    assert a_t.auc_accept >= 0.80 and a_t.auc_usable >= 0.65
    assert a_t.auc_accept >= a_g.auc_accept
