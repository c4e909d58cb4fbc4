"""The report of one stored comparison of model A against model B (`xinstruct eval report`, the Rounds page).

Per language: pairs judged in both orders and their outcome for A (win / tie / loss, see `judge.pair_outcome`), the
share of each among the **decided** pairs (win + tie + loss; unparseable and pending pairs are counted apart, never
folded into ties) with a 95% **Wilson score interval** (`judge.wilson`), the number of unparseable judge outputs, and
the automatic measures of both models' answers (`measures`). Beside it, what each model was trained on: its
model_versions row (kind, base, data hash), the export with that content hash (rows, filter) and, when that export came
from this store, the store's current review acceptance rate per language.
"""

from __future__ import annotations

from collections import defaultdict

from .errors import InputError
from .judge import POSITIONS, PROMPT_VERSION, pair_outcome, wilson
from .measures import measure_answers
from .store import Store
from .store.evals import answers
from .store.judging import comparisons, judgements, model_data

INTERVAL = "95% Wilson score interval of each share, over the decided pairs (win + tie + loss)"
OUTCOMES = ("win", "tie", "loss", "unparseable", "pending")


def pick(store: Store, model_a: str, model_b: str, *, judge: str | None = None,
         question_set: str | None = None) -> dict:
    """The stored comparison of A against B (the one judge, prompt and question set), or a clear error."""
    found = [c for c in comparisons(store) if c["model_a"] == model_a and c["model_b"] == model_b
             and judge in (None, c["judge"]) and question_set in (None, c["question_set"])]
    if not found:
        stored = [f"{c['model_a']} vs {c['model_b']} (judge {c['judge']}, set {c['question_set']})"
                  for c in comparisons(store)][:10]
        raise InputError(f"no judgements of {model_a} against {model_b}"
                         + (f" by {judge}" if judge else "") + (f" on {question_set}" if question_set else ""),
                         hint="run `xinstruct eval judge --a A --b B --judge MODEL` first"
                              + (f"; stored: {'; '.join(stored)}" if stored else ""))
    if len(found) > 1:
        current = [c for c in found if c["prompt_version"] == PROMPT_VERSION]
        found = current if len({(c["judge"], c["question_set"]) for c in current}) == 1 else found
    if len(found) > 1:
        options = "; ".join(f"--judge {c['judge']} --questions-set {c['question_set']} ({c['prompt_version']})"
                            for c in found)
        raise InputError(f"{model_a} against {model_b} was judged {len(found)} ways", hint=f"choose one: {options}")
    return found[0]


def outcome_counts(by_question: dict) -> dict:
    counts = dict.fromkeys(OUTCOMES, 0)
    for by_position in by_question.values():
        counts[pair_outcome(by_position)] += 1
    decided = counts["win"] + counts["tie"] + counts["loss"]
    out = {"pairs": len(by_question), **counts, "decided": decided}
    for k in ("win", "tie", "loss"):
        ci = wilson(counts[k], decided)
        out[f"{k}_rate"] = counts[k] / decided if decided else None
        out[f"{k}_low"], out[f"{k}_high"] = ci if ci else (None, None)
    return out


def report(store: Store, model_a: str, model_b: str, *, judge: str | None = None, question_set: str | None = None,
           langs: list[str] | None = None, detect=None, examples: int = 20) -> dict:
    """The comparison report (see the module doc) as plain data (JSON-ready)."""
    from . import curate

    comp = pick(store, model_a, model_b, judge=judge, question_set=question_set)
    js = judgements(store, model_a, model_b, judge=comp["judge"], prompt_version=comp["prompt_version"],
                    question_set=comp["question_set"])
    by_lang: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for j in js:
        if not langs or j.lang in langs:
            by_lang[j.lang][j.question_id][j.position] = j
    models = {"a": model_data(store, model_a), "b": model_data(store, model_b)}
    rates = {}
    if any(m["export"] for m in models.values()):
        rates = {k[0]: v for k, v in curate.review_rates(store, langs=sorted(by_lang)).items()}
    rows, unparseable = [], []
    for lang in sorted(by_lang):
        row = {"lang": lang, **outcome_counts(by_lang[lang])}
        bad = [j for q in by_lang[lang].values() for j in q.values() if j.parse_error is not None]
        row["unparseable_outputs"] = len(bad)
        unparseable += [{"lang": lang, "question_id": j.question_id, "position": j.position, "error": j.parse_error,
                         "raw": j.raw[:300]} for j in bad]
        for side, name in (("a", model_a), ("b", model_b)):
            row[side] = measure_answers(answers(store, name, question_set=comp["question_set"], lang=lang), lang,
                                        detect=detect)
            known = models[side]["export"] is not None and lang in rates
            row[side]["acceptance_rate"] = rates[lang]["acceptance_rate"] if known else None
        rows.append(row)
    total = outcome_counts({(lang, q): p for lang in by_lang for q, p in by_lang[lang].items()})
    total["unparseable_outputs"] = sum(r["unparseable_outputs"] for r in rows)
    return {"model_a": model_a, "model_b": model_b, "judge": comp["judge"], "prompt_version": comp["prompt_version"],
            "question_set": comp["question_set"], "positions": list(POSITIONS), "interval": INTERVAL,
            "models": models, "languages": rows, "total": {"lang": "all", **total},
            "unparseable": unparseable[:examples], "unparseable_total": len(unparseable)}


def table(rep: dict) -> list[dict]:
    """One flat row per language (and 'all'): what the CLI prints and the Rounds page shows."""
    out = []
    for r in [*rep["languages"], rep["total"]]:
        row = {"lang": r["lang"], "pairs": r["pairs"], "win": r["win"], "tie": r["tie"], "loss": r["loss"],
               "win_rate": r["win_rate"], "win_ci": _ci(r["win_low"], r["win_high"]),
               "loss_rate": r["loss_rate"], "loss_ci": _ci(r["loss_low"], r["loss_high"]),
               "unparseable": r["unparseable"], "bad_outputs": r["unparseable_outputs"], "pending": r["pending"]}
        for side in ("a", "b"):
            m = r.get(side) or {}
            row[f"in_lang_{side}"] = m.get("in_language")
            row[f"empty_{side}"] = m.get("empty")
            row[f"trunc_{side}"] = m.get("truncated")
            row[f"rep_{side}"] = m.get("repetition")
            row[f"chars_{side}"] = round(m["mean_chars"]) if m.get("mean_chars") is not None else None
            row[f"accept_{side}"] = m.get("acceptance_rate")
        out.append(row)
    return out


def model_rows(rep: dict) -> list[dict]:
    """One row per model: what it was trained on."""
    out = []
    for side in ("a", "b"):
        m = rep["models"][side]
        e = m["export"] or {}
        status = (e.get("filter") or {}).get("status") if isinstance(e.get("filter"), dict) else None
        out.append({"side": side.upper(), "model": m["name"], "kind": m["kind"], "base": m["base"],
                    "data_hash": (m["data_hash"] or "")[:12] or None, "export_rows": e.get("rows"),
                    "export_status": status if not isinstance(status, list) else ",".join(status),
                    "export_id": e.get("id")})
    return out


def _ci(low, high) -> str | None:
    return None if low is None else f"{low:.2f}-{high:.2f}"
