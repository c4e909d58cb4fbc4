"""Pairwise judging of two models' answers, the evaluation protocol of the method (../shared/METHOD.md):

* a judge model sees a question and two answers and scores each 0-10 for helpfulness, relevance, accuracy and level of
  detail (our own prompt, `SYSTEM` and `TEMPLATE`, written in the spirit of the paper's protocol);
* every pair is judged in **both orders** (position 'ab': model A's answer shown first; 'ba': model B's first), which
  cancels the judge's position bias;
* a pair is a **win** for A only if A scores higher in both orders, a **loss** only if it scores lower in both, a **tie**
  otherwise; a pair with an order whose output could not be parsed is **unparseable** (never counted as a tie), and a
  pair with an order not judged yet is **pending**;
* `parse_scores` reads the two scores from the judge's output in the shapes judges write them ("Scores: 7 4",
  "7/10 and 4/10", "Answer 1: 7 ... Answer 2: 4", a JSON object); anything else is unparseable, with the reason kept.

`run` judges the answers stored by `xinstruct eval answer` (store/evals.py), resumably: a (question, order) already judged
with the same answers, judge and prompt is skipped, and each batch is stored as soon as it is judged (store/judging.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InputError
from .langs import LANGS
from .models.base import Generation, SamplingParams
from .store import Store
from .store.evals import Answer, answers
from .store.judging import Judgement, add_judgements, judged

PROMPT_NAME = "pairwise-v1"
SYSTEM = ("You are a careful, impartial reviewer of answers written by AI assistants. You judge content, not form: "
          "the order in which answers are shown and their length say nothing about their quality.")
TEMPLATE = """Below are a question a user asked and two answers given by two different AI assistants.{language_note}

Rate each answer on a scale from 0 (useless) to 10 (excellent), taking into account how helpful it is, how relevant it is to the question, how accurate it is, and how much useful detail it gives.

[Question]
{question}

[Answer 1]
{first}
[End of answer 1]

[Answer 2]
{second}
[End of answer 2]

Reply with the two scores on the first line, in the form "Scores: X Y", where X is the score of answer 1 and Y the score of answer 2. Then explain your rating in a few sentences."""
LANGUAGE_NOTE = (" The user wants the answer in {name}: an answer in another language serves the user less well, however "
                 "good its content.")
PROMPT_VERSION = f"{PROMPT_NAME}@{hashlib.sha256((SYSTEM + TEMPLATE + LANGUAGE_NOTE).encode()).hexdigest()[:8]}"
POSITIONS = ("ab", "ba")
JUDGE_SAMPLING = SamplingParams(max_new_tokens=384, temperature=0.0, top_p=1.0, repetition_penalty=1.0, stop=(), seed=0)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def messages(question: str, first: str, second: str, lang: str | None) -> list[dict]:
    """The chat messages for one judgement (answer 1 = the answer shown first)."""
    name = LANGS[lang].name if lang in LANGS else None
    note = LANGUAGE_NOTE.format(name=name) if name else ""
    user = TEMPLATE.format(language_note=note, question=question.strip(), first=first.strip() or "(empty answer)",
                           second=second.strip() or "(empty answer)")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# -- parsing -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parsed:
    first: float | None
    second: float | None
    error: str | None = None  # why the output is unparseable; None when both scores were read

    @property
    def ok(self) -> bool:
        return self.error is None


_NUM = r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d])"
_OUT_OF_10 = r"(?:\s*(?:/|out\s+of)\s*10(?:\.0+)?\b)"
_NUM_MAYBE_OF_10 = re.compile(_NUM + _OUT_OF_10 + "?", re.I)
_SCORES_LINE = re.compile(r"\bscores?\b\s*(?:\*\*)?\s*[:=]\s*(?:\*\*)?(.*)", re.I)
_FRACTION = re.compile(r"(?<![\d.])" + _NUM + _OUT_OF_10, re.I)
_LABEL_ID = {"1": 1, "a": 1, "one": 1, "first": 1, "2": 2, "b": 2, "two": 2, "second": 2}
# "Answer 1: 7", "**Assistant A** - score 8/10", "Response 2 (4/10)", "first answer gets 6": a label, then only
# punctuation and a few score words (so "Answer 1 lists 3 tips" is not read as a score of 3), then the score.
_LABELLED = re.compile(
    r"(?:\b(?:answer|assistant|response)\s*#?\s*(1|2|a|b|one|two)\b|\b(first|second)\s+(?:answer|assistant|response)\b)"
    r"(?:[\s:=\-\u2013\u2014*()\[\],|']+|(?:s|score[sd]?|gets|receives|rating|rated|is|of|a|has|earns|deserves)\b){0,12}"
    r"(?<![\d.])" + _NUM + r"(?![\d])", re.I)


def _numbers(text: str) -> list[float]:
    return [float(m.group(1)) for m in _NUM_MAYBE_OF_10.finditer(text)]


def _checked(first: float, second: float) -> Parsed:
    if not (0 <= first <= 10 and 0 <= second <= 10):
        return Parsed(None, None, f"score out of 0-10: {first:g} {second:g}")
    return Parsed(first, second)


def _from_json(text: str) -> Parsed | None:
    for m in re.finditer(r"\{[^{}]*\}", text, re.S):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():  # {"scores": [7, 4]}
            if re.fullmatch(r"scores?", str(key).strip(), re.I) and isinstance(value, list) and len(value) == 2 \
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                return _checked(float(value[0]), float(value[1]))
        found: dict[int, float] = {}
        for key, value in obj.items():  # {"answer_1": 7, "answer_2": 4}, {"assistant_a": 7, ...}, {"score_1": ...}
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                continue
            ids = re.findall(r"(?:^|[^a-z0-9])(1|2|a|b|one|two|first|second)(?:$|[^a-z0-9])", str(key).lower())
            if len(set(ids)) != 1:
                continue
            try:
                score = float(value)
            except ValueError:
                continue
            slot = _LABEL_ID[ids[0]]
            if slot in found and found[slot] != score:
                return Parsed(None, None, "JSON object gives two different scores to one answer")
            found[slot] = score
        if set(found) == {1, 2}:
            return _checked(found[1], found[2])
    return None


def parse_scores(text: str | None) -> Parsed:
    """The two scores (answer shown first, answer shown second) in a judge's output, or the reason they cannot be
    read. Tried in order, each strict (exactly two scores, 0-10): a JSON object; a "Scores: X Y" line; both answers
    labelled with a score ("Answer 1: 7 ... Answer 2: 4"); exactly two "N/10" fractions; a first line of exactly two
    numbers. Nothing is guessed: one score, three scores or conflicting scores are unparseable."""
    if text is None or not text.strip():
        return Parsed(None, None, "empty output")
    found = _from_json(text)
    if found is not None:
        return found
    for line in text.splitlines():  # a scores line with another count of numbers may still be labelled: read on
        m = _SCORES_LINE.search(line)
        if m and len(nums := _numbers(m.group(1))) == 2:
            return _checked(*nums)
    labelled: dict[int, set[float]] = {}
    for m in _LABELLED.finditer(text):
        slot = _LABEL_ID[(m.group(1) or m.group(2)).lower()]
        labelled.setdefault(slot, set()).add(float(m.group(3)))
    if set(labelled) == {1, 2}:
        if len(labelled[1]) > 1 or len(labelled[2]) > 1:
            return Parsed(None, None, "an answer is given two different scores")
        return _checked(next(iter(labelled[1])), next(iter(labelled[2])))
    fractions = [float(m.group(1)) for m in _FRACTION.finditer(text)]
    if len(fractions) == 2:
        return _checked(*fractions)
    first_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    if re.fullmatch(r"[\s\d.,;:/&*()\[\]\-]*(?:and|vs\.?|out of)?[\s\d.,;:/&*()\[\]\-]*", first_line, re.I):
        nums = _numbers(first_line)
        if len(nums) == 2:
            return _checked(*nums)
    return Parsed(None, None, "no pair of scores found")


# -- the both-orders rule ---------------------------------------------------------------------------------------------
def order_winner(score_a: float, score_b: float) -> str:
    """'a', 'b' or 'tie' for one order (scores already mapped to the models)."""
    return "a" if score_a > score_b else "b" if score_b > score_a else "tie"


def pair_outcome(by_position: dict[str, Judgement]) -> str:
    """The outcome of one question for model A: win | loss | tie | unparseable | pending (see the module doc)."""
    if any(p not in by_position for p in POSITIONS):
        return "pending"
    if any(by_position[p].parse_error is not None for p in POSITIONS):
        return "unparseable"
    winners = {order_winner(by_position[p].score_a, by_position[p].score_b) for p in POSITIONS}
    if winners == {"a"}:
        return "win"
    if winners == {"b"}:
        return "loss"
    return "tie"


# -- running a judge --------------------------------------------------------------------------------------------------
JUDGE_BACKENDS = ("transformers", "vllm", "openai")


def load_judge(spec: str, backend: str, store: Store, *, base_url: str | None = None,
               api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0, retries: int = 5, concurrency: int = 4,
               tensor_parallel_size: int = 1, batch_size: int = 16):
    """The judge model of `xinstruct eval judge` / `eval compare` and what to record of its backend: (model, info)."""
    from .errors import ConfigError
    from .models.base import load_model

    if backend not in JUDGE_BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(JUDGE_BACKENDS)}, not {backend!r}")
    if backend == "openai":
        model = load_model(spec, "openai", base_url=base_url, api_key_env=api_key_env, timeout=timeout,
                           retries=retries, concurrency=concurrency)
        return model, {"backend": "openai", "base_url": model.base_url}
    if backend == "vllm":
        return load_model(spec, "vllm", store=store, tensor_parallel_size=tensor_parallel_size), {"backend": "vllm"}
    return load_model(spec, "transformers", store=store, batch_size=min(batch_size, 8)), {"backend": "transformers"}


def render_prompt(model, msgs: list[dict]) -> str:
    """A local model's prompt: its tokenizer's chat template when it has one, else the messages as plain text."""
    tok = getattr(model, "tokenizer", None)
    if tok is not None and getattr(tok, "chat_template", None):
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in msgs) + "\n\n"


def _ask(model, conversations: list[list[dict]], params: SamplingParams) -> tuple[list[str], list[Generation]]:
    """Prompts as stored, and the judge's generations: chat models (the HTTP backend) take the messages themselves."""
    if hasattr(model, "chat"):
        return ([json.dumps(c, ensure_ascii=False) for c in conversations], model.chat(conversations, params))
    prompts = [render_prompt(model, c) for c in conversations]
    return prompts, model.generate(prompts, params)


@dataclass
class JudgeStats:
    pairs: int = 0  # questions answered by both models, over the languages judged
    skipped: int = 0  # (question, order) already judged with the same answers, judge and prompt
    judged: int = 0
    unparseable: int = 0
    missing: int = 0  # questions answered by only one of the models (not judged)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def pending_pairs(store: Store, model_a: str, model_b: str, question_set: str,
                  langs: list[str] | None) -> tuple[dict[str, list[tuple[Answer, Answer]]], int]:
    """Per language, the questions both models answered (A's answer, B's answer), and how many only one answered."""
    a_all = {(x.lang, x.question_id): x for x in answers(store, model_a, question_set=question_set)}
    b_all = {(x.lang, x.question_id): x for x in answers(store, model_b, question_set=question_set)}
    if langs:
        a_all = {k: v for k, v in a_all.items() if k[0] in langs}
        b_all = {k: v for k, v in b_all.items() if k[0] in langs}
    out: dict[str, list[tuple[Answer, Answer]]] = {}
    for key in sorted(a_all.keys() & b_all.keys()):
        out.setdefault(key[0], []).append((a_all[key], b_all[key]))
    return out, len(a_all.keys() ^ b_all.keys())


def run(store: Store, model, model_a: str, model_b: str, question_set: str, *, langs: list[str] | None = None,
        params: SamplingParams = JUDGE_SAMPLING, batch_size: int = 16, limit: int | None = None,
        sampling_info: dict | None = None, progress: Callable[[str], None] | None = None) -> JudgeStats:
    """Judge every question both models answered in `question_set` (optionally only `langs`, only the first `limit`
    questions per language) in both orders with `model`; store each batch as it is judged. Resumable."""
    if model_a == model_b:
        raise InputError("--a and --b name the same model", hint="compare two different models")
    by_lang, missing = pending_pairs(store, model_a, model_b, question_set, langs)
    if not by_lang:
        raise InputError(f"no question of set {question_set!r} is answered by both {model_a} and {model_b}"
                         + (f" in {', '.join(langs)}" if langs else ""),
                         hint="run `xinstruct eval answer` for both models on the same question file and languages")
    stats = JudgeStats(missing=missing)
    start = time.monotonic()
    judge_name = getattr(model, "name", str(model))
    sampling = {**params.as_dict(), **(sampling_info or {})}
    sampling["stop"] = list(sampling.get("stop", ()))
    jobs: list[tuple[Answer, Answer, str, list[dict]]] = []
    for lang, pairs in by_lang.items():
        pairs = pairs[:limit] if limit else pairs
        stats.pairs += len(pairs)
        done = judged(store, model_a, model_b, judge_name, PROMPT_VERSION, question_set, lang)
        for a, b in pairs:
            hashes = (text_hash(a.answer), text_hash(b.answer))
            for position in POSITIONS:
                if done.get((a.question_id, position)) == hashes:
                    stats.skipped += 1
                    continue
                first, second = (a, b) if position == "ab" else (b, a)
                jobs.append((a, b, position, messages(a.question, first.answer, second.answer, lang)))
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i:i + batch_size]
        t0 = time.monotonic()
        prompts, gens = _ask(model, [c[3] for c in chunk], params)
        each = (time.monotonic() - t0) / max(1, len(chunk))
        rows = []
        for (a, b, position, _), prompt, gen in zip(chunk, prompts, gens):
            parsed = parse_scores(gen.text)
            score_a, score_b = (parsed.first, parsed.second) if position == "ab" else (parsed.second, parsed.first)
            meta = {k: v for k, v in (gen.meta or {}).items() if k in ("finish_reason",)}
            rows.append(Judgement(model_a, model_b, judge_name, PROMPT_VERSION, question_set, a.question_id, a.lang,
                                  position, text_hash(a.answer), text_hash(b.answer), prompt, gen.text or "",
                                  score_a, score_b, parsed.error, {**sampling, **meta}, round(each, 3)))
            stats.unparseable += not parsed.ok
        add_judgements(store, rows)
        stats.judged += len(rows)
        if progress:
            progress(f"judged {stats.judged}/{len(jobs)} ({stats.unparseable} unparseable)")
    stats.seconds = round(time.monotonic() - start, 2)
    return stats


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval (95% by default) of a proportion k/n; None when n = 0."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
