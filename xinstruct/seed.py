"""Seed pairs (English instruction, native response): the packaged set and user files in the same shape.

A seed file is JSON Lines, one pair per line: `{"id", "lang", "instruction", "response", "verb"}`; `id` and `verb` are
optional. Rows in the shape of ../shared/data/seed (`instruction_en` + `pair_type`) are accepted too: cross-lingual
rows are used, other pair types (no English instruction) are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .langs import LANGS, check_lang

SEED_DIR = Path(__file__).resolve().parent / "data" / "seed"


@dataclass(frozen=True)
class SeedPair:
    id: str
    lang: str
    instruction: str  # English
    response: str  # native text
    verb: str | None = None


def packaged_files(lang: str | None = None) -> list[Path]:
    """The packaged seed files (xinstruct/data/seed/<lang>.jsonl) that exist, for one language or all."""
    langs = [check_lang(lang)] if lang else list(LANGS)
    return [p for p in (SEED_DIR / f"{code}.jsonl" for code in langs) if p.exists()]


def load_seed(lang: str | None = None, files: Sequence[str | Path] | None = None) -> list[SeedPair]:
    """Pairs from `files` (or the packaged set), keeping only `lang` when given. Bad rows raise InputError (file:line)."""
    lang = check_lang(lang) if lang else None
    paths = [Path(f) for f in files] if files else packaged_files(lang)
    pairs = [pair for path in paths for pair in read_seed_file(path)]
    return [p for p in pairs if lang is None or p.lang == lang]


def read_seed_file(path: str | Path) -> list[SeedPair]:
    path = Path(path)
    if not path.is_file():
        raise InputError("seed file not found", path=str(path), hint="pass a .jsonl file of instruction/response pairs")
    pairs = []
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                pair = parse_seed_row(line, path, line_no)
                if pair is not None:
                    pairs.append(pair)
    return pairs


def parse_seed_row(line: str, path: Path, line_no: int) -> SeedPair | None:
    """One seed row, or None for a row that is valid but not cross-lingual (skipped)."""
    where = {"path": str(path), "line": line_no}
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", **where, hint="one JSON object per line") from exc
    if not isinstance(row, dict):
        raise InputError("a seed row must be a JSON object", **where)
    if row.get("pair_type", "cross-lingual") != "cross-lingual":
        return None
    instruction = row.get("instruction", row.get("instruction_en"))
    response = row.get("response")
    for field, value in (("instruction", instruction), ("response", response)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"missing or empty {field!r}", **where,
                             hint="each row needs lang, instruction (English) and response (native text)")
    lang = check_lang(row.get("lang"), path=str(path), line=line_no)
    return SeedPair(id=str(row.get("id") or f"{path.stem}:{line_no}"), lang=lang, instruction=instruction.strip(),
                    response=response.strip(), verb=row.get("verb"))


def split_heldout(pairs: Iterable[SeedPair], every: int = 5) -> tuple[list[SeedPair], list[SeedPair]]:
    """Deterministic split: per language, in file order, every `every`-th pair is held out. every=0 holds out nothing."""
    train, held = [], []
    seen: dict[str, int] = defaultdict(int)
    for pair in pairs:
        seen[pair.lang] += 1
        (held if every and seen[pair.lang] % every == 0 else train).append(pair)
    return train, held


def data_hash(pairs: Iterable[SeedPair]) -> str:
    """Content hash of a set of pairs (order-independent): recorded with every model trained on them."""
    h = hashlib.sha256()
    for key in sorted(f"{p.lang}\t{p.instruction}\t{p.response}" for p in pairs):
        h.update(key.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]
