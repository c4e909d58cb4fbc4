"""Security: nothing without login, reviewers see only their languages and no curator page or export, passwords
hashed and never written or logged in clear, logins rate limited, web text rendered as text, hostile filter values kept
as data.

App checks run the real app and page files with streamlit's AppTest (no server, no network) against a file store named
by XINSTRUCT_DB. A forged session is a User object put in the session state: what a logged-in reviewer's session holds.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import add_candidates, session_token
from xinstruct import auth, curate, export, render, review
from xinstruct.auth import User
from xinstruct.errors import AccessDenied, InputError
from xinstruct.store import Store

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SIRI-NYETI"  # in every candidate's text: must never show before login / to the wrong reviewer
UR_SECRET = "URDU-SIRI"
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
PASSWORD = "Tr0ub4dor&3-clear-text"

AMINA = User("amina", "reviewer", ("sw",))
CORA = User("cora", "curator")
ADA = User("ada", "admin")


def _page_role(path: Path) -> str | None:
    m = re.search(r"""auth\.require\(\s*["'](\w+)["']\s*\)""", path.read_text(encoding="utf-8"))
    return m.group(1) if m else None


PAGES = sorted(ROOT.glob("pages/*.py"))
PROTECTED = [p for p in PAGES if _page_role(p) in ("curator", "admin")]


@pytest.fixture
def app_store(file_store, monkeypatch):
    """A file store with sw and ur items (the ur ones marked differently) that the app and its pages use."""
    add_candidates(file_store, [
        *[{"lang": "sw", "text": f"Habari {SECRET}-{i} " * 20, "instruction": f"Explain {SECRET}-{i} {XSS}",
           "label": "good", "score": 0.5 + i / 100} for i in range(3)],
        *[{"lang": "ur", "text": f"خبر {UR_SECRET}-{i} " * 20, "instruction": f"Explain {UR_SECRET}-{i}",
           "label": "good", "score": 0.5} for i in range(3)],
    ])
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    return file_store


def apptest(path: Path, user=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(path), default_timeout=120)
    if user is not None:
        at.session_state["xi_session"] = session_token(user) if isinstance(user, User) else user
    return at.run()


def page_text(at) -> str:
    """Everything the run sent to the browser: every element's protobuf in text form (widget values and labels too)."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(at._tree)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------------------------------------------------
def test_the_app_shows_nothing_but_the_login_form_without_a_session(app_store):
    at = apptest(ROOT / "app.py")
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert SECRET not in page_text(at) and UR_SECRET not in page_text(at)
    # the same reading of a logged-in session does find the item (so the check above can see data when it is there)
    assert SECRET in page_text(apptest(ROOT / "app.py", AMINA))


@pytest.mark.parametrize("forged", [{"name": "ada", "role": "admin"}, "ada", ("ada", "admin", ())],
                         ids=["dict", "str", "tuple"])
def test_a_session_value_that_is_not_a_user_is_not_a_login(app_store, forged):
    at = apptest(ROOT / "app.py", forged)
    assert not at.exception and [t.label for t in at.text_input] == ["Name", "Password"]
    assert SECRET not in page_text(at)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_page_file_asks_for_a_login_when_run_directly(app_store, page):
    at = apptest(page)
    assert not at.exception
    assert "Password" in [t.label for t in at.text_input]
    assert SECRET not in page_text(at) and UR_SECRET not in page_text(at)


def test_login_through_the_form(app_store):
    auth.add_user(app_store, "amina", PASSWORD, "reviewer", ["sw"])
    at = apptest(ROOT / "app.py")
    (login,) = [b for b in at.button if b.label == "Log in"]
    at.text_input[0].input("amina")
    at.text_input[1].input("not the password")
    login.click().run()
    assert "Wrong name or password." in [e.value for e in at.error] and SECRET not in page_text(at)
    assert "user" not in at.session_state
    at.text_input[1].input(PASSWORD)
    [b for b in at.button if b.label == "Log in"][0].click().run()
    assert not at.exception and at.session_state["user"] == AMINA
    assert SECRET in page_text(at) and UR_SECRET not in page_text(at)


# ---------------------------------------------------------------------------------------------------------------------
# Languages and roles
# ---------------------------------------------------------------------------------------------------------------------
def test_a_reviewer_is_never_given_another_language(app_store):
    got = []
    while (item := review.next_item(app_store, AMINA)) is not None:
        got.append(item)
        review.record_decision(app_store, item["id"], AMINA, "skip")
    assert len(got) == 3 and {i["lang"] for i in got} == {"sw"}
    assert not any(UR_SECRET in (i["instruction"] + i["response"] + i["text"]) for i in got)


def test_a_reviewer_cannot_decide_or_relabel_another_language(app_store):
    with app_store.session() as tx:
        ur_id, ur_doc = tx.one("SELECT id, doc_id FROM candidates WHERE lang = 'ur' LIMIT 1")
    for action, kw in [("accept", {}), ("edit", {"instruction": "x"}), ("reject", {"reason": "unsafe"}), ("skip", {}),
                       ("undo", {})]:
        with pytest.raises(AccessDenied):
            review.record_decision(app_store, ur_id, AMINA, action, **kw)
    with pytest.raises(AccessDenied):
        review.set_document_lang(app_store, ur_doc, "sw", AMINA)
    for curator_action in ("bulk_accept", "adjudicate", "send_to_review"):  # a reviewer is not a curator
        with pytest.raises(AccessDenied):
            review.record_decision(app_store, ur_id, AMINA, curator_action)
    with app_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 0
        assert tx.scalar("SELECT lang FROM documents WHERE id = ?", [ur_doc]) == "ur"


def test_the_review_page_shows_a_reviewer_only_their_language(app_store):
    at = apptest(ROOT / "app.py", AMINA)
    seen = []
    for _ in range(4):
        assert not at.exception and UR_SECRET not in page_text(at)
        item = at.session_state["xi_item"]
        if not item:
            break
        seen.append(item["lang"])
        at.button(key="xi_accept").click().run()
    assert seen == ["sw", "sw", "sw"]


@pytest.mark.parametrize("page", PROTECTED, ids=lambda p: p.stem)
@pytest.mark.parametrize("who", [AMINA, CORA], ids=["reviewer", "curator"])
def test_curator_and_admin_pages_refuse_a_lower_role(app_store, page, who):
    needed = _page_role(page)
    at = apptest(page, who)
    if who.can(needed):
        assert not at.exception  # the curator on a curator page: allowed (a control for the refusals)
        return
    assert not at.exception
    assert [e.value for e in at.error] == [f"This page needs the {needed} role; you are logged in as {who.name} "
                                           f"({who.role})."]
    text = page_text(at)
    assert SECRET not in text and UR_SECRET not in text
    assert not at.get("dataframe") and not at.button and not at.text_input  # nothing to see or press


def test_the_app_registers_no_curator_page_for_a_reviewer(app_store):
    at = apptest(ROOT / "app.py", AMINA)
    for page in PROTECTED:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(str(page))
    curator = apptest(ROOT / "app.py", CORA)  # control: a curator's navigation has them
    curator.switch_page(str(PROTECTED[0]))


def test_export_needs_a_curator(app_store, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(AccessDenied):
        export.export(app_store, export.ExportConfig(out=out, status="all"), user=AMINA)
    assert not out.exists()
    with app_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM exports") == 0
    res = export.export(app_store, export.ExportConfig(out=out, status="all"), user=CORA)  # control
    assert res.rows == 6


# ---------------------------------------------------------------------------------------------------------------------
# Passwords and logins
# ---------------------------------------------------------------------------------------------------------------------
def test_passwords_are_hashed_and_never_stored_or_logged_in_clear(file_store, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    assert auth.authenticate(file_store, "amina", PASSWORD) == AMINA
    assert auth.authenticate(file_store, "amina", PASSWORD + "x") is None
    assert auth.authenticate(file_store, "nobody", PASSWORD) is None
    auth.change_password(file_store, AMINA, PASSWORD, PASSWORD + "-new")
    auth.add_user(file_store, "amina", PASSWORD + "-reset", "reviewer", ["sw"], replace=True)
    with file_store.session() as tx:
        (pw_hash,) = tx.one("SELECT password_hash FROM users WHERE name = 'amina'")
        everything = " ".join(str(v) for table in ("users", "login_attempts", "settings")
                              for row in tx.all(f"SELECT * FROM {table}") for v in row)
    assert pw_hash.startswith("$argon2id$")
    assert PASSWORD not in everything
    logged = caplog.text + "".join(capfd.readouterr())
    assert "amina" in caplog.text  # the log was captured...
    assert PASSWORD not in logged  # ...and holds no password
    file_store.close()  # (reading the file while this process has it open would drop DuckDB's lock on it)
    for f in Path(file_store.path).parent.glob(Path(file_store.path).name + "*"):
        assert PASSWORD.encode() not in f.read_bytes(), f"clear password in {f.name}"


def test_logins_are_rate_limited(file_store):
    auth.add_user(file_store, "amina", PASSWORD, "reviewer", ["sw"])
    t0 = auth.utcnow()
    for i in range(auth.MAX_FAILURES):
        assert auth.authenticate(file_store, "amina", f"guess {i}", now=t0 + timedelta(seconds=i)) is None
    locked_at = t0 + timedelta(seconds=auth.MAX_FAILURES)
    with pytest.raises(AccessDenied, match="too many failed logins"):
        auth.authenticate(file_store, "amina", PASSWORD, now=locked_at)  # even the right password, while locked
    with file_store.session() as tx:  # attempts during the lock are not recorded, so the lock ends
        assert tx.scalar("SELECT count(*) FROM login_attempts") == auth.MAX_FAILURES
    later = t0 + auth.LOCK_TIME + timedelta(seconds=auth.MAX_FAILURES + 1)
    assert auth.authenticate(file_store, "amina", PASSWORD, now=later) == AMINA
    # unknown names are limited the same way (no probing for names)
    for i in range(auth.MAX_FAILURES):
        auth.authenticate(file_store, "ghost", "x", now=t0 + timedelta(seconds=i))
    with pytest.raises(AccessDenied):
        auth.authenticate(file_store, "ghost", "x", now=locked_at)


# ---------------------------------------------------------------------------------------------------------------------
# Web text renders as text
# ---------------------------------------------------------------------------------------------------------------------
PAYLOADS = [XSS, '"><svg onload=alert(1)>', "</div><script>x</script>", "<style>body{display:none}</style>",
            "&lt;already escaped&gt;", "javascript:alert(1)"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_renderers_escape_every_text(payload):
    outputs = [render.field_html(payload, payload, css_class=payload, label=payload),
               render.diff_html(review.word_diff(payload, payload + " new"), payload),
               render.suggestion_html(payload, 0.5, payload), render.url_html(payload),
               render.url_html("https://x.org/" + payload)]
    for out in outputs:
        assert "<script" not in out and "<img" not in out and "<svg" not in out and "<style" not in out
        assert out.count("<div") == out.count("</div>")  # the text cannot close our elements
    assert "&lt;script&gt;" in render.field_html(XSS)
    assert 'href="javascript' not in render.url_html("javascript:alert(1)")


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_field_html_keeps_any_text_as_text(text):
    out = render.field_html(text)
    m = re.fullmatch(r'<div class="xi-field" dir="(ltr|rtl)" lang="und">(.*)</div>', out, re.S)
    assert m, out
    assert "<" not in m.group(2) and ">" not in m.group(2) and html.unescape(m.group(2)) == text


def test_the_review_page_shows_a_script_as_text(app_store):
    at = apptest(ROOT / "app.py", AMINA)
    bodies = [h.proto.body for h in at.get("html")]
    shown = [b for b in bodies if SECRET in b and "xi-instruction" in b]
    assert shown and all("&lt;script&gt;alert(" in b for b in shown)
    assert not any("<script" in b or "<img" in b for b in bodies)


# ---------------------------------------------------------------------------------------------------------------------
# Hostile filter values
# ---------------------------------------------------------------------------------------------------------------------
INJECTIONS = ["'; DROP TABLE candidates; --", "' OR '1'='1", "x' OR 1=1 --", "\\'; DELETE FROM decisions; --",
              "%' OR '%'='", "') OR TRUE OR ('", "1; UPDATE candidates SET review_status = 'accepted'"]


def _tables(store: Store) -> dict[str, int]:
    with store.session() as tx:
        names = [r[0] for r in tx.all("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
        return {n: tx.scalar(f'SELECT count(*) FROM "{n}"') for n in names}


@pytest.mark.parametrize("payload", INJECTIONS)
def test_an_injection_in_a_filter_finds_nothing_and_breaks_nothing(store, payload):
    add_candidates(store, [{"lang": "sw", "text": f"Habari {i} " * 30, "instruction": f"Explain item {i}.",
                            "label": "good", "score": 0.5} for i in range(4)])
    review.record_decision(store, add_candidates(store, [{"lang": "sw", "text": "Rate 50%_off " * 30,
                                                          "instruction": "Explain a 50%_off sale."}])[0],
                           AMINA, "accept")
    before = _tables(store)
    for filt in [curate.CandidateFilter(search=payload), curate.CandidateFilter(reviewer=payload),
                 curate.CandidateFilter(search=payload, reviewer=payload, langs=("sw",))]:
        assert curate.search(store, filt).empty and curate.count(store, filt) == 0
    for bad in [dict(langs=(payload,)), dict(labels=(payload,)), dict(statuses=(payload,)), dict(clusters=(payload,)),
                dict(min_score=payload), dict(agreement=payload)]:
        with pytest.raises(InputError):
            curate.search(store, curate.CandidateFilter(**bad))
    assert _tables(store) == before
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM candidates WHERE review_status = 'accepted'") == 1
    # LIKE wildcards are literal too: '%' and '_' find only the text that has them
    assert curate.count(store, curate.CandidateFilter(search="50%_off")) == 1
    assert curate.count(store, curate.CandidateFilter(search="%")) == 1
    assert curate.count(store, curate.CandidateFilter(search="_")) == 1
    assert curate.count(store, curate.CandidateFilter(search="item")) == 4  # control


def test_an_injection_in_an_export_filter_exports_nothing(store, tmp_path):
    add_candidates(store, [{"lang": "sw", "text": f"Habari {i} " * 30, "instruction": f"Explain item {i}."}
                           for i in range(3)])
    before = _tables(store)
    res = export.export(store, export.ExportConfig(out=tmp_path / "o", status="all",
                                                   filter=curate.CandidateFilter(search=INJECTIONS[0])), user=CORA)
    assert res.rows == 0 and (tmp_path / "o" / "data.jsonl").read_bytes() == b""
    after = _tables(store)
    assert after.pop("exports") == before.pop("exports") + 1 and after == before
