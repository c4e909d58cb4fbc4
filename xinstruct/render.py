"""HTML for the review app: every text is escaped, every field gets its own direction (decided from its own letters)."""

from __future__ import annotations

import html
from functools import lru_cache
from importlib import resources

from .langs import LANGS, text_direction


def _attr(value: str) -> str:
    return html.escape(str(value), quote=True)


def field_html(text: str | None, lang: str | None = None, *, css_class: str = "xi-field", label: str | None = None) -> str:
    """One text field as HTML: `text` escaped (a <script> shows as text), dir="rtl"/"ltr" from langs.text_direction of
    this very text, a lang attribute ('und' when unknown) and a CSS class. An optional label goes above it."""
    text = "" if text is None else str(text)
    direction = text_direction(text)
    lang = lang or "und"
    body = f'<div class="{_attr(css_class)}" dir="{direction}" lang="{_attr(lang)}">{html.escape(text)}</div>'
    if label:
        body = f'<div class="xi-label">{html.escape(label)}</div>' + body
    return body


def diff_html(ops: list[tuple[str, str]] | list[list[str]], lang: str | None = None) -> str:
    """A word diff (review.word_diff) as HTML with <del>/<ins>, escaped, direction from the new text."""
    new_text = "".join(t for op, t in ops if op != "delete")
    parts = []
    for op, text in ops:
        esc = html.escape(text)
        parts.append(f"<del>{esc}</del>" if op == "delete" else f"<ins>{esc}</ins>" if op == "insert" else esc)
    return (f'<div class="xi-field xi-diff" dir="{text_direction(new_text)}" lang="{_attr(lang or "und")}">'
            + "".join(parts) + "</div>")


def suggestion_html(label: str | None, score: float | None, reason: str | None) -> str:
    """The evaluator's label, score and reason, shown as a suggestion."""
    if label is None and score is None and not reason:
        return '<div class="xi-suggest">No evaluator suggestion for this item.</div>'
    lab = html.escape(label or "unlabelled")
    sc = "" if score is None else f" · score {float(score):.2f}"
    why = f'<div dir="{text_direction(reason)}">{html.escape(reason)}</div>' if reason else ""
    return (f'<div class="xi-suggest">Evaluator suggests <b class="{_attr(label or "")}">{lab}</b>{sc}'
            f"{why}</div>")


def url_html(url: str | None) -> str:
    if not url:
        return '<div class="xi-url">no source url</div>'
    safe = url if url.lower().startswith(("http://", "https://")) else None
    text = html.escape(url)
    if safe is None:
        return f'<div class="xi-url">{text}</div>'
    return f'<div class="xi-url"><a href="{_attr(safe)}" target="_blank" rel="noopener noreferrer">{text}</a></div>'


def lang_name(code: str | None) -> str:
    lang = LANGS.get(code or "")
    return f"{lang.name} ({code})" if lang else (code or "unknown")


def language_filter(key: str) -> list[str] | None:
    """The curator pages' language multiselect: the chosen codes, or None for all languages."""
    import streamlit as st

    chosen = st.multiselect("Languages", list(LANGS), format_func=lang_name, key=key, placeholder="All languages")
    return chosen or None


@lru_cache(maxsize=1)
def page_css() -> str:
    """The app's CSS (font stack with Bengali, Tamil, Thai, Urdu glyphs; one column below 640 px)."""
    return resources.files("xinstruct").joinpath("assets/review.css").read_text(encoding="utf-8")


def style_tag() -> str:
    return f"<style>{page_css()}</style>"
