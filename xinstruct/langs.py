"""The ten languages of the method, with what the app and the filters need to know about them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Lang:
    code: str
    name: str
    script: str  # Unicode script name prefix as in unicodedata.name(), e.g. "BENGALI"
    rtl: bool = False


LANGS: dict[str, Lang] = {
    lang.code: lang
    for lang in [
        Lang("bn", "Bengali", "BENGALI"),
        Lang("fi", "Finnish", "LATIN"),
        Lang("hi", "Hindi", "DEVANAGARI"),
        Lang("id", "Indonesian", "LATIN"),
        Lang("sw", "Swahili", "LATIN"),
        Lang("ta", "Tamil", "TAMIL"),
        Lang("th", "Thai", "THAI"),
        Lang("tr", "Turkish", "LATIN"),
        Lang("ur", "Urdu", "ARABIC", rtl=True),
        Lang("vi", "Vietnamese", "LATIN"),
    ]
}
# Languages that language ID may report for text declared as one of ours without it being wrong.
COMPATIBLE = {"id": {"ms"}, "hi": {"mr"}, "ur": {"fa", "pa"}}


def check_lang(code: str | None, *, path: str | None = None, line: int | None = None) -> str:
    if code is None or code.lower() not in LANGS:
        raise InputError(
            f"unknown language code {code!r}",
            path=path,
            line=line,
            hint=f"use one of {', '.join(LANGS)}",
        )
    return code.lower()


_RTL_SCRIPTS = ("ARABIC", "HEBREW", "SYRIAC", "THAANA", "NKO")


def dominant_script(text: str, sample: int = 400) -> str | None:
    """The Unicode script of most letters in the first `sample` letters, e.g. 'ARABIC', 'LATIN'."""
    counts: dict[str, int] = {}
    seen = 0
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        script = name.split(" ", 1)[0] if name else ""
        counts[script] = counts.get(script, 0) + 1
        seen += 1
        if seen >= sample:
            break
    return max(counts, key=counts.get) if counts else None


def text_direction(text: str) -> str:
    """'rtl' when most letters are in a right-to-left script, else 'ltr'. Decided per field, not per language."""
    return "rtl" if dominant_script(text) in _RTL_SCRIPTS else "ltr"
