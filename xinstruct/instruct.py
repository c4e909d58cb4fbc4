"""The method's last stage: tune an instruction model on an export, then answer benchmark questions with it.

Training (`train_instruct`): supervised fine-tuning on an export folder (either template: alpaca rows or messages rows,
JSON Lines or Parquet), in the paper's Alpaca template with the instruction followed by ` Answer in {Language}.`
(added once: an export made with the default `answer_hint` already carries it). The loss covers the response and the
end-of-sequence token only; the prompt's labels are -100. A response longer than `max_tokens` allows is cut (and then
gets no end-of-sequence token, so the model never learns to stop mid-text).

Why transformers + PEFT and not TRL's SFT trainer: the generator (train.py) already trains with our own small loop on
transformers + PEFT (masked loss on the continuation, AdamW with cosine decay, LoRA on every linear layer, atomic save,
registration in `model_versions`). This stage reuses that loop and those saving pieces unchanged, so both kinds of model
behave the same way, and the project needs no extra dependency (TRL would add a package and its own trainer
abstractions, whose defaults and version churn we would have to track, for what is here ~40 lines already tested).

The trained model is registered as a model version of kind 'instruct' whose `data_hash` is the export's content hash
(manifest.json), with the export's row count in its metrics, so every answer and every score traces to the data.

Answering (`answer_questions`): reads a question file (JSON Lines in the shapes of common benchmark files: an id in
`id`, `question_id` or `idx`, else the line number; the question in `question`, `instruction`, `Instruction`,
`turns[0]` or `question_translated`; an optional `input`, or `instances[0].input`, goes into the Alpaca template's input
section). English questions get ` Answer in <Language>.` as in training; a row whose own `lang` is not "en" is already
in that language and is asked as is, and only for that language. Answers are stored after every batch (store/evals.py);
a rerun skips the ids already answered by the same model for the same question set and language.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import ConfigError, InputError, XInstructError
from .export import file_sha256
from .langs import LANGS, check_lang
from .models.base import SamplingParams
from .models.embedded import EMBEDDED_NAME
from .store import Store
from .store.evals import Answer, add_answers, answered_ids
from .train import Example, TrainConfig

TEMPLATE_VERSION = "alpaca-v1"
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
          "\n\n### Instruction:\n{instruction}\n\n### Response:\n")
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request."
                "\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
EMBEDDED_ALIASES = ("embedded", "default", "base", EMBEDDED_NAME)
ID_KEYS = ("id", "question_id", "idx")
QUESTION_KEYS = ("question", "instruction", "Instruction", "turns", "question_translated")
STOP = ("### Instruction:",)  # a model that runs on into a new template section is cut there


# ---------------------------------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------------------------------
def lang_name(lang: str) -> str:
    return LANGS[check_lang(lang)].name


def with_hint(instruction: str, lang: str) -> str:
    """`instruction` followed by ` Answer in <Language>.`, unless it already ends with that sentence."""
    hint = f"Answer in {lang_name(lang)}."
    text = instruction.rstrip()
    return text if text.endswith(hint) else f"{text} {hint}"


def build_prompt(instruction: str, input: str | None = None) -> str:
    """The Alpaca prompt (with an input section when `input` is not empty), ending where the response starts."""
    if input and input.strip():
        return ALPACA_INPUT.format(instruction=instruction.strip(), input=input.strip())
    return ALPACA.format(instruction=instruction.strip())


# ---------------------------------------------------------------------------------------------------------------------
# Reading an export
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SFTRow:
    lang: str
    instruction: str  # as in the export (with or without the answer hint)
    response: str
    input: str = ""
    where: str = ""  # file and line (or row), for error messages

    @property
    def prompt(self) -> str:
        return build_prompt(with_hint(self.instruction, self.lang), self.input)


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise InputError("no such export folder", path=str(folder),
                         hint="pass the folder written by `xinstruct export` (it holds manifest.json)")
    if not path.exists():
        raise InputError("no manifest.json: not an export folder", path=str(folder),
                         hint="pass the folder written by `xinstruct export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path=str(path),
                         hint="export again; the manifest is written by `xinstruct export`") from exc
    missing = [k for k in ("content_hash", "rows", "files") if k not in manifest] if isinstance(manifest, dict) else ["all"]
    if missing:
        raise InputError(f"manifest lacks {', '.join(missing)}", path=str(path), hint="export again with `xinstruct export`")
    return manifest


def read_export(folder: str | Path) -> tuple[list[SFTRow], dict]:
    """Rows and manifest of an export folder. Each data file must match the sha256 in the manifest (so the content
    hash recorded with the model is the hash of what it was trained on); a bad row stops with its file and line."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    rows: list[SFTRow] = []
    for entry in manifest["files"]:
        path = folder / entry["path"]
        if not path.exists():
            raise InputError("data file named in manifest.json is missing", path=str(path), hint="export again")
        if entry.get("sha256") and file_sha256(path) != entry["sha256"]:
            raise InputError("data file changed since it was exported (sha256 differs from manifest.json)",
                             path=str(path), hint="export again rather than editing an export by hand")
        records = _jsonl_records(path) if path.suffix == ".jsonl" else _parquet_records(path)
        rows += [_sft_row(rec, str(path), n) for n, rec in records]
    if not rows:
        raise InputError("the export holds no rows", path=str(folder), hint="export a selection with pairs in it")
    if int(manifest["rows"]) != len(rows):
        raise InputError(f"manifest.json says {manifest['rows']} rows, the data files hold {len(rows)}",
                         path=str(folder), hint="export again")
    return rows, manifest


def _jsonl_records(path: Path, hint: str = "fix or remove the line, or export again") -> Iterable[tuple[int, object]]:
    """(line number, object) of each non-blank line of a JSON Lines file; a line that is not UTF-8 or not JSON is an
    InputError naming the file and line, with `hint` saying what to do."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError("not UTF-8 text", path=str(path), line=n, hint="save the file as UTF-8 JSON Lines") from exc
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=str(path), line=n,
                                 hint=hint) from exc


def _parquet_records(path: Path) -> Iterable[tuple[int, object]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise InputError(f"not a readable Parquet file ({exc})", path=str(path), hint="export again") from exc
    for n, rec in enumerate(table.to_pylist(), 1):
        yield n, rec


def _sft_row(rec: object, path: str, line: int) -> SFTRow:
    def bad(what: str) -> InputError:
        return InputError(what, path=path, line=line,
                          hint="each row needs language and either instruction + output (alpaca) or messages with a "
                               "user and an assistant turn; export again or fix the row")

    if not isinstance(rec, dict):
        raise bad("expected a JSON object")
    lang = rec.get("language") or rec.get("lang")
    if not isinstance(lang, str) or lang.lower() not in LANGS:
        raise bad(f"language {lang!r} is not one of {', '.join(LANGS)}")
    if "messages" in rec:
        messages = rec["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise bad("messages must be a list of {role, content} objects")
        roles = [m.get("role") for m in messages]
        if "user" not in roles or "assistant" not in roles[roles.index("user") + 1:]:
            raise bad("messages need a user turn followed by an assistant turn")
        u = roles.index("user")
        a = u + 1 + roles[u + 1:].index("assistant")
        instruction, response, inp = messages[u].get("content"), messages[a].get("content"), ""
    else:
        instruction, response, inp = rec.get("instruction"), rec.get("output"), rec.get("input") or ""
    for key, value in (("instruction", instruction), ("response", response)):
        if not isinstance(value, str) or not value.strip():
            raise bad(f"empty or missing {key}")
    if not isinstance(inp, str):
        raise bad("input must be a string")
    return SFTRow(lang.lower(), instruction, response, inp, f"{path}:{line}")


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class InstructConfig(TrainConfig):
    """Settings of instruction tuning: TrainConfig's (LoRA, optimiser, steps, device) plus the export to train on.

    `seed_files` and `holdout_every` of TrainConfig are not used here."""

    export: str = ""  # export folder (manifest.json + data files)
    epochs: float = 2.0  # passes over the export's rows
    max_tokens: int = 512  # longest example in tokens; the response is cut to fit, never the prompt

    def validate(self) -> None:
        super().validate()
        if not self.export:
            raise ConfigError("no export given; pass --export DIR (a folder written by `xinstruct export`)")
        if self.base in (None, "", *EMBEDDED_ALIASES):
            self.base = EMBEDDED_NAME


def encode_sft(tokenizer, row: SFTRow, max_tokens: int):
    """Prompt + response + EOS as one example; labels -100 on the prompt. A long response is cut (without EOS)."""
    prompt = tokenizer(row.prompt).input_ids
    target = tokenizer(row.response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    budget = max_tokens - len(prompt)
    if budget < 8:
        raise ConfigError(f"max_tokens {max_tokens} is too small: the prompt of {row.where} alone takes {len(prompt)} "
                          "tokens; raise --max-tokens")
    target = target[:budget]
    return Example(prompt + target, [-100] * len(prompt) + target)


def train_instruct(store: Store, cfg: InstructConfig) -> str:
    """Tune `cfg.base` on the export's rows (Alpaca template, loss on the response), save, register (kind 'instruct')
    with the export's content hash; returns the version name."""
    import torch

    from . import train as tr
    from .models.hf import load_hf, resolve_model

    cfg.validate()
    all_rows, manifest = read_export(cfg.export)
    rows = [r for r in all_rows if not cfg.langs or r.lang in cfg.langs]
    if not rows:
        present = sorted({r.lang for r in all_rows})
        raise XInstructError(f"the export has no rows in {', '.join(cfg.langs)} (it has {', '.join(present)}); "
                             "change --langs")
    digest = manifest["content_hash"]
    name = cfg.name or f"instruct-{digest[:8]}"
    folder = tr._new_model_folder(store, name)
    torch.manual_seed(cfg.seed)
    tokenizer, model = load_hf(resolve_model(store, cfg.base), cfg.device)
    examples = [encode_sft(tokenizer, r, cfg.max_tokens) for r in rows]
    cut = sum(e.input_ids[-1] != tokenizer.eos_token_id for e in examples)
    model = tr._trainable(model, cfg)
    steps = tr.total_steps(cfg, len(examples))
    started = time.perf_counter()
    losses = tr._optimise(model, examples, steps, cfg, tokenizer.pad_token_id)
    per_lang: dict[str, int] = {}
    for r in rows:
        per_lang[r.lang] = per_lang.get(r.lang, 0) + 1
    meta = {
        "name": name, "task": "instruct", "base": cfg.base, "method": "lora" if cfg.lora else "full",
        "data_hash": digest, "export": str(Path(cfg.export).resolve()), "export_rows": int(manifest["rows"]),
        "pairs": len(rows), "heldout_pairs": 0, "per_lang": dict(sorted(per_lang.items())), "langs": sorted(per_lang),
        "responses_cut": cut, "steps": steps, "final_loss": losses[-1], "losses": losses,
        "train_seconds": round(time.perf_counter() - started, 1), "template": TEMPLATE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": asdict(cfg),
    }
    tr._save(model, tokenizer, folder, meta, cfg)
    tr._register(store, name, folder, meta, kind="instruct",
                 extra_metrics={k: meta[k] for k in ("export", "export_rows", "per_lang", "responses_cut", "template")})
    return name


# ---------------------------------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    id: str
    text: str
    lang: str | None = None  # None: English (gets the answer hint); else the language it is written in
    input: str = ""
    line: int = 0

    def prompt(self, lang: str) -> str:
        instruction = self.text if self.lang is not None else with_hint(self.text, lang)
        return build_prompt(instruction, self.input)


def question_set_name(path: str | Path) -> str:
    """The file's stem and a short hash of its bytes, e.g. 'vicuna80_questions@1a2b3c4d'."""
    path = Path(path)
    return f"{path.stem}@{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


def read_questions(path: str | Path) -> list[Question]:
    """Questions from JSON Lines (see the module's docstring for the accepted shapes). Errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such question file", path=str(path), hint="pass a JSON Lines file of questions")
    out: list[Question] = []
    seen: dict[str, int] = {}
    for n, rec in _jsonl_records(path, hint="one JSON object per line; fix or remove the line"):
        def bad(what: str, hint: str = f"each line needs a question in one of {', '.join(QUESTION_KEYS)}") -> InputError:
            return InputError(what, path=str(path), line=n, hint=hint)

        if not isinstance(rec, dict):
            raise bad("expected a JSON object")
        key = next((k for k in QUESTION_KEYS if k in rec), None)
        if key is None:
            raise bad(f"no question field (keys: {', '.join(sorted(map(str, rec))) or 'none'})")
        text = rec[key]
        if key == "turns":
            if not isinstance(text, list) or not text:
                raise bad("turns must be a non-empty list of strings (the first turn is asked)")
            text = text[0]
        if not isinstance(text, str) or not text.strip():
            raise bad(f"{key} is empty or not a string")
        id_key = next((k for k in ID_KEYS if rec.get(k) is not None), None)
        qid = str(rec[id_key]) if id_key else f"line{n}"
        if qid in seen:
            raise bad(f"id {qid!r} also on line {seen[qid]}", hint="give every question its own id")
        seen[qid] = n
        lang = rec.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise bad(f"lang must be a language code, not {lang!r}")
        lang = None if lang in (None, "", "en") else lang.lower()
        inp = rec.get("input")
        instances = rec.get("instances")
        if inp is None and isinstance(instances, list) and instances and isinstance(instances[0], dict):
            inp = instances[0].get("input")
        if inp is not None and not isinstance(inp, str):
            raise bad("input must be a string")
        out.append(Question(qid, text.strip(), lang, (inp or "").strip(), n))
    if not out:
        raise InputError("no questions in the file", path=str(path), hint="pass a JSON Lines file with one question a line")
    return out


def questions_for(questions: list[Question], lang: str) -> list[Question]:
    """English questions, and those written in `lang`, in file order."""
    return [q for q in questions if q.lang in (None, lang)]


# ---------------------------------------------------------------------------------------------------------------------
# Answering
# ---------------------------------------------------------------------------------------------------------------------
ANSWER_BACKENDS = ("transformers", "vllm")


@dataclass
class AnswerConfig:
    model: str  # model version name, folder, or embedded/base (the untuned embedded base)
    questions: str  # question file (JSON Lines)
    langs: list[str] = field(default_factory=list)
    limit: int | None = None  # at most this many questions per language (file order)
    max_new_tokens: int = 256
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    seed: int = 0
    device: str | None = None
    backend: str = "transformers"  # transformers (CPU or one GPU) | vllm (GPUs; a version name or folder)
    progress: bool = True

    def validate(self) -> None:
        if not self.langs:
            raise ConfigError("no language given; pass --lang xx (repeatable)")
        if self.backend not in ANSWER_BACKENDS:
            raise ConfigError(f"unknown answer backend {self.backend!r}; use one of {', '.join(ANSWER_BACKENDS)}")
        self.langs = list(dict.fromkeys(check_lang(x) for x in self.langs))
        checks = [(self.limit is None or self.limit >= 1, "limit must be at least 1"),
                  (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
                  (self.batch_size >= 1, "batch_size must be at least 1"),
                  (self.temperature >= 0, "temperature must be 0 (greedy) or more")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if not self.model or not str(self.model).strip():
            raise ConfigError("no model given; pass --model NAME (a model version, a folder, or embedded)")

    def sampling(self) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                              repetition_penalty=self.repetition_penalty, stop=STOP, seed=self.seed)


def model_label(spec: str) -> str:
    """The name answers are stored under: the version name, `gemma3-270m` for the embedded base, or a folder's path."""
    if spec in EMBEDDED_ALIASES:
        return EMBEDDED_NAME
    folder = Path(spec).expanduser()
    return str(folder.resolve()) if folder.is_dir() else spec


def load_answer_model(store: Store, spec: str, cfg: AnswerConfig):
    resolved = EMBEDDED_NAME if spec in EMBEDDED_ALIASES else spec
    if cfg.backend == "vllm":
        if spec in EMBEDDED_ALIASES:
            raise ConfigError("the vllm backend answers with a tuned version or a model folder, not the embedded base; "
                              "use --backend transformers for it")
        from .models.vllm_backend import VLLMModel

        model = VLLMModel.load(resolved, store=store)
    else:
        from .models.hf import TransformersModel

        model = TransformersModel.load(resolved, device=cfg.device, store=store, batch_size=cfg.batch_size)
    model.name = model_label(spec)
    return model


def answer_questions(store: Store, cfg: AnswerConfig, model=None,
                     on_batch: Callable[[str, int], None] | None = None) -> dict:
    """Answer the file's questions in each language; store after every batch; skip what is already answered.

    `model` (anything with `name` and `generate`) replaces loading `cfg.model` (tests, or one model for several runs).
    Returns per language: questions, skipped (already answered), answered, truncated, seconds."""
    from tqdm import tqdm

    cfg.validate()
    questions = read_questions(cfg.questions)
    qset = question_set_name(cfg.questions)
    plan = {}
    for lang in cfg.langs:
        mine = questions_for(questions, lang)
        if not mine:
            present = sorted({q.lang or "en" for q in questions})
            raise InputError(f"no questions for {lang}: the file has only questions in {', '.join(present)}",
                             path=str(cfg.questions), hint="pass English questions or questions written in that language")
        plan[lang] = mine[: cfg.limit] if cfg.limit else mine
    label = model.name if model is not None else model_label(cfg.model)
    todo = {}
    for lang, qs in plan.items():
        done = answered_ids(store, label, qset, lang)
        todo[lang] = [q for q in qs if q.id not in done]
    stats = {lang: {"questions": len(plan[lang]), "skipped": len(plan[lang]) - len(todo[lang]), "answered": 0,
                    "truncated": 0, "seconds": 0.0} for lang in plan}
    if not any(todo.values()):
        return {"model": label, "question_set": qset, "langs": stats}
    if model is None:
        model = load_answer_model(store, cfg.model, cfg)
    params = cfg.sampling()
    sampling = {**params.as_dict(), "stop": list(params.stop), "backend": type(model).__name__,
                "batch_size": cfg.batch_size, "template": TEMPLATE_VERSION}
    total = sum(len(v) for v in todo.values())
    with tqdm(total=total, unit="answer", desc="answer", disable=not cfg.progress) as bar:
        for lang, qs in todo.items():
            for i in range(0, len(qs), cfg.batch_size):
                chunk = qs[i : i + cfg.batch_size]
                prompts = [q.prompt(lang) for q in chunk]
                started = time.perf_counter()
                gens = model.generate(prompts, params)
                seconds = time.perf_counter() - started
                rows = []
                for q, prompt, g in zip(chunk, prompts, gens):
                    finish = g.meta.get("finish_reason") or ("length" if g.n_tokens >= params.max_new_tokens else "stop")
                    rows.append(Answer(model=label, question_set=qset, question_id=q.id, lang=lang, question=q.text,
                                       prompt=prompt, answer=g.text.strip(), finish_reason=finish, sampling=sampling,
                                       seconds=round(seconds / len(chunk), 3)))
                    stats[lang]["truncated"] += finish == "length"
                add_answers(store, rows)
                stats[lang]["answered"] += len(rows)
                stats[lang]["seconds"] = round(stats[lang]["seconds"] + seconds, 1)
                bar.update(len(rows))
                if on_batch:
                    on_batch(lang, len(rows))
    return {"model": label, "question_set": qset, "langs": stats}
