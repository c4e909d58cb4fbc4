"""What ingest decides about one document, as pure functions: normalisation, hashes, filters, language, MinHash.

`analyse` runs all of it on a batch and touches no store, so ingest can run it in worker processes. Each text is
tokenised once (casefolded words, the letters-and-digits key) and every filter reads from those.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import regex

from . import langid
from .langs import LANGS

STORED_TEXT_CAP = 10_000

# ---------------------------------------------------------------------------------------------------------------------
# Normalisation and hashes
# ---------------------------------------------------------------------------------------------------------------------
_WS = re.compile(r"[\t\u00a0\u200b][ \t\u00a0\u200b]*| [ \t\u00a0\u200b]+")  # runs of spaces, tabs, nbsp, zwsp but a lone space
_LINE_EDGES = re.compile(r"[^\S\n]*\n[^\S\n]*")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, control characters removed, runs of spaces collapsed, lines trimmed; paragraph breaks kept."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _WS.sub(" ", _CTRL.sub("", text))
    if "\n" in text:
        text = _LINE_EDGES.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


_NON_ALNUM = regex.compile(r"[^\p{L}\p{M}\p{N}]+")
_NUMBER = regex.compile(r"\p{N}")
_WORD = re.compile(r"\w+")


def content_key(text: str) -> str:
    """Normalised form for exact dedup: casefolded letters, marks and digits only."""
    return _NON_ALNUM.sub("", text.casefold())


def sha(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def doc_id(text: str, url: str | None) -> str:
    """Documents are their cleaned text and url: the same pair ingested twice is stored once."""
    return sha(f"{text}\x00{url or ''}")


# ---------------------------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------------------------
# Substrings of casefolded text: counting literals is ~10x faster than one case-insensitive regex alternation.
_BOILER_PHRASES = ("cookie", "copyright", "all rights reserved", "privacy policy", "terms of use", "login", "log in",
                   "sign up", "signup", "subscribe", "newsletter", "©", "®")
_SEPARATORS = ("|", "»", "«", "·", "•", "›", "‹", "&gt;", " / ")


def boilerplate_reason(text: str) -> str | None:
    """Why a text looks like page furniture rather than prose, or None."""
    folded = text.casefold()
    return _boilerplate(text, folded, _letters(content_key(text)))


def _letters(key: str) -> int:
    return len(key) - len(_NUMBER.findall(key))


def _boilerplate(text: str, folded: str, letters: int) -> str | None:
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
    seps = sum(map(text.count, _SEPARATORS))
    if seps >= 6 and seps / max(1, len(text) / 100) >= 1.0:
        return f"{seps} navigation separators"
    hits = sum(map(folded.count, _BOILER_PHRASES))
    if hits >= 3:
        return f"{hits} boilerplate phrases (cookie, copyright, login...)"
    if letters / max(1, len(text)) < 0.5:
        return f"only {letters / max(1, len(text)):.0%} letters"
    return None


def script_mismatch(text: str, lang: str) -> str | None:
    """For non-Latin languages, too many letters outside the language's script means mixed text."""
    key = content_key(text)
    return _script_mismatch(key, _letters(key), lang)


def _script_mismatch(key: str, letters: int, lang: str) -> str | None:
    script = LANGS[lang].script
    if script == "LATIN" or not letters:
        return None
    inside = min(1.0, len(_outside_script(script).sub("", key)) / letters)
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
MIXED_ENGLISH_SHARE = 0.08


def english_share(text: str) -> float:
    """Share of words that are English function words: ~0.4 in English prose, ~0 in our languages."""
    return _english_share(_WORD.findall(text.casefold()))


def _english_share(words: list[str]) -> float:
    return sum(map(_ENGLISH_FUNCTION_WORDS.__contains__, words)) / max(1, len(words))


# ---------------------------------------------------------------------------------------------------------------------
# MinHash LSH
# ---------------------------------------------------------------------------------------------------------------------
NUM_PERM = 64
BANDS, ROWS = 16, 4


def shingles(text: str) -> list[str]:
    """Word bigrams of the lowercased text; character 5-grams for scripts written without spaces (Thai).

    Word bigrams are ~6x fewer than character 5-grams and still sensitive to small edits: changing 4 words of a
    130-word paragraph leaves a Jaccard similarity of ~0.88. Repeats are kept: MinHash of a list is that of its set.
    """
    return _shingles(_WORD.findall(text.casefold()), len(text))


def _shingles(words: list[str], n_chars: int) -> list[str]:
    if len(words) >= 0.08 * n_chars:  # spaced text: words average under ~12 characters
        if len(words) < 2:
            return [" ".join(words)]
        return list(map(" ".join, zip(words, words[1:])))
    key = " ".join(words)
    if len(key) <= 5:
        return [key]
    return [key[i : i + 5] for i in range(len(key) - 4)]


def minhash(text: str) -> np.ndarray:
    return _minhash(shingles(text))


def _minhash(items: list[str]) -> np.ndarray:
    """MinHash signature (rensa, a Rust MinHash) of a shingle list."""
    from rensa import RMinHash

    m = RMinHash(num_perm=NUM_PERM, seed=1)
    m.update(items)
    return np.asarray(m.digest(), dtype=np.uint64)


def band_keys(sig: np.ndarray) -> list[int]:
    """One 63-bit key per LSH band (16 bands x 4 rows: pairs above ~0.5 Jaccard collide in some band)."""
    raw = sig.tobytes()
    step = ROWS * 8
    blake = hashlib.blake2b
    return [int.from_bytes(blake(raw[b * step : (b + 1) * step] + bytes([b]), digest_size=8).digest(), "little") >> 1
            for b in range(BANDS)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


# ---------------------------------------------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """The settings `analyse` needs (a picklable subset of IngestConfig)."""

    min_chars: int
    max_chars: int
    min_lang_confidence: float


@dataclass
class Analysis:
    text: str  # cleaned (cut to STORED_TEXT_CAP when far too long)
    id: str
    content_hash: str
    declared: str | None
    detected: str | None
    confidence: float
    lang: str | None  # declared, else detected when it is one of ours
    mismatch: bool
    reason: str | None = None  # drop reason, None = kept so far (duplicates are decided against the store later)
    detail: str | None = None
    sig: np.ndarray | None = None  # MinHash signature of kept documents
    bands: list[int] | None = None


def analyse(items: list[tuple[str, str | None, str | None]], limits: Limits, parallel: bool = True) -> list[Analysis]:
    """Clean, hash, filter and language-identify (text, url, declared language) items; MinHash what survives.

    `parallel` lets language ID use every core; worker processes pass False (one process per core already).
    """
    cleaned = [clean_text(text) for text, _, _ in items]
    detections = langid.detect(cleaned, parallel=parallel)  # on everything: the store knows the language of drops too
    return [_analyse_one(text, url, declared, det, limits)
            for text, (_, url, declared), det in zip(cleaned, items, detections)]


def _analyse_one(text: str, url: str | None, declared: str | None, det: langid.Detection, limits: Limits) -> Analysis:
    folded = text.casefold()
    key = _NON_ALNUM.sub("", folded)
    lang = declared or (det.lang if det.lang in LANGS else None)
    a = Analysis(text, doc_id(text, url), sha(key), declared, det.lang, det.confidence, lang,
                 mismatch=bool(declared and not langid.agrees(declared, det.lang)))
    n = len(text)
    if n < limits.min_chars:
        a.reason, a.detail = "too_short", f"{n} characters < {limits.min_chars}"
        return a
    if n > limits.max_chars:
        a.reason, a.detail = "too_long", f"{n:,} characters > {limits.max_chars:,}"
        if n > STORED_TEXT_CAP:
            a.detail += f"; stored cut to {STORED_TEXT_CAP:,}"
            a.text = text[:STORED_TEXT_CAP]
        return a
    letters = _letters(key)
    words = _WORD.findall(folded)
    if why := _boilerplate(text, folded, letters):
        a.reason, a.detail = "boilerplate", why
    elif lang is None:
        a.reason, a.detail = "language", f"detected {det.lang or 'nothing'}, not one of {', '.join(LANGS)}"
    elif a.mismatch:
        a.reason, a.detail = "language", f"declared {declared}, detected {det.lang} ({det.confidence:.2f})"
    elif why := _script_mismatch(key, letters, lang):
        a.reason, a.detail = "language", why
    elif (share := _english_share(words)) >= MIXED_ENGLISH_SHARE:
        a.reason, a.detail = "language", f"mixed with English ({share:.0%} English function words)"
    elif det.confidence < limits.min_lang_confidence:
        a.reason, a.detail = "language", f"uncertain: {det.lang} at {det.confidence:.2f} (mixed or unclear text)"
    else:
        a.sig = _minhash(_shingles(words, n))
        a.bands = band_keys(a.sig)
    return a
