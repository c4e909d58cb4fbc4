"""Cheap automatic measures of a set of answers (one model, one language), reported beside the judge's verdicts.

One definition each, here and nowhere else:

* `n` — answers in the set;
* `in_language` — share of the **non-empty** answers whose language, by the project's language ID (`langid.detect` on
  the first 300 characters, `langid.agrees` for close neighbours such as id ~ ms), is the requested language; None when
  every answer is empty. An answer in English (or any other language) where Swahili was asked counts against it;
* `empty` — share of answers with nothing but whitespace;
* `truncated` — share of answers whose generation stopped at the token limit (finish_reason 'length');
* `repetition` — mean over non-empty answers of the share of repeated word trigrams: 1 - distinct / total trigrams of
  the answer's whitespace-separated, lower-cased words (0 for answers under 3 words). Degenerate loops ("1. 1. 1. ...")
  score near 1, ordinary prose near 0. Thai is written without spaces between words, so its "words" are phrases and its
  values read lower than for the other languages;
* `mean_chars` — mean answer length in characters (empty answers included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

NGRAM = 3
MEASURES = ("n", "in_language", "empty", "truncated", "repetition", "mean_chars")


def repetition(text: str, n: int = NGRAM) -> float:
    """Share of the word n-grams of `text` that repeat an earlier one (see the module doc)."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _detected(texts: list[str]) -> list[str | None]:
    from . import langid

    return [d.lang for d in langid.detect(texts, parallel=False)]


def measure(texts: Sequence[str], lang: str, finish_reasons: Sequence[str | None] | None = None, *,
            detect: Callable[[list[str]], list[str | None]] | None = None) -> dict:
    """The measures of one answer set (see the module doc). `detect` maps texts to language codes (default: the
    project's language ID)."""
    from .langid import agrees

    texts = list(texts)
    n = len(texts)
    out: dict = {"n": n, "in_language": None, "empty": None, "truncated": None, "repetition": None, "mean_chars": None}
    if not n:
        return out
    filled = [t for t in texts if t.strip()]
    if filled:
        langs = (detect or _detected)(filled)
        out["in_language"] = sum(agrees(lang, got) for got in langs) / len(filled)
        out["repetition"] = sum(repetition(t) for t in filled) / len(filled)
    out["empty"] = (n - len(filled)) / n
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * n
    out["truncated"] = sum(r == "length" for r in reasons) / n
    out["mean_chars"] = sum(len(t) for t in texts) / n
    return out


def measure_answers(answers, lang: str, *, detect=None) -> dict:
    """`measure` over stored answers (store/evals.py `Answer` records) of one language."""
    answers = [a for a in answers if a.lang == lang]
    return measure([a.answer for a in answers], lang, [a.finish_reason for a in answers], detect=detect)
