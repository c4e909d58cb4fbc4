"""A simulated two-round run of the whole loop with the real embedded models; prints the round report table.

    .venv/bin/python bench/loop.py [--langs sw,ur,fi] [--per-round 4] [--train]

Documents are held-out pairs of our seed set (never used to train the shipped adapter), so each has a reference
instruction written by a person. A simulated reviewer judges every generated instruction by its MiniLM similarity to
the reference: >= 0.6 accept, 0.35-0.6 edit (the reviewer writes the reference), below 0.35 reject.
Round 1: the bare Gemma 3 270M base with two in-context seed examples (what a new project starts with).
Feedback: the evaluator is calibrated on round 1's decisions.
Round 2: the backward generator (the adapter shipped in the package, trained on the seed; with --train, a new version
trained on the seed plus round 1's accepted and edited pairs — slow on CPU) and the calibrated evaluator.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from xinstruct import curate, feedback, generate, refine  # noqa: E402
from xinstruct.auth import User  # noqa: E402
from xinstruct.diversify import default_embedder  # noqa: E402
from xinstruct.review import record_decision  # noqa: E402
from xinstruct.seed import load_seed, split_heldout  # noqa: E402
from xinstruct.store import Store  # noqa: E402

REVIEWER = User("sim-reviewer", "reviewer")


def add_documents(store: Store, pairs) -> dict[str, str]:
    """Store held-out seed responses as kept documents; returns doc id -> reference instruction."""
    import hashlib

    refs = {}

    def write(tx):
        for p in pairs:
            doc_id = hashlib.sha256(p.response.encode()).hexdigest()[:16]
            tx.execute("INSERT INTO documents (id, content_hash, text, lang_declared, lang_detected, lang, source, status)"
                       " VALUES (?, ?, ?, ?, ?, ?, 'seed-heldout', 'kept')",
                       [doc_id, doc_id, p.response, p.lang, p.lang, p.lang])
            refs[doc_id] = p.instruction

    store.write(write)
    return refs


def review(store: Store, round_id: int, refs: dict[str, str]) -> None:
    emb = default_embedder()
    with store.session() as tx:
        rows = tx.all("SELECT id, doc_id, instruction FROM candidates WHERE round_id = ? AND gen_status = 'ok'", [round_id])
        rejected_gen = tx.all("SELECT id FROM candidates WHERE round_id = ? AND gen_status <> 'ok'", [round_id])
    if rows:
        a = emb.encode([r[2] for r in rows])
        b = emb.encode([refs[r[1]] for r in rows])
        for (cid, doc_id, _), sim in zip(rows, np.einsum("ij,ij->i", a, b)):
            if sim >= 0.6:
                record_decision(store, cid, REVIEWER, "accept")
            elif sim >= 0.35:
                record_decision(store, cid, REVIEWER, "edit", instruction=refs[doc_id])
            else:
                record_decision(store, cid, REVIEWER, "reject", reason="not_an_answer")
    print(f"round {round_id}: reviewed {len(rows)}, {len(rejected_gen)} outputs rejected at generation (not English)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--langs", default="sw,ur,fi,th")
    ap.add_argument("--per-round", type=int, default=4, help="documents per language per round")
    ap.add_argument("--train", action="store_true", help="train round 2's generator on seed + round 1 (slow on CPU)")
    args = ap.parse_args()
    langs = args.langs.split(",")
    _, held = split_heldout(load_seed())
    rounds = {1: [], 2: []}
    for lang in langs:
        mine = [p for p in held if p.lang == lang]
        rounds[1] += mine[: args.per_round]
        rounds[2] += mine[args.per_round : 2 * args.per_round]
    from xinstruct.models.embedded import load_embedded

    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "loop.duckdb")
        started = time.perf_counter()
        base = load_embedded(adapter=None)
        refs = add_documents(store, rounds[1])
        generate.run(store, generate.GenerateConfig(round_id=1, few_shot=2, progress=False), model=base)
        refine.run(store, refine.RefineConfig(rounds=1, variants=2, progress=False), model=base)
        review(store, 1, refs)
        result = feedback.feedback(store, train=args.train, out_dir=Path(d) / "feedback")
        info = feedback.new_round(store)
        generator = (generate.load_generator(generate.GenerateConfig(model=info["generator"]), store)
                     if info["generator"] else load_embedded())  # shipped backward adapter
        refs.update(add_documents(store, rounds[2]))
        generate.run(store, generate.GenerateConfig(round_id=2, progress=False), model=generator)
        refine.run(store, refine.RefineConfig(rounds=1, variants=2, progress=False), model=base)
        review(store, 2, refs)
        report = feedback.round_report(store)
        totals = curate.review_rates(store, ("round",))  # all languages of a round, by the one definition
        minutes = (time.perf_counter() - started) / 60
    print(f"\n## Loop: simulated two-round run ({platform.machine()}, {os.cpu_count()} cores, {date.today()}, "
          f"{minutes:.0f} min; calibration {result['calibration']})\n")
    cols = ["round", "lang", "reviewed", "acceptance_rate", "edit_rate", "mean_edit_distance", "evaluator_auc",
            "generator", "evaluator"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in report:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    for (rnd,), t in sorted(totals.items()):
        acc, ed = (f"{v:.3f}" if v is not None else "" for v in (t["acceptance_rate"], t["edit_rate"]))
        print(f"| {rnd} | all | {t['decided']} | {acc} | {ed} | | | | |")


if __name__ == "__main__":
    main()
