"""Export approved pairs as training data: JSON Lines, Parquet or a Hugging Face dataset folder.

One SQL query (`store.exports.export_query`) selects the rows (final instruction and response, metadata, the decision
log of each pair) and DuckDB writes it straight to the file with `COPY ... TO`; pandas is never involved. Memory stays bounded: the long texts are
sorted without entering any hash join (see `export_query`) and DuckDB runs the export under `memory_limit`, spilling
its sort to disk beyond it.

Deterministic: rows are ordered by candidate id, columns come in a fixed order, and nothing time-dependent is written
into a data file, so the same filter on the same store gives byte-identical data files (the date lives in README.md).
Beside the data: `manifest.json` (rows, sha256 of each data file, content hash) and `README.md`, a dataset card with
per-language counts, length statistics, acceptance and edit rates, agreement, sources and model versions. Every export
is recorded in the `exports` table.

Templates (the instruction gets the paper's " Answer in <Language>." unless `answer_hint=False`):
* alpaca:   {"instruction", "input": "", "output", ...metadata}
* messages: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], ...metadata}
Metadata, in this order: candidate_id, language, document_id, source_url, source, label, score, cluster, review_status,
model_versions (list), decisions (list of {reviewer, action, at}).

Formats: `jsonl` -> data.jsonl; `parquet` -> data.parquet; `hf` -> data/train-0000i-of-0000n.parquet shards plus the
card's YAML header naming them, so `datasets.load_dataset(folder)` opens it (as do `load_dataset("parquet",
data_files=...)` and pandas).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import vocab as V
from .errors import InputError
from .langs import LANGS
from .store import Store
from .store import exports as q
from .store.curation import CandidateFilter
from .store.curation import count as count_selected
from .store.exports import METADATA, TEMPLATES  # noqa: F401  (the export's columns and templates)

FORMATS = ("jsonl", "parquet", "hf")
# `--status accepted` means every pair whose final state goes into the data: accepted as is, or edited.
STATUS_SETS = {V.ACCEPTED: V.KEPT, "all": V.STATUSES, **{s: (s,) for s in V.STATUSES if s != V.ACCEPTED}}
# zstd (level 3): 441 MiB for a million ~1,000-character pairs against 991 MiB with snappy. No dictionary: responses
# are long and unique, and trying a dictionary first doubles the write time.
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000, DICTIONARY_SIZE_LIMIT 1"
LICENSE_NOTE = (
    "The responses are native texts taken from the sources below; each keeps the license of its source. Several web "
    "sources are NonCommercial, ShareAlike or state no license at all: check every source before you redistribute or "
    "train a commercial model on this data. The English instructions were written by models and reviewers of this "
    "project."
)


@dataclass
class ExportConfig:
    """What to export, and how."""

    out: Path  # folder to write (created; must be empty unless overwrite)
    status: str | tuple[str, ...] = V.ACCEPTED  # accepted (= accepted + edited), edited, rejected, pending, ..., all
    langs: tuple[str, ...] = ()  # language codes; empty = all
    min_score: float | None = None  # evaluator score at least this
    format: str = "jsonl"  # jsonl | parquet | hf
    template: str = "alpaca"  # alpaca | messages
    filter: CandidateFilter | None = None  # further conditions (the explore page's filter), AND-ed with the above
    answer_hint: bool = True  # append " Answer in <Language>." to the instruction (the paper's training format)
    shard_rows: int = 500_000  # hf: rows per Parquet shard
    overwrite: bool = False  # replace the files of an earlier export in `out`
    memory_limit: str | None = "2GB"  # DuckDB's memory limit while the export runs (its sort spills to disk beyond;
    #                                   the setting is the database's, restored afterwards); None = leave it as it is
    drafts: bool = False  # the instruction and response as generated, before any reviewer's edit (the final ones else)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.langs, str):
            self.langs = tuple(x for x in self.langs.replace(",", " ").split() if x)
        self.langs = tuple(self.langs or ())

    def statuses(self) -> tuple[str, ...]:
        parts = [self.status] if isinstance(self.status, str) else list(self.status)
        parts = [p.strip() for item in parts for p in str(item).split(",") if p.strip()]
        out: list[str] = []
        for p in parts:
            if p not in STATUS_SETS:
                raise InputError(f"unknown status {p!r}", hint=f"use {', '.join(STATUS_SETS)}")
            out += [s for s in STATUS_SETS[p] if s not in out]
        if not out:
            raise InputError("no status given", hint="use --status accepted")
        return tuple(out)

    def validate(self) -> ExportConfig:
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}", hint=f"use {', '.join(FORMATS)}")
        if self.template not in TEMPLATES:
            raise InputError(f"unknown template {self.template!r}", hint=f"use {', '.join(TEMPLATES)}")
        if self.shard_rows < 1:
            raise InputError("shard_rows must be at least 1")
        if self.memory_limit is not None and not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", str(self.memory_limit)):
            raise InputError(f"invalid memory limit {self.memory_limit!r}", hint="e.g. 1GB, 512MB, 2GiB")
        self.statuses()
        self.selection().validate()
        if self.filter is not None:
            self.filter.validate()
        return self

    def selection(self) -> CandidateFilter:
        return CandidateFilter(langs=self.langs, statuses=self.statuses(), min_score=self.min_score)

    def filters(self) -> list[CandidateFilter]:
        """The selection (status, languages, score) and the further filter, AND-ed by the store's queries."""
        return [self.selection(), *([self.filter] if self.filter is not None else [])]

    def describe(self) -> dict:
        """The settings that decide the content (recorded in the manifest and the exports table)."""
        return {
            "status": list(self.statuses()),
            "langs": list(self.langs),
            "min_score": self.min_score,
            "filter": self.filter.as_dict() if self.filter is not None else None,
            "format": self.format,
            "template": self.template,
            "answer_hint": self.answer_hint,
            **({"drafts": True} if self.drafts else {}),  # recorded only when set: earlier manifests stay as they were
        }


@dataclass
class ExportResult:
    export_id: str
    out: Path
    paths: list[Path]  # the data files
    rows: int
    content_hash: str  # sha256 over the data files' names and hashes
    manifest: Path
    card: Path
    per_lang: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"exported {self.rows} rows to {self.out} ({', '.join(p.name for p in self.paths)}; {self.content_hash[:12]})"


def export_query(cfg: ExportConfig, start: str | None = None, stop: str | None = None) -> tuple[str, list]:
    """The query that yields the export rows of `cfg` in their final column order, and its parameters (see
    `store.exports.export_query`; `start` / `stop` narrow it to candidate ids in [start, stop))."""
    return q.export_query(cfg.filters(), cfg.template, answer_hint=cfg.answer_hint, start=start, stop=stop,
                          drafts=cfg.drafts)


# ---------------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------------
OWN_FILES = ("data.jsonl", "data.parquet", "README.md", "manifest.json")


def export(store: Store, cfg: ExportConfig, user=None, *, record: bool = True) -> ExportResult:
    """Write the pairs `cfg` selects to `cfg.out`; record the export. With a `user`, only curators and admins may
    export (the CLI runs as the local operator and passes none). `record=False` writes the files without a row in
    `exports` (to check what an export would hold now, e.g. whether a model's data is still current)."""
    if user is not None:
        from . import auth

        user = auth.authorize(user, "curator", store)
    cfg.validate()
    by_user = getattr(user, "name", None) or f"local:{getpass.getuser()}"
    out = _prepare(cfg)
    rows = count_selected(store, cfg.filters())

    if cfg.format == "jsonl":
        paths = [_copy(store, cfg, out / "data.jsonl", "FORMAT json")]
    elif cfg.format == "parquet":
        paths = [_copy(store, cfg, out / "data.parquet", PARQUET_OPTIONS)]
    else:
        paths = _write_shards(store, cfg, out, rows)

    files = [{"path": p.relative_to(out).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in paths]
    content_hash = hashlib.sha256("".join(f"{f['path']} {f['sha256']}\n" for f in files).encode()).hexdigest()
    manifest = {"rows": rows, "content_hash": content_hash, "files": files, "columns": _columns(cfg),
                "config": cfg.describe()}
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    created = datetime.now(timezone.utc)
    facts = _card_facts(store, cfg)
    card_path = out / "README.md"
    card_path.write_text(_card(cfg, files, rows, content_hash, facts, created, by_user), encoding="utf-8")

    export_id = f"{created:%Y%m%dT%H%M%S}-{content_hash[:8]}-{uuid.uuid4().hex[:6]}"
    if record:
        q.record_export(store, export_id, created.replace(tzinfo=None), by_user,
                        json.dumps(cfg.describe(), ensure_ascii=False, sort_keys=True), cfg.format, cfg.template,
                        rows, content_hash, str(out.resolve()))
    return ExportResult(export_id=export_id, out=out, paths=paths, rows=rows, content_hash=content_hash,
                        manifest=manifest_path, card=card_path, per_lang={r["lang"]: r["rows"] for r in facts["langs"]})


def _prepare(cfg: ExportConfig) -> Path:
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file", hint="give a folder for the export")
    out.mkdir(parents=True, exist_ok=True)
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if entries and not cfg.overwrite:
        raise InputError(f"export folder {out} is not empty", hint="choose a new folder or pass --overwrite")
    if cfg.overwrite:
        for name in OWN_FILES:
            (out / name).unlink(missing_ok=True)
        data = out / "data"
        if data.is_dir():
            for p in data.glob("train-*.parquet"):
                p.unlink()
    return out


def _copy(store: Store, cfg: ExportConfig, path: Path, options: str, start: str | None = None,
          stop: str | None = None) -> Path:
    """COPY the export query (optionally one id range) to `path`, via a temporary name renamed at the end."""
    sql, params = export_query(cfg, start, stop)
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    q.copy_query(store, sql, params, tmp, options, cfg.memory_limit)
    tmp.replace(path)
    return path


def _write_shards(store: Store, cfg: ExportConfig, out: Path, rows: int) -> list[Path]:
    """hf: Parquet shards of `shard_rows` rows, cut at candidate-id boundaries (same store, same shards)."""
    (out / "data").mkdir(exist_ok=True)
    n = max(1, math.ceil(rows / cfg.shard_rows))
    starts = q.shard_starts(store, cfg.filters(), cfg.shard_rows)
    paths = []
    for i in range(n):
        path = out / "data" / f"train-{i:05d}-of-{n:05d}.parquet"
        paths.append(_copy(store, cfg, path, PARQUET_OPTIONS, starts[i] if i < len(starts) else None,
                           starts[i + 1] if i + 1 < len(starts) else None))
    return paths


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (manifest.json records one per data file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _columns(cfg: ExportConfig) -> list[str]:
    head = ["instruction", "input", "output"] if cfg.template == "alpaca" else ["messages"]
    return [*head, *METADATA]


# ---------------------------------------------------------------------------------------------------------------------
# The dataset card
# ---------------------------------------------------------------------------------------------------------------------
def _card_facts(store: Store, cfg: ExportConfig) -> dict:
    from . import curate

    filters = cfg.filters()
    langs = q.language_lengths(store, filters, drafts=cfg.drafts)
    sources = q.sources(store, filters)
    versions = q.model_versions_used(store, filters)
    codes = [r["lang"] for r in langs]
    review = {r["lang"]: r for r in curate.overview(store, [c for c in codes if c in LANGS])} if codes else {}
    agreement = curate.reviewer_stats(store, [c for c in codes if c in LANGS]) if codes else None
    return {"langs": langs, "sources": sources, "versions": versions, "review": review, "agreement": agreement}


def _card_filter(filt: CandidateFilter) -> dict:
    """The filter as the card shows it: a list of candidate ids is summarised (manifest.json holds it whole)."""
    d = filt.as_dict()
    if d.get("ids"):
        d["ids"] = f"{len(d['ids'])} candidate ids (listed in manifest.json)"
    return d


def _f(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _card(cfg: ExportConfig, files: list[dict], rows: int, content_hash: str, facts: dict, created: datetime,
          by_user: str) -> str:
    data_glob = {"jsonl": "data.jsonl", "parquet": "data.parquet", "hf": "data/train-*.parquet"}[cfg.format]
    codes = [r["lang"] for r in facts["langs"]]
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {data_glob}",
        "language:",
        *[f"- {c}" for c in codes],
        "license: other",
        "task_categories:",
        "- text-generation",
        "---",
        "",
        "# Cross-lingual instruction data (xinstruct export)",
        "",
        "English instructions paired with **native** responses taken from web text (not translated), reviewed by native "
        "speakers (method: X-Instruction, Li et al., ACL Findings 2024). Responses are as the reviewers left them.",
        "",
        f"- rows: **{rows}**; template: `{cfg.template}`; format: `{cfg.format}`",
        f"- selection: status {', '.join(cfg.statuses())}"
        + (f"; languages {', '.join(cfg.langs)}" if cfg.langs else "")
        + (f"; score >= {cfg.min_score}" if cfg.min_score is not None else "")
        + (f"; filter {json.dumps(_card_filter(cfg.filter), ensure_ascii=False)}" if cfg.filter is not None else "")
        + ("; **drafts as generated, before any reviewer's edit**" if cfg.drafts else ""),
        f"- exported {created:%Y-%m-%d %H:%M} UTC by {by_user}; content hash `{content_hash}`",
        "",
        "## Languages and lengths (characters)",
        "",
        "| language | rows | edited | instruction mean (sd) | response mean (sd) | response min-max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in facts["langs"]:
        name = LANGS[r["lang"]].name if r["lang"] in LANGS else r["lang"]
        lines.append(
            f"| {name} ({r['lang']}) | {r['rows']} | {r['edited']} | {_f(r['instr_mean'])} ({_f(r['instr_sd'])}) | "
            f"{_f(r['resp_mean'])} ({_f(r['resp_sd'])}) | {r['resp_min']}-{r['resp_max']} |")
    lines += [
        "",
        "## Review (all reviewed pairs of these languages in the store, not only the exported ones)",
        "",
        "| language | decided | acceptance | edit rate | mean edit distance (instruction, chars) |",
        "|---|---:|---:|---:|---:|",
    ]
    for code in codes:
        r = facts["review"].get(code)
        if r:
            lines.append(f"| {code} | {r['decided']} | {_pct(r['acceptance_rate'])} | {_pct(r['edit_rate'])} | "
                         f"{_f(r['mean_edit_distance'])} |")
    lines += ["", V.RATES_CAPTION]
    ag = facts["agreement"]
    if ag is not None and ag.multi_reviewed:
        lines += ["", f"Agreement between reviewers over {ag.multi_reviewed} pairs with two or more verdicts: "
                      f"Krippendorff's alpha (nominal; accept, reject or an edit to one text) {_f(ag.alpha, 3)}; "
                      f"keep vs reject {_f(ag.alpha_keep, 3)}."]
    else:
        lines += ["", "Agreement between reviewers: no pair has two or more verdicts yet."]
    lines += ["", "## Sources and licenses", "", "| source | rows |", "|---|---:|"]
    lines += [f"| {src} | {n} |" for src, n in facts["sources"]]
    lines += ["", LICENSE_NOTE, "", "## Model versions", ""]
    if facts["versions"]:
        lines += ["| name | kind | base | steps | created |", "|---|---|---|---:|---|"]
        for v in facts["versions"]:
            lines.append(f"| {v['name']} | {v['kind'] or '–'} | {v['base'] or '–'} | {_f(v['steps'])} | "
                         f"{v['created_at'] or '–'} |")
    else:
        lines.append("No model version recorded.")
    lines += ["", "## Files", "", "| file | sha256 | bytes |", "|---|---|---:|"]
    lines += [f"| {f['path']} | `{f['sha256']}` | {f['bytes']} |" for f in files]
    lines += ["", "Columns: " + ", ".join(f"`{c}`" for c in _columns(cfg)) + ". `decisions` lists every logged "
              "decision on the pair (reviewer, action, time). Rows are ordered by `candidate_id`.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Helpers for the export page
# ---------------------------------------------------------------------------------------------------------------------
def preview(store: Store, cfg: ExportConfig) -> int:
    """How many rows `cfg` would export."""
    cfg.validate()
    return count_selected(store, cfg.filters())


def default_out(store: Store, user_name: str, fmt: str, now: datetime | None = None) -> Path:
    """A new folder for an export made in the app: `exports/` beside the database (a temporary folder for an in-memory
    store), named by UTC time, user and format."""
    import tempfile

    now = now or datetime.now(timezone.utc)
    root = Path(tempfile.gettempdir()) / "xinstruct-exports" if store.memory else Path(store.path).parent / "exports"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user_name)[:40] or "user"
    return root / f"{now:%Y%m%dT%H%M%S}-{safe}-{fmt}"


def zip_folder(folder: Path) -> Path:
    """`folder` as `<folder>.zip` (entries under the folder's name, sorted; Parquet stored, text compressed)."""
    import zipfile

    folder = Path(folder)
    target = folder.with_name(folder.name + ".zip")
    tmp = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            method = zipfile.ZIP_STORED if path.suffix == ".parquet" else zipfile.ZIP_DEFLATED
            zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}", compress_type=method)
    tmp.replace(target)
    return target
