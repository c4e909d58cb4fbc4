"""Benchmark (CPU): does reviewed data make a better instruction model than the same drafts unreviewed?

    OMP_NUM_THREADS=1 .venv/bin/python bench/instruct.py                        # the full run (30-90 min on 2 cores)
    OMP_NUM_THREADS=1 .venv/bin/python bench/instruct.py --langs sw --questions 2 --max-steps 1    # a smoke run
    # the run in BENCHMARKS.md (2 cores under load): --langs sw,id --max-tokens 192 --max-steps 4 --max-new-tokens 64 --answer-batch-size 10

Data: our own human labels, real reviewed data. bench/quality/candidates-v1.jsonl holds 451 English instructions
drafted by the embedded generator for real paragraphs of ../shared/data/web (all ten languages), and
bench/quality/labels/*.pass1.jsonl the first-pass verdicts of native-language readers (accept / edit with a corrected
instruction / reject). The script

1. builds a store (bench/out/instruct/instruct.duckdb): documents and candidates as drafted (pending), then
2. exports them all as drafted: the **unreviewed** set (alpaca template, ` Answer in <Language>.`),
3. records every reader's verdict through the review code (`review.record_decision`: accept, edit with the corrected
   instruction, reject with the reader's note), and exports `--status accepted` (accepted + edited, rejects dropped):
   the **reviewed** set,
4. tunes the embedded base (Gemma 3 270M) with LoRA on each export (`instruct.train_instruct`), on the rows of the
   answer languages by default (`--train-langs`),
5. answers the first N Vicuna-80 questions in each language with both tuned models and the untuned base
   (`instruct.answer_questions`), language by language so that an interrupted run leaves whole languages behind.

Everything lands in the one DuckDB file (model_versions, exports, answers), so `xinstruct eval judge` can be run on it
later; wall times go to bench/out/instruct/times.json and the log. Each step is skipped when its result is already in
the store, so a rerun resumes. Models go under bench/out/instruct/models ($XINSTRUCT_MODELS); `--embedded-from DIR`
links an already converted Gemma 3 270M folder there instead of converting the packaged GGUF again (~90 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "quality"))
OUT = ROOT / "bench" / "out" / "instruct"
QUESTIONS = ROOT.parent / "shared" / "data" / "eval" / "vicuna80_questions.jsonl"


def log(msg: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {msg}", flush=True)


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


class Timer:
    def __init__(self, path: Path):
        self.path = path
        self.times = json.loads(path.read_text()) if path.exists() else {}

    def run(self, key: str, fn):
        t0 = time.perf_counter()
        load0 = load_average()
        out = fn()
        self.times[key] = {"seconds": round(time.perf_counter() - t0, 1), "load_before": load0,
                           "load_after": load_average(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.write_text(json.dumps(self.times, indent=1) + "\n")
        log(f"{key}: {self.times[key]['seconds']} s (load {load0} -> {self.times[key]['load_after']})")
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Store and exports
# ---------------------------------------------------------------------------------------------------------------------
def fill_store(store, rows: list[dict]) -> None:
    """Documents and one pending candidate each, as the generator drafted them (SQL as in bench/export.py)."""
    from xinstruct.store import to_json

    def write(tx):
        for r in rows:
            tx.execute("INSERT INTO documents (id, content_hash, text, lang_declared, lang_detected, lang, source, status, "
                       "meta) VALUES (?, ?, ?, ?, ?, ?, ?, 'kept', ?)",
                       [r["row"], r["text_sha256"], r["text"], r["lang"], r["lang"], r["lang"], r["source"],
                        to_json({"doc_id": r["doc_id"], "split": r["split"]})])
            tx.execute("INSERT INTO candidates (id, doc_id, lang, instruction, response, gen_status, model_version) "
                       "VALUES (?, ?, ?, ?, ?, 'ok', ?)",
                       [r["id"], r["row"], r["lang"], r["instruction"], r["text"], r["generator"]])
            tx.execute("INSERT INTO candidate_versions (candidate_id, version, stage, instruction, model_version) "
                       "VALUES (?, 1, 'generate', ?, ?)", [r["id"], r["instruction"], r["generator"]])

    store.write(write)


def record_labels(store, rows: list[dict]) -> dict[str, int]:
    """Every reader's first-pass verdict as a review decision (through the review code)."""
    from xinstruct import auth, review
    from xinstruct.langs import LANGS

    users = {}
    counts = {"accept": 0, "edit": 0, "reject": 0}
    for r in rows:
        judge = r.get("judge") or "reader"
        if judge not in users:
            users[judge] = auth.add_user(store, judge, secrets.token_urlsafe(16), "reviewer", list(LANGS), replace=True)
        if r["label"] == "edit" and r.get("gold"):
            review.record_decision(store, r["id"], users[judge], "edit", instruction=r["gold"])
        elif r["label"] in ("accept", "edit"):
            review.record_decision(store, r["id"], users[judge], "accept")
        else:
            review.record_decision(store, r["id"], users[judge], "reject", reason="other",
                                   note=(r.get("note") or ", ".join(r.get("failures") or []) or "rejected")[:500])
        counts[r["label"]] += 1
    return counts


def labelled_rows() -> list[dict]:
    import labels  # bench/quality/labels.py

    judged = labels.judgements(1, "v1")
    rows = labels.table("v1")
    return [{**r, "judge": judged[r["id"]].get("judge"), "note": judged[r["id"]].get("note")} for r in rows]


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--langs", default="sw,id,hi", help="languages to answer in")
    ap.add_argument("--train-langs", default=None,
                    help="languages to train on (default: those of --langs; 'all' = the ten; on 2 shared cores the 451 "
                         "drafts of all ten languages take hours)")
    ap.add_argument("--questions", type=int, default=20, help="first N Vicuna-80 questions per language")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="optimizer steps for each model (overrides --epochs): the same training budget for both sets")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4, help="training micro-batch (x2 gradient accumulation)")
    ap.add_argument("--answer-batch-size", type=int, default=10, help="questions per generate call")
    ap.add_argument("--embedded-from", type=Path, default=None,
                    help="an already converted gemma3-270m folder to link instead of converting the GGUF again")
    args = ap.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XINSTRUCT_MODELS", str(out / "models"))
    models = Path(os.environ["XINSTRUCT_MODELS"])
    models.mkdir(parents=True, exist_ok=True)
    if args.embedded_from and not (models / "gemma3-270m").exists():
        (models / "gemma3-270m").symlink_to(args.embedded_from.resolve(), target_is_directory=True)

    from xinstruct import instruct
    from xinstruct.export import ExportConfig, export
    from xinstruct.store import Store
    from xinstruct.store.evals import answers

    langs = [x for x in args.langs.replace(",", " ").split() if x]
    train_langs = [] if args.train_langs == "all" else [
        x for x in (args.train_langs or args.langs).replace(",", " ").split() if x]
    timer = Timer(out / "times.json")
    log(f"machine: {platform.node()}, {os.cpu_count()} cpus, load {load_average()}; OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}; store {out / 'instruct.duckdb'}")
    store = Store(out / "instruct.duckdb")

    with store.session() as tx:
        have = tx.scalar("SELECT count(*) FROM candidates")
    exports = {"unreviewed": out / "export-unreviewed", "reviewed": out / "export-reviewed"}
    if not have:
        rows = timer.run("read_labels", labelled_rows)
        timer.run("fill_store", lambda: fill_store(store, rows))
        timer.run("export_unreviewed", lambda: export(store, ExportConfig(out=exports["unreviewed"], status="all",
                                                                            overwrite=True)))
        counts = timer.run("record_decisions", lambda: record_labels(store, rows))
        log(f"decisions: {counts}")
        timer.run("export_reviewed", lambda: export(store, ExportConfig(out=exports["reviewed"], status="accepted",
                                                                          overwrite=True)))
    for key, folder in exports.items():
        m = json.loads((folder / "manifest.json").read_text())
        log(f"export {key}: {m['rows']} rows, content hash {m['content_hash'][:12]}")

    names = {"unreviewed": "bench-unreviewed", "reviewed": "bench-reviewed"}
    with store.session() as tx:
        known = {r[0] for r in tx.all("SELECT name FROM model_versions")}
    for key in ("reviewed", "unreviewed"):  # the small set first: its numbers come sooner
        if names[key] in known:
            log(f"{names[key]} already trained")
            continue
        cfg = instruct.InstructConfig(export=str(exports[key]), base="embedded", name=names[key], epochs=args.epochs,
                                      langs=train_langs,
                                      max_steps=args.max_steps, max_tokens=args.max_tokens, batch_size=args.batch_size,
                                      grad_accum=2, device="cpu", progress=True)
        timer.run(f"train_{key}", lambda: instruct.train_instruct(store, cfg))

    models_to_ask = ["embedded", names["reviewed"], names["unreviewed"]]
    loaded = {}
    for lang in langs:
        for spec in models_to_ask:
            cfg = instruct.AnswerConfig(model=spec, questions=str(QUESTIONS), langs=[lang], limit=args.questions,
                                        max_new_tokens=args.max_new_tokens, batch_size=args.answer_batch_size, device="cpu",
                                        progress=False)
            if spec not in loaded:
                loaded[spec] = timer.run(f"load_{spec}", lambda: instruct.load_answer_model(store, spec, cfg))
            result = timer.run(f"answer_{spec}_{lang}",
                               lambda: instruct.answer_questions(store, cfg, model=loaded[spec]))
            log(f"{spec} {lang}: {result['langs'][lang]}")
        # one model in memory at a time would be leaner, but three 270M models fit (3 x ~1.1 GB)

    summary = []
    for spec in models_to_ask:
        label = instruct.model_label(spec)
        for lang in langs:
            got = answers(store, label, lang=lang)
            if got:
                summary.append({"model": label, "lang": lang, "answers": len(got),
                                "truncated": sum(a.finish_reason == "length" for a in got),
                                "mean_chars": round(sum(len(a.answer) for a in got) / len(got)),
                                "seconds_per_answer": round(sum(a.seconds or 0 for a in got) / len(got), 2)})
    (out / "summary.json").write_text(json.dumps({"times": timer.times, "answers": summary}, indent=1) + "\n")
    log("| model | lang | answers | truncated | mean chars | s/answer |")
    for s in summary:
        log(f"| {s['model']} | {s['lang']} | {s['answers']} | {s['truncated']} | {s['mean_chars']} | "
            f"{s['seconds_per_answer']} |")
    log(f"done; store {out / 'instruct.duckdb'}")


if __name__ == "__main__":
    main()
