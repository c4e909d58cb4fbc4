"""HTML for the review app: every text is escaped, every field gets its own direction (decided from its own letters).

The one rendering path for stored text (instructions, responses, notes, reasons, cluster labels, user and model names,
URLs, paths): it reaches the browser either as escaped HTML (`field_html`, `caption_html`, shown with `st.html`), or,
where Streamlit only takes Markdown (alert messages, radio options, tooltips), through `md_escape`, which makes every
Markdown character literal. Never put stored text into `st.markdown`, `st.caption` or `st.write` directly: Streamlit
renders Markdown there (images load from any host, links, `:red[...]`). The only Markdown rendered from the store is the
curators' guidelines (and the export's dataset card), through `markdown_html`: links only to http(s)/mailto, no images,
no raw HTML.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit

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


def suggestion_html(label: str | None, score: float | None, agreement_text: str | None = None, *,
                    reason: str | None = None) -> str:
    """The evaluator's label and score as a neutral suggestion (never coloured as a verdict). `agreement_text` says how
    far the evaluator agrees with reviewers of this language (filled in by the evaluator's owner); without it the
    suggestion says that it is unmeasured. `reason` is the evaluator's own explanation, when it gave one."""
    if label is None and score is None and not reason:
        return '<div class="xi-suggest">Suggestion: none for this item.</div>'
    what = html.escape(label or "no label") + ("" if score is None else f" · score {float(score):.2f}")
    note = agreement_text or "Agreement with reviewers not measured yet: decide from the texts."
    why = f'<div class="xi-suggest-why" dir="{text_direction(reason)}">{html.escape(reason)}</div>' if reason else ""
    return (f'<div class="xi-suggest"><span class="xi-suggest-title">Suggestion</span> (evaluator): {what}'
            f'<div class="xi-suggest-note">{html.escape(note)}</div>{why}</div>')


def safe_url(url: str | None) -> str | None:
    """`url` if it is an http(s) URL with a host (safe to put in an href), else None."""
    if not url:
        return None
    url = str(url).strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ord(ch) < 32 for ch in url):
        return None
    return url


def url_html(url: str | None) -> str:
    """The source URL: a link (new tab, no referrer, no opener) for http(s) URLs, plain escaped text otherwise."""
    if not url:
        return '<div class="xi-url">no source url</div>'
    safe = safe_url(url)
    text = html.escape(str(url))
    if safe is None:
        return f'<div class="xi-url">{text} <span class="xi-muted">(not a web link)</span></div>'
    return f'<div class="xi-url"><a href="{_attr(safe)}" target="_blank" rel="noopener noreferrer">{text}</a></div>'


def review_pair_html(item: dict) -> str:
    """The pair under review: the English instruction, then the native response (long texts scroll in their own box).
    The wrapper carries the candidate id (data-xi-item): the key listener ties a key to the item on screen."""
    return (f'<div class="xi-pair" data-xi-item="{_attr(item["id"])}">'
            + field_html(item.get("instruction"), "en", css_class="xi-field xi-instruction",
                         label="Instruction (English)")
            + field_html(item.get("response"), item.get("lang"), css_class="xi-field xi-response",
                         label=f"Response · {lang_name(item.get('lang'))}")
            + "</div>")


def source_html(item: dict, *, show_text: bool = False) -> str:
    """The source panel: where the text comes from (source name, line, a safe link) and the original web text when it
    differs from the response (responses may have been cleaned), or always with `show_text`."""
    where = str(item.get("source") or "unknown source")
    if item.get("source_line") is not None:
        where += f", line {item['source_line']}"
    text, response = item.get("text") or "", item.get("response") or ""
    parts = [f'<div class="xi-source-panel"><div class="xi-label">Source</div>'
             f'<div class="xi-source-name">{html.escape(where)}</div>', url_html(item.get("url"))]
    if text != response:
        parts.append(field_html(text, item.get("doc_lang") or item.get("lang"), css_class="xi-field xi-source",
                                label="Original web text (differs from the response)"))
    elif show_text:
        parts.append(field_html(text, item.get("doc_lang") or item.get("lang"), css_class="xi-field xi-source",
                                label="Original web text (identical to the response)"))
    else:
        parts.append('<div class="xi-muted">The response is the original web text, unchanged.</div>')
    return "".join(parts) + "</div>"


def caption_html(*parts: str | tuple[str, str]) -> str:
    """A small grey line of text: each part is a str (escaped) or ("b", text) for a bold part (escaped too)."""
    out = []
    for part in parts:
        if isinstance(part, tuple):
            out.append(f"<b>{html.escape(str(part[1]))}</b>")
        else:
            out.append(html.escape(str(part)))
    text = "".join(out)
    return f'<div class="xi-caption" dir="{text_direction(html.unescape(text))}">{text}</div>'


def caption(*parts: str | tuple[str, str]) -> None:
    """Show `caption_html(*parts)` (the safe replacement for st.caption with stored text in it)."""
    import streamlit as st

    st.html(caption_html(*parts))


_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character (CommonMark: all are escapable)


_AUTOLINK = re.compile(r"(?i)(?<![a-z0-9])(https?|ftp|mailto|xmpp|www)(?=[:.])|(?=@)")
WORD_JOINER = "\u2060"  # invisible, zero width: keeps "http" and "://" apart for GFM's autolink literals


def md_escape(text: object) -> str:
    """`text` for a place where Streamlit renders Markdown (st.error/st.success/st.info, radio options, help): every
    ASCII punctuation character backslash-escaped, so no link, image, emphasis, heading, HTML tag or `:color[...]`
    directive can form, and an invisible word joiner after `http`/`https`/`www`/... and before `@`, because GFM's
    autolink literals (https://x, www.x, a@b.c) ignore backslash escapes. The reader sees the text as it was."""
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, "" if text is None else str(text))
    return _MD_SPECIAL.sub(r"\\\1", text)


SAFE_LINK_SCHEMES = ("http", "https", "mailto")


def _safe_link(url: str) -> bool:
    url = url.strip()
    if url.startswith("#"):
        return True
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme in SAFE_LINK_SCHEMES


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
    md.validateLink = _safe_link  # [x](javascript:...), data:, vbscript:, file: stay plain text

    def image(renderer, tokens, idx, options, env):  # no image is ever loaded: show its alt text
        return html.escape(tokens[idx].content or "")

    def link_open(renderer, tokens, idx, options, env):
        token = tokens[idx]
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    return md


def markdown_html(text: str | None) -> str:
    """Curator-written Markdown (guidelines, the dataset card) as HTML: headings, lists, emphasis, tables, code and
    links to http(s)/mailto; raw HTML shows as text, unsafe link schemes stay text, images are replaced by their alt
    text (nothing is fetched from another host)."""
    body = _markdown().render("" if text is None else str(text))
    return f'<div class="xi-markdown">{body}</div>'


def lang_name(code: str | None) -> str:
    lang = LANGS.get(code or "")
    return f"{lang.name} ({code})" if lang else (code or "unknown")


def language_filter(key: str) -> list[str] | None:
    """The curator pages' language multiselect: the chosen codes, or None for all languages."""
    import streamlit as st

    chosen = st.multiselect("Languages", list(LANGS), format_func=lang_name, key=key, placeholder="All languages")
    return chosen or None


KEYS_STARTING = "Keyboard shortcuts are starting… use the buttons until they are on."
KEYS_ON = "Keyboard shortcuts on."


def keys_cue_html() -> str:
    """The Review page's keyboard status (fixed text, no stored text): "starting" until the key listener
    (assets/review_keys.js) has mounted and holds the page's data, then "on". The listener marks the document
    (<html data-xi-keys="ready">) and review.css shows the line that fits; until then the shortcut badges are dimmed."""
    return ('<div class="xi-keys-cue" role="status" aria-live="polite">'
            f'<span class="xi-keys-starting">{html.escape(KEYS_STARTING)}</span>'
            f'<span class="xi-keys-on">{html.escape(KEYS_ON)}</span></div>')


@lru_cache(maxsize=1)
def page_css() -> str:
    """The app's CSS (font stack with Bengali, Tamil, Thai, Urdu glyphs; one column below 640 px)."""
    return resources.files("xinstruct").joinpath("assets/review.css").read_text(encoding="utf-8")


def style_tag() -> str:
    return f"<style>{page_css()}</style>"
