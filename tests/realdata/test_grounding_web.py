"""Real-data suite: the grounding check on real web paragraphs of ../shared/data/web (bench/grounding.py's cases).

True entities of 50 paragraphs (5 per language, hand-written instructions in the bench file) must be found; the names
of the other paragraphs of the same language, swapped in, must be reported missing. On the generated drafts readers
judged (bench/quality), the check must flag most drafts with an invented entity and few kept ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "grounding.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_grounding", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_true_entities_are_found_and_swapped_ones_missing_in_every_language(shared_data):
    bench = _bench()
    res = bench.run(shared_data / "web")
    print(json.dumps({lang: {k: v[k] for k in ("recall", "swapped_missing", "baseline_recall")}
                      for lang, v in res["languages"].items()}, indent=1))
    print("overall", res["overall"])
    assert set(res["languages"]) == {"bn", "fi", "hi", "id", "sw", "ta", "th", "tr", "ur", "vi"}
    overall = res["overall"]
    assert overall["recall"] >= 0.90 and overall["swapped_missing"] >= 0.90, overall
    # transliteration is what finds names in other scripts: a plain substring test finds under half
    assert overall["recall"] >= overall["baseline_recall"] + 0.3, overall
    low = {lang: (v["recall"], v["swapped_missing"]) for lang, v in res["languages"].items()
           if v["recall"] < 0.8 or v["swapped_missing"] < 0.85}
    assert not low, f"languages under 0.80 found / 0.85 missing: {low}"
    # every span of the hand-written instructions is extracted (the one known exception: two names side by side)
    not_extracted = [x for v in res["languages"].values() for x in v["not_extracted"]]
    assert len(not_extracted) <= 2, not_extracted


def test_on_the_drafts_readers_judged_the_check_flags_inventions_not_keepers(shared_data):
    # What the generator really writes (bench/quality labels): at 2026-12-07, test split, 0.65 of the 264 drafts with an
    # invented entity flagged, 0.09 of the 79 kept drafts (false alarms).
    res = _bench().readers(shared_data / "web")["test"]["all"]
    print(res)
    assert res["invented"]["n"] >= 200 and res["kept"]["n"] >= 50, res
    assert res["invented"]["flagged"] >= 0.55, res
    assert res["kept"]["flagged"] <= 0.15, res
    # flagging must separate the two, not flag everything or nothing
    assert res["invented"]["flagged"] >= res["kept"]["flagged"] + 0.4, res
