"""Ingest native web text: read files, identify language, filter, deduplicate, store every document with its fate.

Bad input, decided per case (the README has the table):
* refuse the whole file before anything is written: missing/unreadable file, binary content, unknown format,
  an unknown `--lang` code, a CSV/Parquet without the text column;
* skip the line and report it (file, line, what, what to do), keep going: malformed JSON, invalid UTF-8, a record without
  text, a non-string text, an unknown language code in a record;
* accept silently: a UTF-8 BOM (stripped), an empty file (reported as 0 documents);
* store as dropped: a document outside the length window (a huge one is stored cut to 10,000 characters, with its size).
Documents are analysed (cleaned, filtered, language-identified, MinHashed: `textcheck`) in worker processes for files
of more than one batch, then deduplicated and written in order by this process. Each batch is written in one
transaction: a crash loses at most the batch in flight, and a rerun skips what is stored (document ids are hashes).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import numpy as np

from . import langid
from .config import setting
from .errors import InputError
from .langs import LANGS, check_lang
from .store import Store, to_json
from .store import documents as docstore
from .textcheck import BANDS, NUM_PERM, STORED_TEXT_CAP, Analysis, Limits, analyse
from .textcheck import boilerplate_reason, clean_text  # noqa: F401 (part of this module's interface)

log = logging.getLogger(__name__)
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class IngestConfig:
    """Settings of the ingest stage (each field's default, help and range also make the `xinstruct ingest` option)."""

    lang: str | None = setting(None, "declared language of every document (bn fi hi id sw ta th tr ur vi); default: "
                                     "each record's language field, else the detected language")
    text_field: str = setting("text", "field (or column) holding the document text")
    url_field: str = setting("url", "field holding the source url")
    timestamp_field: str = setting("timestamp", "field holding the crawl time")
    lang_field: str = setting("lang", "field holding a declared language code")
    min_chars: int = setting(300, "shorter documents are dropped (too_short), in characters", min=0)
    max_chars: int = setting(3000, "longer documents are dropped (too_long), in characters", min=1)
    near_dup_threshold: float = setting(
        0.8, "estimated Jaccard similarity of shingle sets (word bigrams; Thai: character 5-grams) above which a "
             "document is a near duplicate", above=0, max=1)
    min_lang_confidence: float = setting(
        0.5, "below this the language is 'uncertain' (mixed or unclear text) and the document dropped", min=0, max=1)
    batch_size: int = setting(5000, "documents per transaction (and per unit of work for the worker processes)", min=1)
    workers: int = setting(0, "processes analysing documents of large files (0 = one per core, 1 = none: all in this "
                              "process)", min=0, zero="one per core")
    progress: bool = setting(True, "show a progress bar")

    def validate(self) -> None:
        from .config import check, check_fields

        check_fields(self)
        if self.lang is not None:
            self.lang = check_lang(self.lang)
        check([(self.max_chars > self.min_chars,
                f"max_chars ({self.max_chars}) must be above min_chars ({self.min_chars})")])


@dataclass
class Issue:
    path: str
    line: int | None
    what: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.what} ({self.hint})"


@dataclass
class IngestStats:
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    already_stored: int = 0
    skipped_lines: int = 0
    issues: list[Issue] = field(default_factory=list)
    files: int = 0

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "already_stored": self.already_stored,
            "skipped_lines": self.skipped_lines,
        }


@dataclass
class Record:
    text: str
    line: int
    url: str | None = None
    timestamp: str | None = None
    lang: str | None = None
    meta: dict | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv", ".txt": "txt"}


def detect_format(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt, gz
    raise InputError(
        "unknown file type", path=str(path), hint=f"use one of {', '.join(FORMATS)} (optionally .gz)"
    )


def _open_bytes(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _check_binary(path: Path, gz: bool) -> None:
    try:
        with _open_bytes(path, gz) as fh:
            head = fh.read(8192)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read file: {exc}", path=str(path), hint="check that it is a complete, readable file") from exc
    if b"\x00" in head:
        raise InputError(
            "file looks binary (NUL bytes), refused",
            path=str(path),
            hint="pass JSON Lines, Parquet, CSV or plain UTF-8 text; nothing was stored from it",
        )


def read_records(path: Path, cfg: IngestConfig, issues: list[Issue]) -> Iterator[Record]:
    fmt, gz = detect_format(path)
    if fmt != "parquet":
        _check_binary(path, gz)
    reader = {"jsonl": _read_jsonl, "txt": _read_txt, "csv": _read_csv, "parquet": _read_parquet}[fmt]
    try:
        yield from reader(path, gz, cfg, issues)
    except (EOFError, OSError, zlib.error) as exc:  # e.g. a .gz cut short after its first block, or a read error
        issues.append(Issue(str(path), None, f"the file ends early or is damaged ({exc}); the rest of the file was skipped",
                            "check that it is complete (gzip -t for .gz) and ingest it again"))


def _decode(raw: bytes, path: Path, line: int, issues: list[Issue]) -> str | None:
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        issues.append(Issue(str(path), line, f"invalid UTF-8 at byte {exc.start}, line skipped",
                            "re-encode the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"))
        return None


def _record_from(obj: dict, line: int, path: Path, cfg: IngestConfig, issues: list[Issue]) -> Record | None:
    text = obj.get(cfg.text_field)
    if text is None:
        issues.append(Issue(str(path), line, f"no {cfg.text_field!r} field, line skipped",
                            f"fields here: {', '.join(list(obj)[:8])}; choose one with --text-field"))
        return None
    if not isinstance(text, str):
        issues.append(Issue(str(path), line, f"{cfg.text_field!r} is a {type(text).__name__}, not a string, line skipped",
                            "fix the record"))
        return None
    url = obj.get(cfg.url_field)
    ts = obj.get(cfg.timestamp_field)
    lang = obj.get(cfg.lang_field)
    if lang is not None and (not isinstance(lang, str) or lang.lower() not in LANGS):
        issues.append(Issue(str(path), line, f"unknown language code {lang!r}, line skipped",
                            f"use one of {', '.join(LANGS)}, or pass --lang to override"))
        return None
    meta = {k: v for k, v in obj.items() if k not in {cfg.text_field, cfg.url_field, cfg.timestamp_field, cfg.lang_field}
            and isinstance(v, (str, int, float, bool))}
    return Record(text, line, url if isinstance(url, str) else None, str(ts) if ts is not None else None,
                  lang.lower() if isinstance(lang, str) else None, meta or None)


def json_error(exc: Exception) -> str:
    """A whole sentence for a JSON parse error: json's own messages stop at "at" ("Invalid control character at")
    and leave the position to str(exc), which also repeats the line number we report ourselves."""
    if not isinstance(exc, json.JSONDecodeError):
        return "nested too deeply"
    where = f"column {exc.colno}" if exc.lineno == 1 else "the end of the line"  # the line's own line break
    what = exc.msg if exc.msg.endswith(" at") else f"{exc.msg} at"
    hint = (", a raw tab or line break inside a string must be written as \\t or \\n"
            if "control character" in exc.msg else "")
    return f"{what} {where}{hint}"


def _read_jsonl(path: Path, gz: bool, cfg: IngestConfig, issues: list[Issue]) -> Iterator[Record]:
    with _open_bytes(path, gz) as fh:
        for line_no, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                issues.append(Issue(str(path), line_no, f"line of {len(raw):,} bytes, skipped", "split the document"))
                continue
            if not raw.strip():
                continue
            text = _decode(raw, path, line_no, issues)
            if text is None:
                continue
            try:
                obj = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                issues.append(Issue(str(path), line_no, f"malformed JSON: {json_error(exc)}; line skipped",
                                    "each line must be one JSON object"))
                continue
            if not isinstance(obj, dict):
                issues.append(Issue(str(path), line_no, f"a JSON {type(obj).__name__}, not an object, line skipped",
                                    'each line must be an object like {"text": ...}'))
                continue
            rec = _record_from(obj, line_no, path, cfg, issues)
            if rec is not None:
                yield rec


def _read_txt(path: Path, gz: bool, cfg: IngestConfig, issues: list[Issue]) -> Iterator[Record]:
    block: list[str] = []
    start = 1
    with _open_bytes(path, gz) as fh:
        line_no = 0
        for line_no, raw in enumerate(fh, start=1):
            text = _decode(raw, path, line_no, issues)
            if text is None:
                continue
            if text.strip():
                if not block:
                    start = line_no
                block.append(text.rstrip("\r\n"))
            elif block:
                yield Record("\n".join(block), start)
                block = []
        if block:
            yield Record("\n".join(block), start)


def _read_csv(path: Path, gz: bool, cfg: IngestConfig, issues: list[Issue]) -> Iterator[Record]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with _open_bytes(path, gz) as raw:
        fh = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        try:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return
            if cfg.text_field not in reader.fieldnames:
                raise InputError(f"no {cfg.text_field!r} column (columns: {', '.join(reader.fieldnames)})",
                                 path=str(path), line=1, hint="choose the text column with --text-field")
            for i, row in enumerate(reader, start=2):
                rec = _record_from(row, reader.line_num or i, path, cfg, issues)
                if rec is not None:
                    yield rec
        except UnicodeDecodeError as exc:
            issues.append(Issue(str(path), None, f"invalid UTF-8 ({exc.reason}); the rest of the file was skipped",
                                "re-encode the file as UTF-8"))
        except csv.Error as exc:
            issues.append(Issue(str(path), None, f"broken CSV ({exc}); the rest of the file was skipped",
                                "check quoting"))


def _read_parquet(path: Path, gz: bool, cfg: IngestConfig, issues: list[Issue]) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        src = gzip.open(path, "rb") if gz else path
        pf = pq.ParquetFile(src)
    except Exception as exc:  # pyarrow raises several types for broken files
        raise InputError(f"not a readable Parquet file ({exc})", path=str(path), hint="check the file") from exc
    if cfg.text_field not in pf.schema_arrow.names:
        raise InputError(f"no {cfg.text_field!r} column (columns: {', '.join(pf.schema_arrow.names)})",
                         path=str(path), hint="choose the text column with --text-field")
    row = 0
    for batch in pf.iter_batches(batch_size=5000):
        for obj in batch.to_pylist():
            row += 1
            rec = _record_from(obj, row, path, cfg, issues)
            if rec is not None:
                yield rec


# ---------------------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------------------
def ingest(store: Store, paths: Iterable[str | Path], cfg: IngestConfig | None = None) -> IngestStats:
    from tqdm import tqdm

    cfg = cfg or IngestConfig()
    cfg.validate()
    stats = IngestStats()
    files = [Path(p) for p in paths]
    for path in files:  # refuse what cannot work before anything is written
        _preflight(path, cfg)
    with store.held(), tqdm(desc="ingest", unit=" docs", disable=not cfg.progress, leave=False) as bar:
        for path, batch, analyses in _analysed(_batches(files, cfg, stats), cfg):
            _store_batch(store, path.name, batch, analyses, cfg, stats)
            bar.update(len(batch))
            bar.set_postfix_str(path.name, refresh=False)
    return stats


def _preflight(path: Path, cfg: IngestConfig) -> None:
    """Raise InputError for a file that would be refused: missing, unknown type, binary, no text column."""
    if not path.is_file():
        raise InputError("no such file", path=str(path), hint="check the path")
    fmt, gz = detect_format(path)
    if fmt != "parquet":
        _check_binary(path, gz)
    if fmt in ("csv", "parquet"):  # their readers check the header before the first record
        next(read_records(path, cfg, []), None)


Batch = tuple[Path, list[Record]]  # documents of one file, in file order


def _batches(files: list[Path], cfg: IngestConfig, stats: IngestStats) -> Iterator[Batch]:
    """The batches of every file in turn (a batch never spans two files)."""
    for path in files:
        stats.files += 1
        issues: list[Issue] = []
        try:
            records = read_records(path, cfg, issues)
            while batch := list(islice(records, cfg.batch_size)):
                yield path, batch
        finally:
            stats.issues.extend(issues)
            stats.skipped_lines += len(issues)


class _UntilError:
    """An iterator that ends at the first error of the one it wraps, keeping the error for `check()`: what was read
    before the error is still analysed and stored, then the error is raised."""

    def __init__(self, items: Iterator):
        self._items = items
        self.error: Exception | None = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.error is not None:
            raise StopIteration
        try:
            return next(self._items)
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise StopIteration from None

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def _analysed(batches: Iterator[Batch], cfg: IngestConfig) -> Iterator[tuple[Path, list[Record], list[Analysis]]]:
    """Each batch with its analysis, in order. When there is more than one batch, worker processes analyse batches
    ahead while this process deduplicates and writes (analysis is CPU-bound Python and lingua, both holding the GIL)."""
    limits = Limits(cfg.min_chars, cfg.max_chars, cfg.min_lang_confidence)
    workers = cfg.workers or os.cpu_count() or 1
    reading = _UntilError(batches)
    head = list(islice(reading, 2))
    if len(head) < 2 or workers < 2:  # one batch is not worth starting processes for
        for path, batch in chain(head, reading):
            yield path, batch, analyse(_items(batch, cfg), limits)
        reading.check()
        return
    langid.warm()  # loaded once here; forked workers share the models
    pool = ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=_worker_start, initargs=(os.getpid(),))
    pending: deque[tuple[Batch, Future]] = deque()
    try:
        for item in chain(head, reading):
            pending.append((item, _submit(pool, item[1], cfg, limits)))
            while len(pending) > workers or (pending and pending[0][1].done()):  # at most workers + 1 batches ahead
                yield _result(*pending.popleft(), cfg, limits)
        while pending:
            yield _result(*pending.popleft(), cfg, limits)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    reading.check()


def _mp_context():
    """Fork on Linux: workers start at once with the models loaded, and scripts need no `__main__` guard (the workers
    only run pure functions, never the store). Elsewhere spawn, the platform's safe default."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _worker_start(parent: int) -> None:
    """In each worker: load the language models, and exit when the ingest process is gone (forked workers would
    otherwise wait forever on a queue whose other end they hold themselves)."""
    langid.warm()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# A worker killed from outside (out of memory?) breaks the pool: its batches and all later ones are analysed here.
def _submit(pool: ProcessPoolExecutor, batch: list[Record], cfg: IngestConfig, limits: Limits) -> Future:
    try:
        return pool.submit(analyse, _items(batch, cfg), limits, False)
    except BrokenProcessPool:
        done: Future = Future()
        done.set_result(analyse(_items(batch, cfg), limits))
        return done


def _result(item: Batch, future: Future, cfg: IngestConfig, limits: Limits) -> tuple[Path, list[Record], list[Analysis]]:
    path, batch = item
    try:
        return path, batch, future.result()
    except BrokenProcessPool:
        log.warning("an ingest worker process died (out of memory?); %s from line %s is analysed in this process",
                    path.name, batch[0].line)
        return path, batch, analyse(_items(batch, cfg), limits)


def _items(batch: list[Record], cfg: IngestConfig) -> list[tuple[str, str | None, str | None]]:
    return [(rec.text, rec.url, cfg.lang or rec.lang) for rec in batch]


def _store_batch(store: Store, source: str, batch: list[Record], analyses: list[Analysis], cfg: IngestConfig,
                 stats: IngestStats) -> None:
    stats.read += len(batch)
    # what is already stored (a rerun, or the same document twice) is skipped
    have = docstore.stored_ids(store, list({a.id for a in analyses}))
    fresh: list[tuple[Record, Analysis]] = []
    for rec, a in zip(batch, analyses):
        if a.id in have:
            stats.already_stored += 1
            continue
        have.add(a.id)
        fresh.append((rec, a))
    if fresh:
        _mark_duplicates(store, [a for _, a in fresh if a.reason is None], cfg)
        _write_batch(store, source, fresh, stats)


def _mark_duplicates(store: Store, survivors: list[Analysis], cfg: IngestConfig) -> None:
    """Exact and near duplicates, against the kept documents of the store and earlier kept ones of the batch.

    Near duplicates are pairs that share an LSH band and whose signatures agree on at least `near_dup_threshold` of
    their values. DuckDB finds the pairs that share a band; numpy compares all their signatures at once.
    """
    import pyarrow as pa

    if not survivors:
        return
    n = len(survivors)
    sigs = np.stack([a.sig for a in survivors])
    probe = pa.table({"i": np.repeat(np.arange(n, dtype=np.int32), BANDS),
                      "band_key": np.array([a.bands for a in survivors], dtype=np.uint64).ravel()})
    found = docstore.dedup_probe(store, list({a.content_hash for a in survivors}), probe)
    stored_hash, to_store, stored_sigs_rows, in_batch = (found.kept_by_hash, found.band_hits, found.signatures,
                                                         found.batch_pairs)
    stored_ids = [doc_id for doc_id, _ in stored_sigs_rows]
    stored_row = {doc_id: j for j, doc_id in enumerate(stored_ids)}
    stored_sigs = np.frombuffer(b"".join(sig for _, sig in stored_sigs_rows),
                                dtype=np.uint64).reshape(len(stored_sigs_rows), NUM_PERM)
    rows = np.fromiter((stored_row.get(d, -1) for d in to_store["doc_id"]), dtype=np.int64, count=len(to_store["doc_id"]))
    near_stored = _similar_pairs(to_store["i"][rows >= 0], rows[rows >= 0], sigs, stored_sigs, cfg.near_dup_threshold)
    near_batch = _similar_pairs(in_batch["i"], in_batch["j"], sigs, sigs, cfg.near_dup_threshold)

    batch_hash: dict[str, str] = {}
    kept: set[int] = set()
    for n, a in enumerate(survivors):
        if dup_of := stored_hash.get(a.content_hash) or batch_hash.get(a.content_hash):
            a.reason, a.detail = "exact_duplicate", f"same text as {dup_of}"
            continue
        similar = [(sim, stored_ids[j]) for i, j, sim in near_stored.get(n, ())]
        similar += [(sim, survivors[i].id) for i, _, sim in near_batch.get(n, ()) if i in kept]
        if similar:
            best, other = max(similar)
            a.reason, a.detail = "near_duplicate", f"~{best:.0%} similar to {other}"
            continue
        batch_hash[a.content_hash] = a.id
        kept.add(n)


def _similar_pairs(i: np.ndarray, j: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float,
                   chunk: int = 65_536) -> dict[int, list[tuple[int, int, float]]]:
    """Pairs (i, j) whose signatures left[i] and right[j] agree on at least `threshold` of their values, grouped by
    the later document: i for pairs against the store, j for pairs within a batch (i < j)."""
    found: dict[int, list[tuple[int, int, float]]] = {}
    within = left is right
    for start in range(0, len(i), chunk):  # bounded memory even when one band key is shared by thousands
        a, b = i[start : start + chunk].astype(np.int64), j[start : start + chunk].astype(np.int64)
        sims = (left[a] == right[b]).mean(axis=1)
        hit = sims >= threshold
        for x, y, sim in zip(a[hit].tolist(), b[hit].tolist(), sims[hit].tolist()):
            found.setdefault(y if within else x, []).append((x, y, sim))
    return found


# Documents per write transaction. A batch's documents are analysed and deduplicated together, then written in
# transactions of at most this many, each a session of its own: a reviewer (or any process) waiting for the file gets it
# between two of them, after ~0.1-0.3 s on a 2-core machine, instead of after a whole batch's write.
WRITE_CHUNK = 500


def _write_batch(store: Store, source: str, fresh: list[tuple[Record, Analysis]], stats: IngestStats) -> None:
    for start in range(0, len(fresh), WRITE_CHUNK):
        _write_chunk(store, source, fresh[start:start + WRITE_CHUNK], stats)


def _write_chunk(store: Store, source: str, fresh: list[tuple[Record, Analysis]], stats: IngestStats) -> None:
    import pyarrow as pa

    docs: dict[str, list] = {k: [] for k in docstore.DOCUMENT_COLUMNS}
    band_doc, band_key = [], []
    for rec, a in fresh:
        kept = a.reason is None
        values = [a.id, a.content_hash, a.text, a.declared, a.detected, a.confidence, a.lang, rec.url,
                  source, rec.line, rec.timestamp, "kept" if kept else "dropped", a.reason, a.detail,
                  a.mismatch, a.sig.tobytes() if kept else None, to_json(rec.meta) if rec.meta else None]
        for col, v in zip(docs, values):
            docs[col].append(v)
        if kept:
            stats.kept += 1
            band_doc.extend([a.id] * len(a.bands))
            band_key.extend(a.bands)
        else:
            stats.dropped[a.reason] += 1
    table = pa.table({**docs, "minhash": pa.array(docs["minhash"], type=pa.binary()),
                      "lang_mismatch": pa.array(docs["lang_mismatch"], type=pa.bool_())})
    bands = pa.table({"band_key": pa.array(band_key, type=pa.uint64()), "doc_id": pa.array(band_doc, type=pa.string())})

    store.write(lambda tx: docstore.add_documents(tx, table, bands))


def stats_table(store: Store) -> list[dict]:
    """Per-language counts of kept documents and of drops by reason."""
    return docstore.status_counts(store)
