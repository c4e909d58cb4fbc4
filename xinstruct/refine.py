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

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .config import setting
from .generate import Backend
from .langs import LANGS, check_lang
from .models.base import Model, SamplingParams
from .store import Store, Tx
from .store import candidates as stored
from .store import registry

LABELS = ("good", "flawed", "bad")
EVAL_PROMPT_VERSION = "eval-v1"
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


GAIN_GOOD_AT, GAIN_BAD_BELOW = 0.6, 0.3  # the gain score's thresholds (the trained evaluator carries its own)


@dataclass
class Verdict:
    label: str
    score: float
    reason: str
    signals: Signals | None = None  # the gain evaluator's measurements
    features: dict | None = None  # the trained evaluator's features (stored, so `xinstruct feedback` can retrain it)
    missing: tuple[str, ...] = ()  # names and numbers of the instruction not found in the text


def label_for(score: float, good_at: float, bad_below: float, missing: Sequence[str] = ()) -> str:
    """The one labelling rule: good needs the score and every name and number of the instruction found in the text;
    bad is a score below `bad_below`; the rest is flawed (worth a rewrite)."""
    if score >= good_at and not missing:
        return "good"
    return "bad" if score < bad_below else "flawed"


def decide(sig: Signals, good_at: float, bad_below: float, calibration: dict | None = None) -> Verdict:
    score = combine(sig, calibration)
    label = label_for(score, good_at, bad_below)
    why = {"good": "the text answers it", "flawed": "the instruction fits the text only loosely",
           "bad": "the text does not answer this instruction"}[label]
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
    """Settings of the refinement stage (each field's default, help and range also make the `xinstruct refine` option)."""

    lang: str | None = setting(None, "only this language; default: all")
    rounds: int = setting(0, "rewrite rounds after labelling (0 = label only, the default: one round on 50 held-out "
                             "drafts of the shipped generator rewrote 6, judged blind 2 better, 3 the same, 1 worse, "
                             "none accepted as is, at 11 s per draft and 4.1 GiB on 2 CPU cores; BENCHMARKS.md)",
                          min=0, zero="label only")
    evaluator: Literal["trained", "gain"] = setting(
        "trained", "trained: the shipped (or last retrained) evaluator, P(a reviewer keeps the draft); gain: the earlier "
                   "likelihood-gain score")
    model: str | None = setting(None, "model of the gain evaluator or the text judge: version name or folder; default: "
                                      "the embedded base model")
    backend: Backend | None = setting(None, "embedded | transformers | vllm | llamacpp | fake; default: embedded")
    batch_size: int = setting(8, "candidates per model call and per transaction", min=1)
    good_at: float | None = setting(None, "score at or above which a candidate is good; default: the evaluator's own "
                                          "threshold", min=0, max=1)
    bad_below: float | None = setting(None, "score below which a candidate is bad; default: the evaluator's own "
                                            "threshold", min=0, max=1)
    variants: int = setting(3, "rewrites tried per flawed candidate; the best-scored one is kept if it beats the "
                               "current one", min=1)
    min_improvement: float = setting(0.02, "a rewrite must raise the score by this much to replace the instruction",
                                     min=0)
    max_text_chars: int = setting(1500, "the text shown to the model is cut here (scores use the same cut)", min=50)
    clean_responses: bool = setting(False, "remove boilerplate lines from responses (nothing else)")
    judge: Literal["probs", "text"] = setting("probs", "probs: label from the score; text: the model writes a verdict "
                                                       "(large models), parsed")
    limit: int | None = setting(None, "at most this many candidates per language (for trials); default: all",
                                min=0, cli_min=1)
    progress: bool = setting(True, "show a progress bar")

    def validate(self) -> None:
        from .config import check, check_fields

        check_fields(self)
        if self.lang is not None:
            self.lang = check_lang(self.lang)
        check([(None in (self.bad_below, self.good_at) or self.bad_below <= self.good_at,
                f"need bad_below <= good_at (got {self.bad_below}, {self.good_at})")])


class Evaluator:
    """The earlier, untrained evaluator: likelihood gain of the text under a base model (optionally calibrated)."""

    def __init__(self, model: Model, cfg: RefineConfig, calibrations: dict[str, dict] | None = None):
        self.model, self.cfg = model, cfg
        self.calibrations = calibrations or {}
        self.good_at = cfg.good_at if cfg.good_at is not None else GAIN_GOOD_AT
        self.bad_below = cfg.bad_below if cfg.bad_below is not None else GAIN_BAD_BELOW

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
        out = [decide(sig, self.good_at, self.bad_below, self.calibrations.get(lang))
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


class TrainedJudge:
    """Labels with the trained evaluator (xinstruct.evaluator): score = P(a reviewer keeps the draft: accepts it as it
    is or after a small edit)."""

    def __init__(self, ev, model: Model, cfg: RefineConfig):
        self.ev, self.model, self.cfg = ev, model, cfg
        thresholds = (ev.metrics or {}).get("thresholds", {})
        self.good_at = cfg.good_at if cfg.good_at is not None else thresholds.get("good_at", 0.5)
        self.bad_below = cfg.bad_below if cfg.bad_below is not None else thresholds.get("bad_below", 0.1)

    def judge(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        from .evaluator import assess

        out = []
        for a in assess(self.ev, self.model, items):
            label = label_for(a.p_keep, self.good_at, self.bad_below, a.missing)
            reason = (f"{a.p_keep:.0%} likely usable as is or after a small edit"
                      + (f"; {a.grounding_message}" if a.grounding_message else ""))
            out.append(Verdict(label, a.p_keep, reason, features=a.features, missing=tuple(a.missing)))
        return out


def make_judge(cfg: RefineConfig, model: Model | None = None, store: Store | None = None):
    """The configured evaluator over `model` (default: the model it was trained with, or the embedded base model);
    the trained evaluator is the latest one `xinstruct feedback` retrained in `store`, else the shipped one."""
    if cfg.evaluator == "gain":
        return Evaluator(model or load_evaluator(cfg), cfg)
    if cfg.evaluator != "trained":
        from .errors import ConfigError

        raise ConfigError(f"refine: evaluator must be trained or gain, not {cfg.evaluator!r}")
    from . import evaluator as trained

    ev = trained.current(store)
    if ev is None:
        from .errors import ConfigError

        raise ConfigError("no trained evaluator is shipped with this installation; set refine evaluator: gain")
    return TrainedJudge(ev, model or trained.load_feature_model(ev), cfg)


def load_calibrations(store: Store) -> tuple[dict[str, dict], str | None]:
    """The latest fitted calibration per language ({lang: {coef, intercept}}) and its version name."""
    version = registry.latest(store, "calibration")
    if version is None:
        return {}, None
    languages = version.metrics.get("languages", {})
    return {lang: m["calibration"] for lang, m in languages.items() if m.get("calibration")}, version.name


def refinement_examples(store: Store, lang: str, n: int = 2) -> list[dict]:
    """Human edits of instructions (latest first) to show the refiner: {text, before, after}."""
    rows = stored.human_instruction_edits(store, lang, n)
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
    """Label every unlabelled candidate, then rewrite flawed ones for up to `cfg.rounds` rounds. Resumable.

    `model` is what the evaluator runs on (default: the model it was trained with); `refiner` writes the rewrites
    (default: the default generator, the model trained to write instructions for native text, whichever command runs
    this). A rewrite is kept only when it reads as an instruction and the evaluator prefers it by `min_improvement`."""
    from tqdm import tqdm

    cfg = cfg or RefineConfig()
    cfg.validate()
    judge = make_judge(cfg, model, store)
    if isinstance(judge, Evaluator):
        judge.calibrations, calibration_name = load_calibrations(store)
        version = judge.model.name + (f"+{calibration_name}" if calibration_name else "")
    else:
        version = judge.ev.name
    stats: dict[str, Any] = {"labelled": 0, "refined": 0, "unchanged": 0, "rounds": 0, "labels": {}}
    # 1. label what has no label yet (the limit is per language, like generate's: the first `limit` by id)
    todo = stored.unlabelled(store, cfg.lang, cfg.limit)
    bar = tqdm(total=len(todo), desc="refine: label", unit=" cand", disable=not cfg.progress, leave=False)
    for batch in _chunks(todo, cfg.batch_size):
        if cfg.clean_responses:
            batch = [(cid, ins, clean_response(resp), lang) for cid, ins, resp, lang in batch]
        verdicts = judge.judge([(ins, resp, lang) for _, ins, resp, lang in batch])
        store.write(lambda tx, b=batch, v=verdicts: _save_labels(tx, b, v, version, cfg.clean_responses))
        stats["labelled"] += len(batch)
        bar.update(len(batch))
    bar.close()

    # 2. rewrite flawed ones, relabel, repeat until nothing changes
    for rnd in range(1, cfg.rounds + 1):
        flawed = stored.flawed_before_round(store, rnd, cfg.lang, cfg.limit)
        if not flawed:
            continue  # finished by an earlier, interrupted run: the next round may still have work
        if refiner is None:
            from .generate import GenerateConfig, load_generator

            refiner = load_generator(GenerateConfig(), store)
        stats["rounds"] = rnd
        changed = 0
        bar = tqdm(total=len(flawed), desc=f"refine: round {rnd}", unit=" cand", disable=not cfg.progress, leave=False)
        for batch in _chunks(flawed, cfg.batch_size):
            options = rewrite_options(refiner, [(ins, resp, lang) for _, ins, resp, lang, _, _ in batch], cfg,
                                      seed=rnd, store=store)
            flat = [(i, ins) for i, opts in enumerate(options) for ins in opts]
            verdicts = judge.judge([(ins, batch[i][2], batch[i][3]) for i, ins in flat]) if flat else []
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
        if changed == 0 and not stored.rewritten_in_round(store, rnd, cfg.lang):
            break  # nothing changed in this round (counting batches an interrupted run stored): refining is done
    stats["labels"] = stored.label_counts(store, cfg.lang)
    stats["model_version"] = version
    return stats


_INSTRUCTION_START = re.compile(
    r"^(?:write|explain|describe|summari[sz]e|list|give|tell|provide|create|compose|draft|outline|compare|discuss|"
    r"report|share|suggest|present|analy[sz]e|translate|recount|narrate|introduce|identify|name|state|detail|"
    r"what|who|whom|whose|when|where|why|how|which|is|are|was|were|do|does|did|can|could|should|would|will|has|have|had)\b",
    re.IGNORECASE)


def is_instruction(text: str) -> bool:
    """A rewrite must read as an instruction to a writer: an imperative or a question, standing on its own (no
    'the text above'), not a note about the task ('Provide two additional options ...' passes the verb test but is
    caught by the evaluator)."""
    from .evaluator import surface

    text = text.strip()
    return bool(_INSTRUCTION_START.match(text)) and not surface(text)["refers_to_text"]


def rewrite_options(refiner: Model, items: Sequence[tuple[str, str, str]], cfg: RefineConfig, *, seed: int = 0,
                    store: Store | None = None) -> list[list[str]]:
    """Up to `cfg.variants` new instructions per (instruction, text, lang), sampled from the generator with the
    generation prompt (its training format); each is parsed, must read as an instruction and differ from the current
    one. A few-shot generator sees the language's latest human edits as examples (a trained backward model sees none)."""
    from .generate import is_backward_model
    from .prompts import build_generation_prompt, parse_instruction
    from .seed import SeedPair

    examples: dict[str, list[SeedPair]] = {}
    if not is_backward_model(refiner) and store is not None:
        for lang in {lang for _, _, lang in items}:
            examples[lang] = [SeedPair(f"edit-{k}", lang, e["after"], e["text"])
                              for k, e in enumerate(refinement_examples(store, lang))]
    from .evaluator import MAX_TEXT_CHARS

    prompts = [build_generation_prompt(text, lang, examples.get(lang, ()), max_chars=MAX_TEXT_CHARS)
               for _, text, lang in items]
    sampling = SamplingParams(max_new_tokens=48, temperature=0.8, top_p=0.95, repetition_penalty=1.1, seed=seed)
    outputs = refiner.generate([p for p in prompts for _ in range(cfg.variants)], sampling)
    options: list[list[str]] = [[] for _ in items]
    for k, out in enumerate(outputs):
        i = k // cfg.variants
        instruction, _ = parse_instruction(out.text)
        if instruction and instruction != items[i][0] and is_instruction(instruction) and instruction not in options[i]:
            options[i].append(instruction)
    return options


def _judged(v: Verdict) -> stored.Judged:
    """A verdict as the store keeps it: the gain evaluator's measurements, the trained evaluator's features as JSON."""
    from .store import to_json

    sig = v.signals
    return stored.Judged(v.label, v.score, v.reason, gain=sig.gain if sig else None,
                         p_good=sig.p_good if sig else None, ll_text=sig.ll_text if sig else None,
                         features=to_json(v.features) if v.features is not None else None)


def _save_labels(tx: Tx, batch, verdicts: list[Verdict], version: str, cleaned: bool) -> None:
    for (cid, _, resp, _), v in zip(batch, verdicts):
        stored.save_label(tx, cid, _judged(v), version, response=resp if cleaned else None)


def _save_refinements(tx: Tx, batch, updates: list[tuple[str, str, Verdict]], rnd: int, version: str) -> None:
    stored.mark_refined(tx, [row[0] for row in batch], rnd)  # every flawed candidate of the batch has had its round
    for cid, instruction, v in updates:
        stored.save_rewrite(tx, cid, instruction, _judged(v), rnd, version)


def _chunks(rows: list, n: int):
    for i in range(0, len(rows), max(1, n)):
        yield rows[i : i + n]


def history(store: Store, candidate_id: str) -> list[dict]:
    """Every version and label of a candidate, oldest first."""
    return stored.history(store, candidate_id)
