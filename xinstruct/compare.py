"""The natural comparisons of issue 16 in one step (`xinstruct eval compare`): two datasets from the store, two
instruction models tuned on them with the same settings, both answering the same questions, judged in both orders, and
the per-language report. Every step is the existing one: `export.export`, `instruct.train_instruct`,
`instruct.answer_questions`, `judge.run`, `judge_report.report`; this module only decides what the two datasets are.

* `reviewed` (A = the reviewed data, B = the same documents before review): A exports the accepted and edited pairs
  with the reviewers' final instruction and response (`--status accepted`); B exports the **drafts** (the instruction
  and response as generated, before any edit) of the pairs the reviewers decided (accepted, edited or rejected:
  `--before decided`, the effect of filtering and editing) or of the kept pairs only (`--before kept`, the effect of
  editing alone). Pending drafts and drafts generation rejected are in neither: nobody reviewed them.
* `rounds` (A = round N's data, B = round N-1's): the data *as of round N* is what the store's decision log says was
  kept when round N was closed, i.e. up to the decision watermark of round N's last feedback run (`feedback_runs`:
  the highest decision id a run of that round consumed). A candidate belongs to it when its review state derived by
  the rule of record (`review.rules.derive_state`) from its decisions up to that watermark is accepted or edited; it is
  exported with those final texts. The export writes the candidates' stored texts, so this holds only when the stored
  state of each such candidate is still the derived one: a pair re-decided after the watermark (undo, send to review,
  adjudication) whose state then differs, or a log whose state under today's k differs from the stored one (k has no
  history), stops the command with the candidates named instead of exporting something else.

Resumable and idempotent: models are named `<name>-reviewed` / `<name>-drafts` or `<name>-r<N>` / `<name>-r<N-1>`; a
model that exists is reused when a fresh (unrecorded) export of its dataset has the content hash it was trained on, and
the command stops otherwise (the store changed: choose a new name). Answers and judgements already stored are skipped
by `answer_questions` and `judge.run` themselves. Every input is checked before anything is written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import vocab as V
from .errors import ConfigError, InputError, XInstructError
from .export import ExportConfig, export
from .export import preview as export_rows
from .instruct import AnswerConfig, InstructConfig, question_set_name, questions_for, read_questions
from .langs import check_lang
from .review.rules import derive_state, k_for
from .store import Store
from .store import registry
from .store.curation import CandidateFilter
from .store.judging import model_data
from .store.review import logs_up_to

WHATS = ("reviewed", "rounds")
BEFORE = {"decided": V.FINAL_STATUSES, "kept": V.KEPT}


@dataclass
class CompareConfig:
    questions: str  # question file (JSON Lines), as `eval answer` reads it
    langs: list[str]  # languages of the data, the answers and the report
    name: str  # prefix of the two model versions (and export folders)
    judge: str  # the judge model (as `eval judge --judge`)
    what: str = "reviewed"  # reviewed | rounds
    round: int | None = None  # rounds: N (default: the latest round with a feedback run)
    before: str = "decided"  # reviewed: the drafts of the decided pairs, or of the kept pairs only
    out: str | None = None  # folder for the two exports (default: exports/compare beside the database)
    train: InstructConfig = field(default_factory=InstructConfig)  # the same settings for both models
    limit: int | None = None  # at most this many questions per language
    max_new_tokens: int = 256  # answers
    answer_batch_size: int = 8
    answer_backend: str = "transformers"
    judge_backend: str = "transformers"
    judge_options: dict = field(default_factory=dict)  # judge.load_judge's keywords (base_url, api_key_env, ...)
    judge_max_new_tokens: int = 384
    judge_batch_size: int = 16


@dataclass
class Side:
    label: str  # what the data is, in words
    model: str  # the model version's name
    export: ExportConfig  # `out` is set when it is written
    rows: dict[str, int]  # rows per language


# ---------------------------------------------------------------------------------------------------------------------
# What the two datasets are
# ---------------------------------------------------------------------------------------------------------------------
def kept_as_of(store: Store, watermark: int, langs: list[str]) -> list[str]:
    """The candidates (of `langs`) kept as of decision `watermark`: derived by `derive_state` from their decisions up
    to it; stops when the store's stored texts cannot stand for that state (see the module doc)."""
    rows, ks = logs_up_to(store, watermark, langs)
    kept, redecided, k_changed = [], [], []
    for r in rows:
        then = derive_state(r["log"], k_for(r["lang"], r["reviews_needed"], ks))
        then = (then["review_status"], then["final_instruction"], then["final_response"])
        now = (r["review_status"], r["final_instruction"], r["final_response"])
        if then[0] in V.KEPT:
            kept.append(r["id"])
        if then != now and not r["later"]:
            k_changed.append(r["id"])
        elif then != now and then[0] in V.KEPT:
            redecided.append(r["id"])
    if redecided:
        raise InputError(f"{len(redecided)} pair(s) kept at decision {watermark} were decided again later and now read "
                         f"differently (e.g. {', '.join(redecided[:3])}); the store keeps only their current texts, so "
                         "that round's data cannot be exported as it was",
                         hint="compare later rounds, or use --what reviewed for the data as it is now")
    if k_changed:
        raise InputError(f"{len(k_changed)} pair(s) have a stored review state that their decisions do not give under "
                         f"today's reviews needed (k) (e.g. {', '.join(k_changed[:3])}); k changed since, and its "
                         "history is not stored", hint="set k back to its value of that round to compare rounds")
    return kept


def _rows(store: Store, cfg: ExportConfig, langs: list[str]) -> dict[str, int]:
    return {lang: export_rows(store, replace(cfg, langs=(lang,))) for lang in langs}


def plan(store: Store, cfg: CompareConfig) -> tuple[Side, Side]:
    """The two sides (A, B) of the comparison; every input is checked here, before anything is written."""
    if cfg.what not in WHATS:
        raise ConfigError(f"--what must be one of {', '.join(WHATS)}, not {cfg.what!r}")
    if not cfg.langs:
        raise ConfigError("no language given; pass --lang xx (repeatable or comma-separated)")
    langs = cfg.langs = list(dict.fromkeys(check_lang(c) for c in cfg.langs))
    name = (cfg.name or "").strip()
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"invalid --name {cfg.name!r}; use letters, digits, '-' and '_' (the models are "
                          f"<name>-reviewed and <name>-drafts, or <name>-r<N> and <name>-r<N-1>)")
    if not cfg.judge or not str(cfg.judge).strip():
        raise ConfigError("no judge given; pass --judge MODEL")
    from .judge import JUDGE_BACKENDS

    if cfg.judge_backend not in JUDGE_BACKENDS:
        raise ConfigError(f"--judge-backend must be one of {', '.join(JUDGE_BACKENDS)}, not {cfg.judge_backend!r}")
    replace(cfg.train, export="-").validate()  # the training settings, before anything is exported
    AnswerConfig(model=name, questions=cfg.questions, langs=langs, limit=cfg.limit, max_new_tokens=cfg.max_new_tokens,
                 batch_size=cfg.answer_batch_size, backend=cfg.answer_backend).validate()
    questions = read_questions(cfg.questions)
    for lang in langs:
        if not questions_for(questions, lang):
            present = sorted({q.lang or "en" for q in questions})
            raise InputError(f"no questions for {lang}: the file has only questions in {', '.join(present)}",
                             path=str(cfg.questions), hint="pass English questions or questions written in that language")
    if cfg.what == "reviewed":
        if cfg.round is not None:
            raise ConfigError("--round applies to --what rounds only")
        if cfg.before not in BEFORE:
            raise ConfigError(f"--before must be one of {', '.join(BEFORE)}, not {cfg.before!r}")
        a_cfg = ExportConfig(out=Path("-"), status=V.ACCEPTED, langs=tuple(langs))
        b_cfg = ExportConfig(out=Path("-"), status=BEFORE[cfg.before], langs=tuple(langs), drafts=True)
        a = Side("reviewed: accepted and edited pairs, final texts", f"{name}-reviewed", a_cfg, _rows(store, a_cfg, langs))
        b = Side(f"before review: drafts of the {cfg.before} pairs", f"{name}-drafts", b_cfg, _rows(store, b_cfg, langs))
        empty = [lang for lang in langs if not a.rows[lang]]
        if empty:
            raise InputError(f"no accepted or edited pairs in {', '.join(empty)}: there is no reviewed data to compare",
                             hint="review drafts in that language first (xinstruct app), or leave it out of --lang")
        return a, b
    watermarks = registry.round_watermarks(store)
    known = registry.round_ids(store)
    closed = ", ".join(map(str, watermarks)) or "none"
    if not watermarks:
        raise InputError("no round has a feedback run, so no round's data is fixed yet",
                         hint="run `xinstruct feedback` at the end of each round, or use --what reviewed")
    n = cfg.round if cfg.round is not None else max(watermarks)
    if n not in known:
        raise InputError(f"round {n} does not exist (rounds: {', '.join(map(str, known))})",
                         hint=f"pass --round with a round that has a feedback run and a previous one: {closed}")
    if n - 1 < 1:
        raise InputError(f"round {n} has no earlier round to compare with",
                         hint=f"pass --round 2 or later; rounds with a feedback run: {closed}")
    for r in (n, n - 1):
        if r not in watermarks:
            raise InputError(f"round {r} has no feedback run, so its data is not fixed",
                             hint=f"run `xinstruct feedback` to close round {r}, or compare rounds among: {closed}")
    sides = []
    for r in (n, n - 1):
        ids = kept_as_of(store, watermarks[r], langs)
        ecfg = ExportConfig(out=Path("-"), status=V.ACCEPTED, langs=tuple(langs),
                            filter=CandidateFilter(ids=tuple(ids)) if ids else None)
        rows = _rows(store, ecfg, langs) if ids else dict.fromkeys(langs, 0)
        sides.append(Side(f"round {r}: pairs kept up to decision {watermarks[r]}", f"{name}-r{r}", ecfg, rows))
        empty = [lang for lang in langs if not rows[lang]]
        if empty:
            raise InputError(f"round {r}'s data has no pairs in {', '.join(empty)}",
                             hint="leave that language out of --lang, or compare later rounds")
    if sides[0].export.filter == sides[1].export.filter:
        raise InputError(f"rounds {n} and {n - 1} hold the same data in {', '.join(langs)} (no decision between their "
                         "feedback runs changed it)", hint="compare rounds with reviews between them")
    return sides[0], sides[1]


# ---------------------------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------------------------
def exports_root(store: Store, cfg: CompareConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    if store.memory:
        return Path(tempfile.gettempdir()) / "xinstruct-exports" / "compare"
    return Path(store.path).parent / "exports" / "compare"


def ensure_model(store: Store, cfg: CompareConfig, side: Side, progress: Callable[[str], None]) -> str:
    """Export the side's data and tune its model, or reuse the model when it was tuned on exactly this data.
    Returns 'trained' or 'reused'."""
    from .instruct import train_instruct

    folder = exports_root(store, cfg) / side.model
    mv = registry.model_version(store, side.model)
    if mv is None:
        result = export(store, replace(side.export, out=folder, overwrite=True))
        progress(f"{side.model}: {result}")
        train_instruct(store, replace(cfg.train, export=str(folder), name=side.model))
        progress(f"{side.model}: trained")
        return "trained"
    data = model_data(store, side.model)
    trained_on = data["data_hash"]
    if mv.kind != "instruct":
        raise XInstructError(f"model version {side.model!r} exists and is a {mv.kind} model; choose another --name")
    base = replace(cfg.train, export="-")
    base.validate()  # the base as train_instruct records it (embedded aliases named alike)
    if data["base"] != base.base:
        raise XInstructError(f"{side.model} was tuned from base {data['base']}, not {base.base}; pass a new --name "
                             "to compare models of another base")
    with tempfile.TemporaryDirectory(prefix="xinstruct-compare-") as tmp:
        now = export(store, replace(side.export, out=Path(tmp) / "check"), record=False).content_hash
    if now != trained_on:
        raise XInstructError(f"{side.model} was tuned on other data than {side.label} holds now (export "
                             f"{(trained_on or '?')[:12]}, now {now[:12]}): the store changed since; pass a new --name "
                             "to compare the data as it is now")
    progress(f"{side.model}: already tuned on this data ({now[:12]}), reused")
    return "reused"


def run(store: Store, cfg: CompareConfig, *, answer_model: Callable[[str], object] | None = None, judge_model=None,
        progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Plan, then for A and B export + tune (or reuse), answer, judge both orders, report. `answer_model(name)` and
    `judge_model` replace loading the models (tests). Returns {a, b, models, answers, judge, report}."""
    from . import judge_report
    from . import judge as judging
    from .instruct import answer_questions

    a, b = plan(store, cfg)
    models = {side.model: ensure_model(store, cfg, side, progress) for side in (a, b)}
    answered = {}
    for side in (a, b):
        acfg = AnswerConfig(model=side.model, questions=cfg.questions, langs=cfg.langs, limit=cfg.limit,
                            max_new_tokens=cfg.max_new_tokens, batch_size=cfg.answer_batch_size,
                            backend=cfg.answer_backend, device=cfg.train.device, progress=False)
        answered[side.model] = answer_questions(store, acfg, model=answer_model(side.model) if answer_model else None)
        progress(f"{side.model}: answers {answered[side.model]['langs']}")
    qset = question_set_name(cfg.questions)
    info = {"backend": "injected"}
    if judge_model is None:
        judge_model, info = judging.load_judge(cfg.judge, cfg.judge_backend, store, batch_size=cfg.judge_batch_size,
                                               **cfg.judge_options)
    params = replace(judging.JUDGE_SAMPLING, max_new_tokens=cfg.judge_max_new_tokens)
    stats = judging.run(store, judge_model, a.model, b.model, qset, langs=cfg.langs, params=params,
                        batch_size=cfg.judge_batch_size, limit=cfg.limit, sampling_info=info, progress=progress)
    rep = judge_report.report(store, a.model, b.model, judge=judge_model.name, question_set=qset, langs=cfg.langs)
    return {"a": a, "b": b, "models": models, "answers": answered, "judge": stats, "report": rep}
