"""The Review page's key rule (xinstruct.keyboard.resolve) and its review-layout HTML (xinstruct.render).

The browser half (the listener that queues keys while the page is busy) is tested in a real browser by
tests/test_browser.py::test_keys_pressed_while_busy; here the server's rule: a key applies once per id, only to the item
it was pressed on and only where it means something, and says why when it does not.
"""

from __future__ import annotations

import pytest

from xinstruct import keyboard, render, review


def press(key, item="c1", pid="p:1"):
    return {"id": pid, "key": key, "item": item}


def test_a_key_applies_to_the_item_it_was_pressed_on():
    seen = []
    assert keyboard.resolve(press("a"), item_id="c1", mode="view", seen=seen) == ("accept", None)
    assert seen == ["p:1"]


def test_a_key_pressed_on_another_item_is_refused_with_a_reason():
    action, message = keyboard.resolve(press("a", item="c1"), item_id="c2", mode="view", seen=[])
    assert action is None
    assert message.startswith("A was not applied") and "previous item" in message
    action, message = keyboard.resolve(press("u", item="c1"), item_id="", mode="empty", seen=[])
    assert action is None and "queue is now empty" in message


def test_a_resent_key_is_applied_once():
    seen = []
    assert keyboard.resolve(press("a"), item_id="c1", mode="view", seen=seen) == ("accept", None)
    assert keyboard.resolve(press("a"), item_id="c1", mode="view", seen=seen) == (None, None)  # same id: a resend
    assert keyboard.resolve(press("a", pid="p:2"), item_id="c1", mode="view", seen=seen) == ("accept", None)


def test_keys_by_mode():
    reasons = list(review.REJECT_REASONS)
    assert keyboard.resolve(press("x"), item_id="c1", mode="view", seen=[]) == ("reject", None)
    for n, code in enumerate(reasons, start=1):
        assert keyboard.resolve(press(str(n)), item_id="c1", mode="reject", seen=[]) == (f"reject:{code}", None)
    assert keyboard.resolve(press("escape"), item_id="c1", mode="reject", seen=[]) == ("cancel", None)
    assert keyboard.resolve(press("escape"), item_id="c1", mode="edit", seen=[]) == ("cancel_edit", None)
    assert keyboard.resolve(press("u", item=""), item_id="", mode="empty", seen=[]) == ("undo", None)
    action, message = keyboard.resolve(press("1"), item_id="c1", mode="view", seen=[])
    assert action is None and message.startswith("1 was not applied: it does nothing here")
    action, message = keyboard.resolve(press("a"), item_id="c1", mode="reject", seen=[])
    assert action is None and "reject reason" in message
    assert keyboard.keys_for("view") == ["a", "e", "s", "u", "x"]


@pytest.mark.parametrize("bad", [None, "a", {"key": "a"}, {"id": 1, "key": "a", "item": "c1"}, ["a"]])
def test_a_malformed_key_event_is_refused_not_applied(bad):
    seen = []
    action, message = keyboard.resolve(bad, item_id="c1", mode="view", seen=seen)
    assert action is None and "malformed" in message and seen == []


def test_seen_ids_are_bounded():
    seen = []
    for n in range(keyboard.SEEN_KEEP + 50):
        keyboard.resolve(press("a", pid=f"p:{n}"), item_id="c1", mode="view", seen=seen)
    assert len(seen) == keyboard.SEEN_KEEP and seen[-1] == f"p:{keyboard.SEEN_KEEP + 49}"


def test_the_listener_script_is_packaged():
    script = keyboard._script()
    assert "export default function" in script and "addEventListener(\"keydown\"" in script


# -- review layout HTML ------------------------------------------------------------------------------------------------
ITEM = {"id": "c<1>", "instruction": "Say <b>hi</b>", "response": "Habari", "lang": "sw", "text": "Home | Habari",
        "doc_lang": "sw", "url": "https://example.org/a?b=1&c=<2>", "source": "news<1>.jsonl", "source_line": 12}


def test_suggestion_is_neutral_and_says_what_it_is():
    out = render.suggestion_html("good", 0.96, None)
    assert "Suggestion" in out and "good" in out and "0.96" in out
    assert 'class="good"' not in out and "not measured" in out  # no verdict colour class; unmeasured says so
    out = render.suggestion_html("bad", 0.28, "agrees with reviewers on 71% of 140 Swahili items", reason="<off topic>")
    assert "71% of 140" in out and "not measured" not in out and "&lt;off topic&gt;" in out
    assert "none" in render.suggestion_html(None, None, None)


def test_source_panel_shows_the_original_only_where_it_differs():
    out = render.source_html(ITEM)
    assert "news&lt;1&gt;.jsonl, line 12" in out
    assert "Home | Habari" in out and "differs from the response" in out
    assert 'rel="noopener noreferrer"' in out and 'target="_blank"' in out
    assert 'href="https://example.org/a?b=1&amp;c=&lt;2&gt;"' in out
    same = render.source_html({**ITEM, "text": "Habari"})
    assert "xi-source\"" not in same and "unchanged" in same
    assert "identical to the response" in render.source_html({**ITEM, "text": "Habari"}, show_text=True)
    assert "unknown source" in render.source_html({**ITEM, "source": None, "source_line": None})


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "ftp://x.org/a",
                                 "https:///nohost", "//example.org/a", "https://x.org/\x00a", " vbscript:x"])
def test_only_http_urls_become_links(url):
    out = render.url_html(url)
    assert "<a " not in out and "href" not in out
    assert "<script" not in out


def test_pair_carries_the_item_id_for_the_key_listener():
    out = render.review_pair_html(ITEM)
    assert 'data-xi-item="c&lt;1&gt;"' in out
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in out and 'class="xi-field xi-response"' in out


def test_keys_cue_says_starting_until_the_listener_marks_the_page():
    out = render.keys_cue_html()
    assert 'class="xi-keys-cue"' in out and 'role="status"' in out
    assert render.KEYS_STARTING in out and render.KEYS_ON in out  # review.css shows one of them
    css = render.page_css()
    assert 'html[data-xi-keys="ready"] .xi-keys-cue .xi-keys-starting' in css
    script = keyboard._script()
    assert 'document.documentElement.dataset.xiKeys = "ready"' in script


def test_page_css_has_no_angle_bracket():
    # st.html's sanitizer drops a <style> whose text contains "<" followed by a letter: the whole app CSS would be lost
    assert "<" not in render.page_css()
