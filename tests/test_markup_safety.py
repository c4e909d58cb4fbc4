"""No stored text is interpreted as markup, on any page, for any role.

Every text column the app shows (document text and URL, instruction, response, evaluator reason, cluster label,
decision notes and reasons, user names, model names, the guidelines) is seeded with hostile payloads: a Markdown image
and link to an outside host, a bare URL, `:red[...]`, `<script>`, `<img onerror>`. Then every page is run through the
real router (app.py) as a reviewer, a curator and an admin, and everything the run sent to the browser is checked:

* wherever Streamlit renders Markdown (markdown, captions, alerts, widget labels, radio options, tooltips), the payload
  may only appear escaped: the outside host's name never appears unescaped, nor `:red[`, `<script`, `<img`;
* in HTML (st.html), no <script>, <img>, <iframe>, <svg>, no on* attribute, and no link except the source URL
  (http/https, stored on purpose) and the http(s) links curators write in the guidelines (Markdown by design: unsafe
  schemes and images are removed, tests below).

A positive control checks that the hostile text did reach the pages (escaped), so the checks above look at data.
The real browser (tests/test_browser_safety.py) checks that no request leaves for an outside host.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from conftest import add_candidates, session_token
from test_app_errors import router_runs  # noqa: F401  (fixture: every run goes through app.py, as on the server)
from xinstruct import auth, render, review
from xinstruct.auth import User

ROOT = Path(__file__).resolve().parents[1]
EVIL = "evil.example"
PAYLOAD = (f"![pic](http://{EVIL}/img.png) [click here](http://{EVIL}/link) :red[URGENT] www.{EVIL} "
           f"https://{EVIL}/bare <script>window.__xss=1</script> <img src=x onerror=\"window.__xss=2\"> "
           f"<a href=\"http://{EVIL}/raw\">raw</a>")
SOURCE_URL = "https://news.example/article?id=1"  # a real source link is shown on purpose (http/https only)
SAFE_GUIDE_LINK = "https://docs.example/guide"
GUIDELINES = (f"# Guidelines\n\nRead [the guide]({SAFE_GUIDE_LINK}). {PAYLOAD}\n\n[js](javascript:alert(1)) "
              f"[data](data:text/html,<script>alert(1)</script>) [vb](vbscript:msgbox(1)) <javascript:alert(1)>\n\n"
              f"![tracker](https://{EVIL}/pixel.gif)\n\n[ref image][r]\n\n[r]: http://{EVIL}/ref.png")
# user names: no spaces, at most 64 characters (auth.add_user)
REVIEWER_1 = f"![u](http://{EVIL}/u.png)"
REVIEWER_2 = f"[juha](http://{EVIL}/n):red[X]"
CURATOR = f"<img/src=x/onerror=alert(1)>cora@{EVIL}"
ADMIN = f"**ada**:red[boss]www.{EVIL}"
# what remark-gfm turns into a live link (autolink literals)
AUTOLINK = re.compile(r"(?i)((?<![a-z0-9])https?:|(?<![a-z0-9])www\.|[\w.+-]@[\w-]+\.)")
ROLES = {
    "reviewer": User(REVIEWER_1, "reviewer", ("sw",)),
    "curator": User(CURATOR, "curator"),
    "admin": User(ADMIN, "admin"),
}
PAGES = {
    "reviewer": ["review", "guidelines", "account"],
    "curator": ["review", "guidelines", "account", "overview", "explore", "reviewers", "adjudicate", "export"],
    "admin": ["review", "guidelines", "account", "overview", "explore", "reviewers", "adjudicate", "export", "rounds"],
}


def seed_hostile(store) -> list[str]:
    """A store whose every shown text column carries PAYLOAD, with a conflict to adjudicate and decisions with notes."""
    ids = add_candidates(store, [
        {"lang": "sw", "text": f"Habari za leo {i} {PAYLOAD} " * 3, "instruction": f"Explain {i} {PAYLOAD}",
         "response": f"Jibu {i} {PAYLOAD}", "label": "flawed", "score": 0.3 + i / 10, "reviews_needed": 2,
         "cluster": i % 2}
        for i in range(4)])
    with store.session() as tx:
        tx.execute("UPDATE documents SET url = CASE WHEN id = (SELECT min(id) FROM documents) THEN ? ELSE ? END, "
                   "drop_detail = ?", [SOURCE_URL, f"javascript:alert(1) {PAYLOAD}", PAYLOAD])
        tx.execute("UPDATE candidates SET label_reason = ?, cluster_label = ?, gen_reason = ?, model_version = ?",
                   [f"because {PAYLOAD}", f"topic {PAYLOAD}", PAYLOAD, f"model-{PAYLOAD}"])
        tx.execute("INSERT INTO rounds (id, generator, evaluator, notes) VALUES (1, ?, ?, ?)",
                   [f"gen![g](http://{EVIL}/g.png)", f"eval:red[x]", PAYLOAD])
        tx.execute("INSERT INTO model_versions (name, kind, base, path) VALUES (?, 'generator', ?, ?)",
                   [f"m![m](http://{EVIL}/m.png)", PAYLOAD, PAYLOAD])
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    saved, auth._hasher = auth._hasher, fast
    try:
        for user in (*ROLES.values(), User(REVIEWER_2, "reviewer", ("sw",))):
            auth.add_user(store, user.name, "hostile-pass-1", user.role, list(user.langs))
    finally:
        auth._hasher = saved
    r1, r2 = ROLES["reviewer"], User(REVIEWER_2, "reviewer", ("sw",))
    review.record_decision(store, ids[0], r1, "accept")
    review.record_decision(store, ids[0], r2, "reject", reason="other", note=f"URGENT {PAYLOAD}")
    review.record_decision(store, ids[1], r1, "edit", instruction=f"Edited {PAYLOAD}")
    review.record_decision(store, ids[1], r2, "reject", reason="poor_quality", note=PAYLOAD)
    review.set_guidelines(store, GUIDELINES, ROLES["admin"])
    with store.session() as tx:  # a reason code that is not one of ours shows as stored
        tx.execute("UPDATE decisions SET reason = ? WHERE reason = 'poor_quality'", [f"odd:{PAYLOAD}"])
    return ids


# -- what reached the browser ------------------------------------------------------------------------------------------
def _nodes(at: AppTest):
    def walk(node):
        yield node
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                yield from walk(child)

    yield from walk(at._tree)


def markdown_strings(at: AppTest) -> list[str]:
    """Every string of this run that Streamlit renders as Markdown."""
    out = []
    for node in _nodes(at):
        proto = getattr(node, "proto", None)
        if proto is None or getattr(node, "type", None) == "html":
            continue
        names = {f.name for f, _ in proto.ListFields()} if hasattr(proto, "ListFields") else set()
        for field in ("body", "label", "help", "placeholder"):
            if field in names and isinstance(getattr(proto, field), str):
                out.append(getattr(proto, field))
        if getattr(node, "type", None) == "radio":
            out.extend(proto.options)
    return out


def html_bodies(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def markup_problems(at: AppTest) -> list[str]:
    problems = []
    for text in markdown_strings(at):
        for bad in (EVIL, ":red[", "<script", "<img", "](http"):
            if bad in text:
                problems.append(f"markdown carries {bad!r} unescaped: {text[:160]!r}")
        # GFM autolink literals form even where every punctuation character is backslash-escaped
        if AUTOLINK.search(re.sub(r"\\(.)", r"\1", text)):
            problems.append(f"markdown would autolink: {text[:160]!r}")
    css = render.style_tag()
    for body in html_bodies(at):
        if body == css:
            continue
        parser = _Tags()
        parser.feed(body)
        for tag, attrs in parser.tags:
            if tag in ("script", "img", "iframe", "svg", "object", "embed", "style", "link", "meta", "form"):
                problems.append(f"html has <{tag}>: {body[:160]!r}")
            for name, value in attrs.items():
                if name.startswith("on"):
                    problems.append(f"html has {name}=: {body[:160]!r}")
                if name in ("href", "src", "action", "srcset") and value not in (SOURCE_URL, SAFE_GUIDE_LINK):
                    curators_link = (body.startswith('<div class="xi-markdown">') and tag == "a" and name == "href"
                                     and value.startswith(("http://", "https://")))  # guidelines: their own links
                    if not curators_link:
                        problems.append(f"html has {name}={value!r}: {body[:160]!r}")
    return problems


@pytest.fixture
def hostile(file_store, monkeypatch, tmp_path, router_runs):  # noqa: F811
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    return seed_hostile(file_store)


def run_page(user: User, name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(user)
    at.run()
    if name != "review":
        at.switch_page(f"pages/{name}.py").run()
    return at


@pytest.mark.parametrize("role", list(ROLES))
def test_no_stored_text_is_markup_on_any_page(hostile, role):
    reached = 0
    for name in PAGES[role]:
        at = run_page(ROLES[role], name)
        assert not at.exception, (name, at.exception)
        problems = markup_problems(at)
        assert not problems, f"{role} on {name}:\n" + "\n".join(problems)
        shown = "\n".join(html_bodies(at))
        reached += shown.count(f"{EVIL}")  # escaped, as text
    assert reached > 0, "the hostile text never reached a page: the checks above saw no data"


def test_the_adjudicate_page_shows_notes_reasons_and_names_as_text(hostile):
    at = run_page(ROLES["curator"], "adjudicate")
    shown = "\n".join(html_bodies(at))
    assert "note: ![pic](http://evil.example/img.png)" in shown  # the note, literally
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in shown
    assert "<b>![u](http://evil.example/u.png)</b>" in shown  # the reviewer's name, bold, as text
    (radio,) = [r for r in at.radio if r.label == "Decision"]
    assert any(render.md_escape(f"take the edit by {REVIEWER_1}") in opt for opt in radio.proto.options)
    assert not any(EVIL in opt for opt in radio.proto.options)  # a radio option is Markdown: escaped


def test_the_checks_catch_markdown_from_stored_text(hostile, monkeypatch):
    """Control: the same page with the old `st.caption(f"note: ...")` is caught."""
    original = render.caption

    def markdown_caption(*parts):
        import streamlit as st

        st.caption("".join(p[1] if isinstance(p, tuple) else str(p) for p in parts))

    monkeypatch.setattr(render, "caption", markdown_caption)
    at = run_page(ROLES["curator"], "adjudicate")
    assert any("markdown carries" in p for p in markup_problems(at))
    monkeypatch.setattr(render, "caption", original)


def test_guidelines_keep_markdown_and_lose_unsafe_links_and_images():
    out = render.markdown_html(GUIDELINES)
    assert "<h1>Guidelines</h1>" in out and f'<a href="{SAFE_GUIDE_LINK}"' in out
    assert not re.search(r"<(img|script|iframe)", out)
    assert 'href="javascript' not in out and 'href="data' not in out and 'href="vbscript' not in out
    assert f'<a href="http://{EVIL}/link" target="_blank" rel="noopener noreferrer nofollow">' in out  # theirs to link
    assert "tracker" in out  # an image becomes its alt text


@pytest.mark.parametrize("text", [PAYLOAD, "a_b*c*", "1. x\n# y", "x@y.org", "$x$", "\\", "`code`", "~~s~~", "é ü",
                                  "see https://x.org and www.y.org", "HTTP://X.ORG", "mailto:a@b.c", "_http://x.org_"])
def test_md_escape_leaves_only_literal_text(text):
    from markdown_it import MarkdownIt

    out = render.md_escape(text)
    assert not AUTOLINK.search(re.sub(r"\\(.)", r"\1", out))  # no GFM autolink literal can form
    out_visible = out.replace(render.WORD_JOINER, "")
    rendered = MarkdownIt("commonmark").render(out_visible)
    assert "<a " not in rendered and "<img" not in rendered and "<em>" not in rendered and "<h1>" not in rendered
    assert "<ol>" not in rendered and "<code>" not in rendered
    assert html.unescape(re.sub(r"</?p>\n?", "", rendered)).strip() == text.strip()  # the reader sees the text
