"""Ingest native web text: read files, identify language, filter, deduplicate, store every document with its fate.

Bad input, decided per case (the README has the table):
* refuse the whole file before anything is written: missing/unreadable file, binary content, unknown format,
  an unknown `--lang` code, a CSV/Parquet without the text column;
* skip the line and report it (file, line, what, what to do), keep going: malformed JSON, invalid UTF-8, a record without
  text, a non-string text, an unknown language code in a record;
* accept silently: a UTF-8 BOM (stripped), an empty file (reported as 0 documents);
* store as dropped: a document outside the length window (a huge one is stored cut to 10,000 characters, with its size).
Each batch of documents is written in one transaction: a crash loses at most the batch in flight, and a rerun skips
what is stored (document ids are content hashes).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import sys
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import regex

from . import langid
from .errors import InputError
from .langs import LANGS, check_lang
from .store import Store, Tx, to_json

STORED_TEXT_CAP = 10_000
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class IngestConfig:
    """Settings of the ingest stage."""

    lang: str | None = None  # declared language for every record (else the record's `lang` field, else detected)
    text_field: str = "text"  # field holding the document text
    url_field: str = "url"  # field holding the source url
    timestamp_field: str = "timestamp"  # field holding the crawl time
    lang_field: str = "lang"  # field holding a declared language code
    min_chars: int = 300  # shorter documents are dropped (too_short)
    max_chars: int = 3000  # longer documents are dropped (too_long)
    near_dup_threshold: float = 0.8  # estimated Jaccard of shingle sets (word bigrams; Thai: character 5-grams) above which a document is a near duplicate
    min_lang_confidence: float = 0.5  # below this the language is 'uncertain' (mixed or unclear text) and dropped
    batch_size: int = 2000  # documents per transaction
    progress: bool = True  # show a progress bar


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
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                issues.append(Issue(str(path), line_no, f"malformed JSON ({msg}), line skipped",
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
# Normalisation, filters and MinHash (pure functions)
# ---------------------------------------------------------------------------------------------------------------------
_WS = re.compile(r"[ \t\u00a0\u200b]+")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """NFC, control characters removed, runs of spaces collapsed, lines trimmed; paragraph breaks kept."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CTRL.sub("", text)
    lines = [_WS.sub(" ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def content_key(text: str) -> str:
    """Normalised form for exact dedup: lowercase, letters and digits only."""
    return _NON_ALNUM.sub("", text.casefold())


def sha(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


_BOILER_WORDS = re.compile(
    r"cookie|copyright|all rights reserved|privacy policy|terms of use|log ?in|sign ?up|subscribe|newsletter|©|®",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[|»«·•›‹]|&gt;|\s/\s")


def boilerplate_reason(text: str) -> str | None:
    """Why a text looks like page furniture rather than prose, or None."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) >= 4:
        short_lines = [ln for ln in lines if len(ln) < 40]
        short = len(short_lines) / len(lines)
        short_chars = sum(map(len, short_lines)) / max(1, sum(map(len, lines)))
        if short >= 0.6 and short_chars >= 0.4:
            return f"{short:.0%} of its {len(lines)} lines are short (menu or link list)"
        dup = 1 - len(set(lines)) / len(lines)
        if dup >= 0.3:
            return f"{dup:.0%} of lines repeated"
    seps = len(_SEPARATORS.findall(text))
    if seps >= 6 and seps / max(1, len(text) / 100) >= 1.0:
        return f"{seps} navigation separators"
    hits = len(_BOILER_WORDS.findall(text))
    if hits >= 3:
        return f"{hits} boilerplate phrases (cookie, copyright, login...)"
    letters = len(_NON_LETTER.sub("", text))
    if letters / max(1, len(text)) < 0.5:
        return f"only {letters / max(1, len(text)):.0%} letters"
    return None


_NON_LETTER = regex.compile(r"[^\p{L}\p{M}]+")  # letters and combining marks are kept (Indic vowel signs are marks)
_NON_ALNUM = regex.compile(r"[^\p{L}\p{M}\p{N}]+")
_WORD = re.compile(r"\w+")


def script_mismatch(text: str, lang: str) -> str | None:
    """For non-Latin languages, too many letters outside the language's script means mixed text."""
    script = LANGS[lang].script
    if script == "LATIN":
        return None
    letters = len(_NON_LETTER.sub("", text))
    if not letters:
        return None
    inside = len(_outside_script(script).sub("", text)) / letters
    if inside < 0.6:
        return f"only {inside:.0%} of letters in {script.title()} script (mixed-language text)"
    return None


@lru_cache(maxsize=None)
def _outside_script(script: str):
    return regex.compile(rf"[^\p{{Script={script.title()}}}]+")


# Common English function words that are not also words of our Latin-script languages ("in", "on", "to", "as" are).
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the and of is that for with was are this from have has which were would their they there been will about into "
    "these those what when more also its our you your but not can".split()
)


def english_share(text: str) -> float:
    """Share of words that are English function words: ~0.4 in English prose, ~0 in our languages."""
    words = re.findall(r"[a-z']+", text.lower())
    return sum(w in _ENGLISH_FUNCTION_WORDS for w in words) / max(1, len(_WORD.findall(text)))


MIXED_ENGLISH_SHARE = 0.08


NUM_PERM = 64
BANDS, ROWS = 16, 4


def shingles(text: str) -> set[str]:
    """Word bigrams of the lowercased text; character 5-grams for scripts written without spaces (Thai).

    Word bigrams are ~6x fewer than character 5-grams and still sensitive to small edits: changing 4 words of a
    130-word paragraph leaves a Jaccard similarity of ~0.88.
    """
    words = _WORD.findall(text.casefold())
    if len(words) >= 0.08 * len(text):  # spaced text: words average under ~12 characters
        if len(words) < 2:
            return {" ".join(words)}
        return {f"{a} {b}" for a, b in zip(words, words[1:])}
    key = " ".join(words)
    if len(key) <= 5:
        return {key}
    return {key[i : i + 5] for i in range(len(key) - 4)}


def minhash(text: str) -> np.ndarray:
    """MinHash signature (rensa, a Rust MinHash) of the text's shingle set."""
    from rensa import RMinHash

    m = RMinHash(num_perm=NUM_PERM, seed=1)
    m.update(list(shingles(text)))
    return np.asarray(m.digest(), dtype=np.uint64)


def band_keys(sig: np.ndarray) -> list[int]:
    """One 63-bit key per LSH band (16 bands x 4 rows: pairs above ~0.5 Jaccard collide in some band)."""
    keys = []
    for b in range(BANDS):
        digest = hashlib.blake2b(sig[b * ROWS : (b + 1) * ROWS].tobytes() + bytes([b]), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little") >> 1)
    return keys


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


# ---------------------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------------------
def ingest(store: Store, paths: Iterable[str | Path], cfg: IngestConfig | None = None) -> IngestStats:
    cfg = cfg or IngestConfig()
    if cfg.lang is not None:
        cfg.lang = check_lang(cfg.lang)
    stats = IngestStats()
    files = [Path(p) for p in paths]
    for path in files:  # refuse what cannot work before anything is written
        if not path.is_file():
            raise InputError("no such file", path=str(path), hint="check the path")
        detect_format(path)
    for path in files:
        stats.files += 1
        _ingest_file(store, path, cfg, stats)
    return stats


def _ingest_file(store: Store, path: Path, cfg: IngestConfig, stats: IngestStats) -> None:
    from tqdm import tqdm

    issues: list[Issue] = []
    bar = tqdm(desc=f"ingest {path.name}", unit=" docs", disable=not cfg.progress, leave=False)
    batch: list[Record] = []
    try:
        for rec in read_records(path, cfg, issues):
            batch.append(rec)
            if len(batch) >= cfg.batch_size:
                _process_batch(store, path, batch, cfg, stats)
                bar.update(len(batch))
                batch = []
        if batch:
            _process_batch(store, path, batch, cfg, stats)
            bar.update(len(batch))
    finally:
        bar.close()
        stats.issues.extend(issues)
        stats.skipped_lines += len(issues)


def _doc_id(text: str, url: str | None) -> str:
    return sha(f"{text}\x00{url or ''}")


def _process_batch(store: Store, path: Path, batch: list[Record], cfg: IngestConfig, stats: IngestStats) -> None:
    stats.read += len(batch)
    source = path.name
    rows = []
    for rec in batch:
        text = clean_text(rec.text)
        rows.append({"rec": rec, "text": text, "id": _doc_id(text, rec.url), "hash": sha(content_key(text))})
    # what is already stored (a rerun, or the same document twice) is skipped
    with store.session() as tx:
        ids = list({r["id"] for r in rows})
        have = {r[0] for r in tx.all("SELECT id FROM documents WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])}
    fresh, seen = [], set()
    for r in rows:
        if r["id"] in have or r["id"] in seen:
            stats.already_stored += 1
            continue
        seen.add(r["id"])
        fresh.append(r)
    if not fresh:
        return
    # length and boilerplate first: cheap, and they decide most drops
    for r in fresh:
        n = len(r["text"])
        r["reason"] = r["detail"] = None
        if n < cfg.min_chars:
            r["reason"], r["detail"] = "too_short", f"{n} characters < {cfg.min_chars}"
        elif n > cfg.max_chars:
            r["reason"], r["detail"] = "too_long", f"{n:,} characters > {cfg.max_chars:,}"
            if n > STORED_TEXT_CAP:
                r["detail"] += f"; stored cut to {STORED_TEXT_CAP:,}"
                r["text"] = r["text"][:STORED_TEXT_CAP]
        else:
            why = boilerplate_reason(r["text"])
            if why:
                r["reason"], r["detail"] = "boilerplate", why
    # language ID on everything (so the store knows the language of dropped text too)
    detections = langid.detect([r["text"] for r in fresh])
    for r, det in zip(fresh, detections):
        declared = cfg.lang or r["rec"].lang
        r["declared"], r["detected"], r["confidence"] = declared, det.lang, det.confidence
        r["lang"] = declared or (det.lang if det.lang in LANGS else None)
        r["mismatch"] = bool(declared and not langid.agrees(declared, det.lang))
        if r["reason"]:
            continue
        if r["lang"] is None:
            r["reason"], r["detail"] = "language", f"detected {det.lang or 'nothing'}, not one of {', '.join(LANGS)}"
        elif r["mismatch"]:
            r["reason"], r["detail"] = "language", f"declared {declared}, detected {det.lang} ({det.confidence:.2f})"
        elif (why := script_mismatch(r["text"], r["lang"])):
            r["reason"], r["detail"] = "language", why
        elif (share := english_share(r["text"])) >= MIXED_ENGLISH_SHARE:
            r["reason"], r["detail"] = "language", f"mixed with English ({share:.0%} English function words)"
        elif det.confidence < cfg.min_lang_confidence:
            r["reason"], r["detail"] = "language", f"uncertain: {det.lang} at {det.confidence:.2f} (mixed or unclear text)"
    # exact and near duplicates, against the store and within the batch
    survivors = [r for r in fresh if not r["reason"]]
    for r in survivors:
        r["sig"] = minhash(r["text"])
        r["bands"] = band_keys(r["sig"])
    with store.session() as tx:
        hashes = list({r["hash"] for r in survivors})
        stored_hash = dict(tx.all(
            "SELECT content_hash, min(id) FROM documents WHERE status = 'kept' AND content_hash IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY content_hash", [hashes])) if hashes else {}
        keys = list({k for r in survivors for k in r["bands"]})
        stored_bands: dict[int, list[tuple[str, bytes]]] = {}
        if keys:
            for key, doc_id, sig in tx.all(
                "SELECT b.band_key, b.doc_id, d.minhash FROM doc_bands b JOIN documents d ON d.id = b.doc_id "
                "WHERE b.band_key IN (SELECT unnest(?::UBIGINT[]))", [keys]):
                stored_bands.setdefault(key, []).append((doc_id, sig))
    batch_hash: dict[str, str] = {}
    batch_bands: dict[int, list[tuple[str, np.ndarray]]] = {}
    for r in survivors:
        dup_of = stored_hash.get(r["hash"]) or batch_hash.get(r["hash"])
        if dup_of:
            r["reason"], r["detail"] = "exact_duplicate", f"same text as {dup_of}"
            continue
        best = (0.0, None)
        for key in r["bands"]:
            for other_id, other in stored_bands.get(key, []):
                other_sig = np.frombuffer(other, dtype=np.uint64) if isinstance(other, (bytes, bytearray)) else other
                best = max(best, (jaccard(r["sig"], other_sig), other_id), key=lambda t: t[0])
            for other_id, other_sig in batch_bands.get(key, []):
                best = max(best, (jaccard(r["sig"], other_sig), other_id), key=lambda t: t[0])
        if best[0] >= cfg.near_dup_threshold:
            r["reason"], r["detail"] = "near_duplicate", f"~{best[0]:.0%} similar to {best[1]}"
            continue
        batch_hash[r["hash"]] = r["id"]
        for key in r["bands"]:
            batch_bands.setdefault(key, []).append((r["id"], r["sig"]))
    _write_batch(store, source, fresh, stats)


def _write_batch(store: Store, source: str, fresh: list[dict], stats: IngestStats) -> None:
    import pyarrow as pa

    docs = {k: [] for k in ["id", "content_hash", "text", "lang_declared", "lang_detected", "lang_confidence", "lang",
                            "url", "source", "source_line", "timestamp", "status", "drop_reason", "drop_detail",
                            "lang_mismatch", "minhash", "meta"]}
    band_doc, band_key = [], []
    for r in fresh:
        rec: Record = r["rec"]
        kept = r["reason"] is None
        values = [r["id"], r["hash"], r["text"], r["declared"], r["detected"], r["confidence"], r["lang"], rec.url,
                  source, rec.line, rec.timestamp, "kept" if kept else "dropped", r["reason"], r["detail"],
                  r["mismatch"], r["sig"].tobytes() if kept else None, to_json(rec.meta) if rec.meta else None]
        for col, v in zip(docs, values):
            docs[col].append(v)
        if kept:
            stats.kept += 1
            band_doc.extend([r["id"]] * len(r["bands"]))
            band_key.extend(r["bands"])
        else:
            stats.dropped[r["reason"]] += 1
    table = pa.table({**docs, "minhash": pa.array(docs["minhash"], type=pa.binary()),
                      "lang_mismatch": pa.array(docs["lang_mismatch"], type=pa.bool_())})
    bands = pa.table({"band_key": pa.array(band_key, type=pa.uint64()), "doc_id": pa.array(band_doc, type=pa.string())})

    def write(tx: Tx) -> None:
        tx.insert_arrow("documents", table, list(docs), skip_existing=True)
        if len(bands):
            tx.insert_arrow("doc_bands", bands, ["band_key", "doc_id"])

    store.write(write)


def stats_table(store: Store) -> list[dict]:
    """Per-language counts of kept documents and of drops by reason."""
    with store.session() as tx:
        return tx.dicts(
            "SELECT coalesce(lang, lang_detected, '?') AS lang, status, coalesce(drop_reason, '') AS reason, "
            "count(*) AS n FROM documents GROUP BY ALL ORDER BY lang, status DESC, reason"
        )
