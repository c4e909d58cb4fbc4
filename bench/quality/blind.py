"""Compare two generators on the same paragraphs, judged blind by the same readers.

`make` takes two candidate files (e.g. v1 and v3), keeps the paragraphs both drafted, and writes one shuffled candidate
file whose ids say nothing of the generator (`candidates-<out>.jsonl`, ids `<out>-<lang>-NN`); identical drafts appear
once. The key (which blind id is which generator's draft) goes to `blind-<out>-key.json`: readers must not open it.
Readers judge the blind file with GUIDE.md (`show.py --tag <out> --lang xx`) into `labels/xx.<out>.pass1.jsonl`.
`report` unblinds: per generator, accept / edit / reject, and per paragraph whether B's draft is judged better than,
as good as, or worse than A's (accept > edit > reject), by the same reader in the same sitting.

    .venv/bin/python bench/quality/blind.py make --a v1 --b v3 --out blind3
    .venv/bin/python bench/quality/blind.py report --out blind3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RANK = {"accept": 2, "edit": 1, "reject": 0}
# Kind of text of each source of ../shared/data/web (issue 14 asks for the targets per kind as well as overall).
KIND = {"tydiqa-goldp": "encyclopedic", "iapp-wiki-qa": "encyclopedic", "xquad-translated": "encyclopedic",
        "tquad": "encyclopedic", "idk-mrc-tydiqa": "encyclopedic", "masakhanews": "news", "baomoi-news": "news",
        "bnlp-punct-news-reconstructed": "news", "bend-the-truth-real-news": "news", "ud-tamil-ttb": "news",
        "hindi-discourse-stories": "fiction", "ud-finnish-tdt": "mixed (treebank)"}


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.open(encoding="utf-8") if x.strip()]


def make(a: str, b: str, out: str) -> None:
    by_row = {tag: {c["row"]: c for c in _read(HERE / f"candidates-{tag}.jsonl")} for tag in (a, b)}
    rows = sorted(set(by_row[a]) & set(by_row[b]))
    rng = random.Random(f"xinstruct-blind-{out}")
    items, key = [], {}
    for lang in sorted({by_row[a][r]["lang"] for r in rows}):
        mine = []
        for row in (r for r in rows if by_row[a][r]["lang"] == lang):
            ca, cb = by_row[a][row], by_row[b][row]
            drafts = {ca["instruction"]: [a]}
            drafts.setdefault(cb["instruction"], []).append(b)
            for instruction, tags in drafts.items():
                mine.append((ca, instruction, tags))
        rng.shuffle(mine)
        for n, (c, instruction, tags) in enumerate(mine, 1):
            bid = f"{out}-{lang}-{n:02d}"
            items.append({**{k: c[k] for k in ("row", "doc_id", "lang", "source", "split", "text_sha256")},
                          "id": bid, "instruction": instruction, "generator": "blind"})
            key[bid] = {"row": c["row"], "generators": tags}
    with (HERE / f"candidates-{out}.jsonl").open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    (HERE / f"blind-{out}-key.json").write_text(json.dumps({"a": a, "b": b, "key": key}, indent=1) + "\n")
    print(f"{len(items)} blind drafts for {len(rows)} paragraphs ({a} vs {b}) -> candidates-{out}.jsonl")


def report(out: str) -> dict:
    meta = json.loads((HERE / f"blind-{out}-key.json").read_text())
    a, b, key = meta["a"], meta["b"], meta["key"]
    labels = {}
    for path in sorted((HERE / "labels").glob(f"*.{out}.pass1.jsonl")):
        for r in _read(path):
            labels[r["id"]] = r["label"]
    per_row: dict[str, dict[str, str]] = defaultdict(dict)
    for bid, k in key.items():
        if bid in labels:
            for tag in k["generators"]:
                per_row[k["row"]][tag] = labels[bid]
    both = {row: v for row, v in per_row.items() if a in v and b in v}
    counts = {tag: Counter(v[tag] for v in both.values()) for tag in (a, b)}
    paired = Counter("better" if RANK[v[b]] > RANK[v[a]] else "worse" if RANK[v[b]] < RANK[v[a]] else "same"
                     for v in both.values())
    source = {it["row"]: it["source"] for it in _read(HERE / f"candidates-{out}.jsonl")}
    by_lang: dict[str, Counter] = defaultdict(Counter)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for row, v in both.items():
        for group in (by_lang[row.split("-", 1)[0]], by_kind[KIND.get(source[row], "other")]):
            for tag in (a, b):
                group[f"{tag}_kept"] += v[tag] != "reject"
                group[f"{tag}_accept"] += v[tag] == "accept"
            group["n"] += 1
    n = len(both)
    result = {"paragraphs": n, "labelled_blind_items": len(labels), "paired": dict(paired),
              **{f"{tag}_{label}": counts[tag][label] for tag in (a, b) for label in RANK},
              "by_lang": {lang: dict(c) for lang, c in sorted(by_lang.items())},
              "by_kind": {kind: dict(c) for kind, c in sorted(by_kind.items())}}
    print(f"{n} paragraphs judged blind with both drafts ({a} vs {b})")
    for tag in (a, b):
        c = counts[tag]
        print(f"  {tag}: accept {c['accept']} ({c['accept'] / max(n, 1):.1%}), edit {c['edit']}, reject {c['reject']}; "
              f"kept {(c['accept'] + c['edit']) / max(n, 1):.1%}")
    print(f"  {b} vs {a} per paragraph: better {paired['better']}, same {paired['same']}, worse {paired['worse']}")
    for group, c in [*sorted(by_lang.items()), *sorted(by_kind.items())]:
        print(f"  {group}: n={c['n']} kept {a} {c[f'{a}_kept']} / {b} {c[f'{b}_kept']}, "
              f"accept {a} {c[f'{a}_accept']} / {b} {c[f'{b}_accept']}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--a", required=True)
    m.add_argument("--b", required=True)
    m.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--out", required=True)
    r.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.a, args.b, args.out)
    else:
        res = report(args.out)
        if args.json:
            print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
