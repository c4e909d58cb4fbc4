"""Stage 2, refinement: an evaluator labels each candidate good / flawed / bad with a score and a reason; a refiner
rewrites the English instruction of flawed candidates so that the native text answers it; relabel; repeat.

The score combines two signals a small base model gives:
* `p_good`: the probability of the word "good" (against "flawed" and "bad") after a judging prompt, and
* `gain`: how much the instruction raises the likelihood of the text, mean log P(text | instruction) - log P(text)
  per token (base models give this reliably; label words from a 270M base model are close to chance),
and, for calibration, the conditional likelihood itself and the text's length.
Without a calibration, score = sigmoid(BIAS + GAIN_WEIGHT * gain + PGOOD_WEIGHT * (p_good - 1/3)); `xinstruct feedback`
fits a per-language logistic regression on all four features against human decisions, and later runs use it.

Responses are never rewritten; the optional clean-up only removes boilerplate lines. Prompt building and output
parsing are pure functions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .langs import LANGS
from .models.base import Model, SamplingParams
from .store import Store, Tx

LABELS = ("good", "flawed", "bad")
EVAL_PROMPT_VERSION = "eval-v1"
REFINE_PROMPT_VERSION = "refine-v1"
# Measured on our labelled seed pairs (bench/evaluator.py, embedded base model): gain ROC-AUC 0.91-0.93, P(good)
# 0.51-0.52, so the uncalibrated score uses gain alone. Gain quantiles (10/50/90%): matched pairs -0.03/0.01/0.08,
# mismatched -0.11/-0.06/-0.02 nats per token; the scale puts gain 0 at 0.6 (good), -0.03 at 0.41 (flawed), -0.06 at
# 0.25 (bad). A calibration fitted on human decisions replaces it (and may weigh P(good) in).
GAIN_WEIGHT, PGOOD_WEIGHT, BIAS = 25.0, 0.0, 0.4


# ---------------------------------------------------------------------------------------------------------------------
# Prompts and parsing (pure)
# ---------------------------------------------------------------------------------------------------------------------
def build_label_prompt(instruction: str, text: str, lang: str) -> str:
    language = LANGS[lang].name if lang in LANGS else lang
    return (
        f"Below is an English instruction and a text in {language}. Judge whether the text is an appropriate, complete "
        "answer to the instruction. Answer with one word: good (it answers the instruction fully), flawed (related, but "
        "the instruction asks for more or other than the text gives) or bad (the text answers no reasonable instruction)."
        f"\n\n### Instruction:\n{instruction.strip()}\n\n### Text:\n{text.strip()}\n\n### Verdict:"
    )


def build_answer_prompt(instruction: str) -> str:
    """The context under which the text's likelihood is measured (the instruction, Alpaca style)."""
    return f"### Instruction:\n{instruction.strip()}\n\n### Response:\n"


def build_refine_prompt(text: str, instruction: str, problem: str, examples: list[dict] | None = None) -> str:
    """Ask for a better instruction. `examples`: human edits, each {text, before, after}, shown first."""
    parts = []
    for ex in examples or []:
        parts.append(
            f"### Text:\n{ex['text'].strip()}\n\n### Instruction that does not fit:\n{ex['before'].strip()}\n\n"
            f"### Better English Instruction:\n{ex['after'].strip()}\n"
        )
    parts.append(
        "Below is a text and an English instruction that does not fit it well"
        f" ({problem.strip()}). Write a better English instruction that the text answers fully and exactly."
        f"\n\n### Text:\n{text.strip()}\n\n### Instruction that does not fit:\n{instruction.strip()}\n\n"
        "### Better English Instruction:\n"
    )
    return "\n".join(parts)


_LABEL_RE = re.compile(r"\b(good|flawed|bad)\b", re.IGNORECASE)


def parse_label(output: str) -> tuple[str | None, str]:
    """Read a verdict written as text, e.g. 'flawed - asks for a list'. Returns (label or None, reason/problem).

    Malformed output never raises: no label -> (None, 'no label in output: ...'); two different labels -> (None, ...).
    """
    text = (output or "").strip()
    first = text.splitlines()[0] if text else ""
    found = [m.lower() for m in _LABEL_RE.findall(first)]
    if not found:
        return None, f"no label in output: {first[:80]!r}"
    if len(set(found)) > 1:
        return None, f"several labels in output: {first[:80]!r}"
    reason = _LABEL_RE.sub("", first, count=1).strip(" :-–—.,;\t") or ""
    return found[0], reason


@dataclass(frozen=True)
class Signals:
    """What the evaluator measures for one (instruction, text) pair."""

    p_good: float  # P("good") among the label words after the judging prompt
    gain: float  # mean log P(text | instruction) - mean log P(text), per token
    ll_text: float  # mean log P(text | instruction) per token
    chars: int  # length of the text (as scored)


def features(sig: Signals) -> list[float]:
    """The calibration's features, in the order its coefficients are stored."""
    return [sig.p_good, sig.gain, sig.ll_text, math.log1p(sig.chars)]


def combine(sig: Signals, calibration: dict | None = None) -> float:
    """Score in [0, 1]: a fitted calibration when there is one, else a fixed blend of gain and P(good)."""
    if calibration:
        z = calibration["intercept"] + sum(w * f for w, f in zip(calibration["coef"], features(sig)))
    else:
        z = BIAS + GAIN_WEIGHT * sig.gain + PGOOD_WEIGHT * (sig.p_good - 1 / 3)
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass
class Verdict:
    label: str
    score: float
    reason: str
    signals: Signals


def decide(sig: Signals, good_at: float, bad_below: float, calibration: dict | None = None) -> Verdict:
    score = combine(sig, calibration)
    if score >= good_at:
        label, why = "good", "the text answers it"
    elif score >= bad_below:
        label, why = "flawed", "the instruction fits the text only loosely"
    else:
        label, why = "bad", "the text does not answer this instruction"
    reason = f"{why} (instruction makes the text {math.exp(sig.gain):.2f}x as likely per token; P(good)={sig.p_good:.2f})"
    return Verdict(label, score, reason, sig)


_BOILER_LINE = re.compile(
    r"^(?:(?:read more|share(?: this)?|follow us|subscribe|advertisement|cookies?|copyright|all rights reserved|"
    r"click here|sign up|log ?in)\b|©).{0,60}$",
    re.IGNORECASE,
)


def clean_response(text: str) -> str:
    """Remove boilerplate lines only ('Read more', 'Share this', copyright...). Never rewrites or translates."""
    kept = [ln for ln in text.split("\n") if not _BOILER_LINE.match(ln.strip())]
    return "\n".join(kept).strip()


# ---------------------------------------------------------------------------------------------------------------------
# Evaluator and refiner over a model
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class RefineConfig:
    """Settings of the refinement stage."""

    lang: str | None = None  # only this language (default: all)
    rounds: int = 3  # maximum label -> refine -> relabel rounds
    model: str | None = None  # evaluator/refiner model: version name, local path, or None for the embedded default
    backend: str | None = None  # embedded | transformers | vllm | fake
    batch_size: int = 8  # candidates per model call and per transaction
    good_at: float = 0.6  # score at or above which a candidate is good
    bad_below: float = 0.3  # score below which a candidate is bad
    variants: int = 3  # rewrites tried per flawed candidate; the best-scored one is kept if it beats the current one
    min_improvement: float = 0.02  # a rewrite must raise the score by this much to replace the instruction
    max_text_chars: int = 1500  # the text shown to the model is cut here (scores use the same cut)
    clean_responses: bool = False  # remove boilerplate lines from responses (never anything else)
    judge: str = "probs"  # probs: label from the score; text: the model writes a verdict (large models), parsed
    limit: int | None = None  # at most this many candidates per language (for trials); None = all
    progress: bool = True

    def validate(self) -> None:
        from .config import check

        check([
            (self.rounds >= 0, f"rounds must be 0 (label only) or more (got {self.rounds})"),
            (self.batch_size >= 1, f"batch_size must be at least 1 (got {self.batch_size})"),
            (self.variants >= 1, f"variants must be at least 1 (got {self.variants})"),
            (0 <= self.bad_below <= self.good_at <= 1, f"need 0 <= bad_below <= good_at <= 1 (got {self.bad_below}, {self.good_at})"),
            (self.min_improvement >= 0, f"min_improvement must be 0 or more (got {self.min_improvement})"),
            (self.max_text_chars >= 50, f"max_text_chars must be at least 50 (got {self.max_text_chars})"),
            (self.judge in ("probs", "text"), f"judge must be probs or text (got {self.judge!r})"),
            (self.limit is None or self.limit >= 0, f"limit must be 0 or more (got {self.limit})"),
        ])


class Evaluator:
    def __init__(self, model: Model, cfg: RefineConfig, calibrations: dict[str, dict] | None = None):
        self.model, self.cfg = model, cfg
        self.calibrations = calibrations or {}

    def signals(self, items: list[tuple[str, str, str]], *, label_words: bool = True) -> list[Signals]:
        """Signals for each (instruction, text, lang); without `label_words`, p_good is 1/3 (saves a forward pass)."""
        cut = [(i, t[: self.cfg.max_text_chars], lang) for i, t, lang in items]
        if label_words:
            probs = self.model.label_probs([build_label_prompt(i, t, lang) for i, t, lang in cut], list(LABELS))
        else:
            probs = [{"good": 1 / 3}] * len(cut)
        with_instr = self.model.loglik([build_answer_prompt(i) for i, _, _ in cut], [t for _, t, _ in cut])
        without = self.model.loglik(["" for _ in cut], [t for _, t, _ in cut])
        return [Signals(p.get("good", 0.0), a - b, a, len(t))
                for p, a, b, (_, t, _) in zip(probs, with_instr, without, cut)]

    def judge(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        out = [decide(sig, self.cfg.good_at, self.cfg.bad_below, self.calibrations.get(lang))
               for (_, _, lang), sig in zip(items, self.signals(items))]
        if self.cfg.judge == "text":
            prompts = [build_label_prompt(i, t[: self.cfg.max_text_chars], lang) for i, t, lang in items]
            params = SamplingParams(max_new_tokens=40, temperature=0.0)
            for verdict, gen in zip(out, self.model.generate(prompts, params)):
                label, said = parse_label(gen.text)
                if label is None:  # malformed verdict: keep the score's label and record what the model said
                    verdict.reason = f"{verdict.reason}; unparseable verdict ({said})"
                else:
                    verdict.label, verdict.reason = label, f"{said or label} (score {verdict.score:.2f})"
        return out


def load_calibrations(store: Store) -> tuple[dict[str, dict], str | None]:
    """The latest fitted calibration per language ({lang: {coef, intercept}}) and its version name."""
    with store.session() as tx:
        row = tx.one("SELECT name, metrics FROM model_versions WHERE kind = 'calibration' ORDER BY created_at DESC, name DESC LIMIT 1")
    if not row:
        return {}, None
    metrics = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    return {lang: m["calibration"] for lang, m in metrics.get("languages", {}).items() if m.get("calibration")}, row[0]


def refinement_examples(store: Store, lang: str, n: int = 2) -> list[dict]:
    """Human edits of instructions (latest first) to show the refiner: {text, before, after}."""
    with store.session() as tx:
        rows = tx.all(
            "SELECT d.text, dec.before->>'instruction', dec.after->>'instruction' FROM decisions dec "
            "JOIN candidates c ON c.id = dec.candidate_id JOIN documents d ON d.id = c.doc_id "
            "WHERE dec.action = 'edit' AND c.lang = ? AND dec.before->>'instruction' <> dec.after->>'instruction' "
            "ORDER BY dec.id DESC LIMIT ?",
            [lang, n],
        )
    return [{"text": t[:600], "before": b, "after": a} for t, b, a in rows if b and a]


def load_evaluator(cfg: RefineConfig) -> Model:
    """The configured model, or the bare embedded base model: the backward adapter is trained for the other
    direction (text -> instruction), and the evaluator's measurements (bench/evaluator.py) are of the base model."""
    from .models.base import load_model

    if cfg.model is None and cfg.backend in (None, "embedded"):
        from .models.embedded import load_embedded

        return load_embedded(adapter=None)
    return load_model(cfg.model, cfg.backend)


def run(store: Store, cfg: RefineConfig | None = None, model: Model | None = None,
        refiner: Model | None = None) -> dict[str, Any]:
    """Label every unlabelled candidate, then refine flawed ones for up to `cfg.rounds` rounds. Resumable.

    `model` scores (the evaluator); `refiner` writes the rewrites (default: the same model; the pipeline passes its
    generator, which was trained to write instructions for native text)."""
    from tqdm import tqdm

    from .prompts import parse_instruction

    cfg = cfg or RefineConfig()
    cfg.validate()
    model = model or load_evaluator(cfg)
    refiner = refiner or model
    calibrations, calibration_name = load_calibrations(store)
    evaluator = Evaluator(model, cfg, calibrations)
    version = model.name + (f"+{calibration_name}" if calibration_name else "")
    stats: dict[str, Any] = {"labelled": 0, "refined": 0, "unchanged": 0, "rounds": 0, "labels": {}}
    lang_sql, lang_params = ("AND lang = ?", [cfg.lang]) if cfg.lang else ("", [])
    # the limit is per language, like generate's: the first `limit` candidates (by id) of each language
    limit_sql = ("" if cfg.limit is None else
                 f"QUALIFY row_number() OVER (PARTITION BY lang ORDER BY id) <= {int(cfg.limit)}")

    # 1. label what has no label yet
    with store.session() as tx:
        todo = tx.all(
            f"SELECT id, instruction, response, lang FROM candidates WHERE gen_status = 'ok' AND label IS NULL "
            f"{lang_sql} {limit_sql} ORDER BY id", lang_params)
    bar = tqdm(total=len(todo), desc="refine: label", unit=" cand", disable=not cfg.progress, leave=False)
    for batch in _chunks(todo, cfg.batch_size):
        if cfg.clean_responses:
            batch = [(cid, ins, clean_response(resp), lang) for cid, ins, resp, lang in batch]
        verdicts = evaluator.judge([(ins, resp, lang) for _, ins, resp, lang in batch])
        store.write(lambda tx, b=batch, v=verdicts: _save_labels(tx, b, v, version, cfg.clean_responses))
        stats["labelled"] += len(batch)
        bar.update(len(batch))
    bar.close()

    # 2. refine flawed ones, relabel, repeat until nothing changes
    sampling = SamplingParams(max_new_tokens=48, temperature=0.8, top_p=0.95, repetition_penalty=1.1)
    for rnd in range(1, cfg.rounds + 1):
        with store.session() as tx:
            flawed = tx.all(
                f"SELECT id, instruction, response, lang, score, label_reason FROM candidates WHERE gen_status = 'ok' "
                f"AND label = 'flawed' AND refine_rounds < ? {lang_sql} {limit_sql} ORDER BY id", [rnd, *lang_params])
        if not flawed:
            continue  # finished by an earlier, interrupted run: the next round may still have work
        stats["rounds"] = rnd
        changed = 0
        examples_by_lang: dict[str, list[dict]] = {}
        bar = tqdm(total=len(flawed), desc=f"refine: round {rnd}", unit=" cand", disable=not cfg.progress, leave=False)
        for batch in _chunks(flawed, cfg.batch_size):
            prompts, owners = [], []
            for i, (_, ins, resp, lang, _, reason) in enumerate(batch):
                if lang not in examples_by_lang:
                    examples_by_lang[lang] = refinement_examples(store, lang)
                prompt = build_refine_prompt(resp[: cfg.max_text_chars], ins, reason or "too vague", examples_by_lang[lang])
                prompts += [prompt] * cfg.variants
                owners += [i] * cfg.variants
            outputs = refiner.generate(prompts, sampling)
            options: dict[int, list[str]] = {}
            for i, out in zip(owners, outputs):
                instruction, _ = parse_instruction(out.text)
                if instruction and instruction != batch[i][1]:
                    options.setdefault(i, [])
                    if instruction not in options[i]:
                        options[i].append(instruction)
            flat = [(i, ins) for i, opts in options.items() for ins in opts]
            verdicts = evaluator.judge([(ins, batch[i][2], batch[i][3]) for i, ins in flat]) if flat else []
            best: dict[int, tuple[str, Verdict]] = {}
            for (i, ins), v in zip(flat, verdicts):
                if i not in best or v.score > best[i][1].score:
                    best[i] = (ins, v)
            updates = []
            for i, row in enumerate(batch):
                cand_id, _, _, _, score, _ = row
                if i in best and best[i][1].score >= (score or 0) + cfg.min_improvement:
                    updates.append((cand_id, best[i][0], best[i][1]))
            store.write(lambda tx, b=batch, u=updates, r=rnd: _save_refinements(tx, b, u, r, version))
            changed += len(updates)
            bar.update(len(batch))
        bar.close()
        stats["refined"] += changed
        stats["unchanged"] = len(flawed) - changed
        if changed == 0 and not _changed_in_round(store, rnd, lang_sql, lang_params):
            break  # nothing changed in this round (counting batches an interrupted run stored): refining is done
    with store.session() as tx:
        stats["labels"] = dict(tx.all(
            f"SELECT coalesce(label, 'unlabelled'), count(*) FROM candidates WHERE gen_status = 'ok' {lang_sql} GROUP BY 1",
            lang_params))
    stats["model_version"] = version
    return stats


def _changed_in_round(store: Store, rnd: int, lang_sql: str, lang_params: list) -> bool:
    """Whether round `rnd` rewrote a candidate that is still flawed and would be refined again in round rnd + 1."""
    with store.session() as tx:
        return bool(tx.scalar(
            "SELECT count(*) FROM candidates WHERE gen_status = 'ok' AND label = 'flawed' AND refine_rounds = ? "
            f"{lang_sql} AND id IN (SELECT candidate_id FROM candidate_versions WHERE stage = 'refine' AND round_id = ?)",
            [rnd, *lang_params, rnd]))


def _save_labels(tx: Tx, batch, verdicts: list[Verdict], version: str, cleaned: bool) -> None:
    for (cid, ins, resp, _), v in zip(batch, verdicts):
        tx.execute(
            "UPDATE candidates SET label = ?, score = ?, raw_score = ?, p_good = ?, ll_text = ?, label_reason = ? "
            "WHERE id = ? AND label IS NULL",
            [v.label, v.score, v.signals.gain, v.signals.p_good, v.signals.ll_text, v.reason, cid])
        if cleaned:
            tx.execute("UPDATE candidates SET response = ? WHERE id = ?", [resp, cid])
        tx.execute(
            "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, label, score, reason, model_version,"
            " p_good, gain) SELECT id, version, 'label', instruction, ?, ?, ?, ?, ?, ? FROM candidates WHERE id = ?",
            [v.label, v.score, v.reason, version, v.signals.p_good, v.signals.gain, cid])


def _save_refinements(tx: Tx, batch, updates: list[tuple[str, str, Verdict]], rnd: int, version: str) -> None:
    for cid, *_ in batch:  # every flawed candidate of the batch has had its round, changed or not
        tx.execute("UPDATE candidates SET refine_rounds = ? WHERE id = ? AND refine_rounds < ?", [rnd, cid, rnd])
    for cid, instruction, v in updates:
        tx.execute(
            "UPDATE candidates SET instruction = ?, version = version + 1, label = ?, score = ?, raw_score = ?, "
            "p_good = ?, ll_text = ?, label_reason = ? WHERE id = ?",
            [instruction, v.label, v.score, v.signals.gain, v.signals.p_good, v.signals.ll_text, v.reason, cid])
        tx.execute(
            "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, label, score, reason, round_id, "
            "model_version, p_good, gain) SELECT id, version, 'refine', instruction, label, score, label_reason, ?, ?, "
            "p_good, raw_score FROM candidates WHERE id = ?", [rnd, version, cid])


def _chunks(rows: list, n: int):
    for i in range(0, len(rows), max(1, n)):
        yield rows[i : i + n]


def history(store: Store, candidate_id: str) -> list[dict]:
    """Every version and label of a candidate, oldest first."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT version, stage, instruction, label, score, reason, round_id, model_version, created_at "
            "FROM candidate_versions WHERE candidate_id = ? ORDER BY created_at, version, stage", [candidate_id])


