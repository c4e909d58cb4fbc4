"""One refine round on the shipped generator's own drafts: what `xinstruct refine --rounds 1` changes, and what it costs.

Takes the first `--per-lang` test-split drafts of each language from `candidates-<base>.jsonl` (default v3: greedy
drafts of the shipped generator xi-backward-v3), ingests their paragraphs (by row id, from ../shared/data/web) into a
fresh store with the default settings, stores each draft as its paragraph's generated candidate (through generate's
own row builder and the store API, so the 'before' is exactly that draft), then runs `refine.run` with the defaults
twice: `rounds=0` (label only) and then `rounds=1` (the resumable second run only rewrites the flawed ones), timing
each. Writes `candidates-<tag>.jsonl` (same format as the base file, every picked paragraph, the instruction after the
round, unchanged ones included, so `blind.py make --a <base> --b <tag>` pairs them) and the per-draft labels, scores
and timings to `bench/out/quality/refine-<tag>.json`.

    OMP_NUM_THREADS=1 /usr/bin/time -v .venv/bin/python bench/quality/refine_round.py --per-lang 5 --tag r1
    # the CLI's path (one refine.run, one evaluator load), for cost only; compares its rewrites with r1's:
    OMP_NUM_THREADS=1 /usr/bin/time -v .venv/bin/python bench/quality/refine_round.py --one-call --no-write --tag r1b
    .venv/bin/python bench/quality/blind.py make --a v3 --b r1 --out blind4     # then judge, then `report`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sample import shared_rows, text_hash  # noqa: E402


def picked(base: str, per_lang: int, split: str) -> list[dict]:
    """The first `per_lang` drafts of each language of `split`, in file order."""
    rows = [json.loads(x) for x in (HERE / f"candidates-{base}.jsonl").open(encoding="utf-8") if x.strip()]
    out, seen = [], Counter()
    for c in rows:
        if c["split"] == split and seen[c["lang"]] < per_lang:
            out.append(c)
            seen[c["lang"]] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="v3", help="candidates file with the drafts to refine")
    ap.add_argument("--tag", default="r1", help="name of the output candidates file")
    ap.add_argument("--per-lang", type=int, default=5)
    ap.add_argument("--split", default="test", choices=["dev", "test"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--db", default=None, help="store to use (default: a temporary one)")
    ap.add_argument("--one-call", action="store_true", help="one refine.run(rounds=N), as `xinstruct refine --rounds N` "
                    "runs it (one evaluator load; no separate label/round timings)")
    ap.add_argument("--no-write", action="store_true", help="do not write candidates-<tag>.jsonl (timing reruns)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from xinstruct import generate, ingest, refine
    from xinstruct.models.base import Generation
    from xinstruct.store import Store
    from xinstruct.textcheck import clean_text

    drafts = picked(args.base, args.per_lang, args.split)
    texts = {}
    for lang in sorted({c["lang"] for c in drafts}):
        by_id = {r["id"]: r for r in shared_rows(lang)}
        for c in (c for c in drafts if c["lang"] == lang):
            src = by_id[c["row"]]
            assert text_hash(src["text"]) == c["text_sha256"], f"{c['row']}: paragraph changed in shared/"
            texts[c["row"]] = src
    tmp = Path(tempfile.mkdtemp(prefix="xi-refine-round-"))
    corpus = tmp / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for c in drafts:
            src = texts[c["row"]]
            f.write(json.dumps({"text": src["text"], "url": src.get("url"), "lang": c["lang"]}, ensure_ascii=False) + "\n")
    store = Store(args.db or tmp / "refine.duckdb")
    print("ingest:", ingest.ingest(store, [corpus], ingest.IngestConfig(progress=False)).as_dict(), flush=True)

    # each paragraph's draft becomes its generated candidate (generate's row builder, the instruction as the output)
    by_hash = {text_hash(clean_text(texts[c["row"]]["text"])): c for c in drafts}
    round_id = generate.current_round(store)
    docs = generate.next_pending(store, {c["lang"]: len(drafts) for c in drafts}, round_id, len(drafts))
    rows, cand_of = [], {}
    for doc in docs:
        c = by_hash[text_hash(doc.text)]
        row = generate.candidate_row(doc, Generation(c["instruction"]), round_id=round_id, model_name=c["generator"],
                                     sampling_json=json.dumps({"from": f"candidates-{args.base}.jsonl"}))
        row |= {"instruction": c["instruction"], "gen_status": "ok", "gen_reason": None}
        rows.append(row)
        cand_of[c["row"]] = row["id"]
    store.write(lambda tx: generate.write_batch(tx, rows))
    missing = [c["row"] for c in drafts if c["row"] not in cand_of]
    print(f"{len(rows)} drafts stored ({len(missing)} paragraphs dropped by ingest: {missing})", flush=True)
    drafts = [c for c in drafts if c["row"] in cand_of]

    load_before = os.getloadavg()
    c0, t0 = time.process_time(), time.perf_counter()
    s0 = None if args.one_call else refine.run(store, refine.RefineConfig(rounds=0, progress=False))
    t1 = time.perf_counter()
    s1 = refine.run(store, refine.RefineConfig(rounds=args.rounds, progress=False))
    t2, c2 = time.perf_counter(), time.process_time()
    load_after = os.getloadavg()

    per_draft, out_rows = [], []
    for c in drafts:
        hist = refine.history(store, cand_of[c["row"]])
        first = next(h for h in hist if h["stage"] == "label")
        last = hist[-1]
        per_draft.append({"row": c["row"], "lang": c["lang"], "before": c["instruction"], "after": last["instruction"],
                          "label_before": first["label"], "score_before": round(first["score"], 3),
                          "label_after": last["label"], "score_after": round(last["score"], 3),
                          "changed": last["instruction"] != c["instruction"]})
        out_rows.append({**c, "id": f"{args.tag}-{c['row']}", "instruction": last["instruction"],
                         "generator": f"{c['generator']} + refine {args.rounds} round(s)"})
    if not args.no_write:
        with (HERE / f"candidates-{args.tag}.jsonl").open("w", encoding="utf-8") as f:
            for r in out_rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n = len(drafts)
    flawed = sum(d["label_before"] == "flawed" for d in per_draft)
    summary = {
        "n": n, "per_lang": args.per_lang, "rounds": args.rounds,
        "labels_before": dict(Counter(d["label_before"] for d in per_draft)),
        "labels_after": dict(Counter(d["label_after"] for d in per_draft)),
        "flawed": flawed, "changed": sum(d["changed"] for d in per_draft),
        "one_call": args.one_call, "label_s": None if args.one_call else round(t1 - t0, 1),
        "round_s": None if args.one_call else round(t2 - t1, 1), "total_s": round(t2 - t0, 1),
        "s_per_candidate": round((t2 - t0) / n, 2), "cpu_s_per_candidate": round((c2 - c0) / n, 2),
        "round_s_per_flawed": None if args.one_call else round((t2 - t1) / max(flawed, 1), 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "stats_label": s0 and {k: s0[k] for k in ("labelled", "labels")},
        "stats_round": {k: s1[k] for k in ("refined", "unchanged", "rounds", "labels")},
    }
    out = HERE.parents[1] / "bench" / "out" / "quality"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"refine-{args.tag}.json").write_text(json.dumps({"summary": summary, "drafts": per_draft}, indent=1,
                                                            ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
