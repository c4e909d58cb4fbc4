"""The Streamlit app through streamlit.testing.v1.AppTest: login, the review flows, roles, and a smoke test of every page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from conftest import add_candidates, session_token
from xinstruct import auth, review
from xinstruct.auth import User
from xinstruct.errors import StoreError
from xinstruct.store import Store

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PASSWORD = "review-pass-1"
UR = "وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی اسسٹنٹ سیکریٹری ایلس ویلز سے ملاقات کی"
SW_SCRIPT = "<script>alert(1)</script> Habari za leo: mvua kubwa imenyesha Dar es Salaam."
BN = "দিল্লী দর্বার তৈরীর পূর্বে, গেটওয়ে অব ইন্ডিয়া ১৯১১ সালে নির্মাণ করা হয়েছিল।"
ADMIN = User("boss", "admin")
AMINA = User("amina", "reviewer", ("sw", "ur"))


@pytest.fixture
def db(tmp_path, monkeypatch) -> Store:
    """A temp store for the app ($XINSTRUCT_DB): three items (Urdu first, then a Swahili one with a <script>, Bengali)."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", fast)
    monkeypatch.setattr(auth, "_DUMMY_HASH", fast.hash("dummy"))
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("XINSTRUCT_DB", str(path))
    store = Store(path)
    add_candidates(store, [
        {"lang": "ur", "text": UR, "instruction": "What did the finance minister say?", "score": 0.5, "label": "good"},
        {"lang": "sw", "text": SW_SCRIPT, "instruction": "What is the weather news?", "score": 0.45, "label": "flawed"},
        {"lang": "bn", "text": BN, "instruction": "Why was the Gateway of India built?", "score": 0.7},
    ])
    for name, role, langs in [("boss", "admin", []), ("amina", "reviewer", ["sw", "ur"]), ("cora", "curator", [])]:
        auth.add_user(store, name, PASSWORD, role, langs)
    return store


def app_as(user: User | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        at.session_state["xi_session"] = session_token(user)
    return at.run()


def html(at) -> str:
    return "\n".join(h.value for h in at.html)


def decisions(store) -> list[dict]:
    with store.session() as tx:
        return tx.dicts("SELECT id, candidate_id, reviewer, action, after, reason, note, request_id FROM decisions "
                        "ORDER BY id")


def login(name="amina", password=PASSWORD) -> AppTest:
    at = app_as(None)
    at.text_input(key="xi_login_name").input(name)
    at.text_input(key="xi_login_password").input(password)
    return at.button[0].click().run()


def test_no_data_before_login(db):
    at = app_as(None)
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    page = html(at) + " ".join(str(m.value) for m in at.markdown)
    assert 'class="xi-field' not in page and "finance minister" not in page and "Habari" not in page
    assert "xi_logout" not in [b.key for b in at.button]  # no navigation or sidebar before login


def test_login_form(db):
    at = login(password="wrong password")
    assert [e.value for e in at.error] == ["Wrong name or password."]
    assert 'class="xi-field' not in html(at)
    at = login()
    assert not at.exception
    assert at.session_state["user"] == AMINA
    page = html(at)
    assert 'dir="rtl" lang="ur"' in page and UR in page  # the Urdu item comes first (score nearest 0.5)


def test_login_lockout_message(db):
    for _ in range(auth.MAX_FAILURES):
        login(password="nope")
    at = login()
    assert any("too many failed logins" in e.value for e in at.error)


def test_accept_then_escaped_script(db):
    at = login()
    at.button(key="xi_accept").click().run()
    assert not at.exception
    rows = decisions(db)
    assert [(r["reviewer"], r["action"]) for r in rows] == [("amina", "accept")]
    assert json.loads(rows[0]["after"])["response"] == UR
    assert "Accepted." in [s.value for s in at.success]
    page = html(at)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_edit_stores_diff(db):
    at = login()
    at.button(key="xi_edit").click().run()
    (ikey, rkey) = [t.key for t in at.text_area]
    at.text_area(key=ikey).input("What did Pakistan's finance minister tell the US envoy?").run()
    assert "<del>" in html(at) and "<ins>" in html(at)  # the word diff is shown
    cid = ikey.removeprefix("xi_ed_i_")
    assert review.load_draft(db, AMINA, cid)["instruction"].startswith("What did Pakistan")  # draft persisted
    at.button(key="xi_save").click().run()
    assert not at.exception
    (row,) = decisions(db)
    after = json.loads(row["after"])
    assert row["action"] == "edit" and after["instruction"].startswith("What did Pakistan")
    assert ["insert", "Pakistan's"] in after["diff"]["instruction"] or any(
        op == "insert" and "Pakistan" in text for op, text in after["diff"]["instruction"])
    assert review.load_draft(db, AMINA, cid) is None
    assert review.get_item(db, cid)["review_status"] == "edited"


def test_edit_draft_survives_reload(db):
    at = login()
    at.button(key="xi_edit").click().run()
    ikey = at.text_area[0].key
    at.text_area(key=ikey).input("A draft instruction in progress").run()
    again = login()  # a page reload is a new session: log in again, the item and the draft come back
    assert not again.exception
    assert [t.value for t in again.text_area][0] == "A draft instruction in progress"
    assert any("Restored your unsaved edit" in i.value for i in again.info)
    assert decisions(db) == []


def test_reject_needs_reason_and_other_needs_text(db):
    at = login()
    at.button(key="xi_reject").click().run()
    assert {b.key for b in at.button} >= {f"xi_reject_{code}" for code in review.REJECT_REASONS}
    at.button(key="xi_reject_other").click().run()
    assert any("needs a description" in w.value for w in at.warning)
    assert decisions(db) == []  # still in reject mode, with the warning
    note_key = [t.key for t in at.text_input if t.key.startswith("xi_note_")][0]
    at.text_input(key=note_key).input("machine-translated news").run()
    at.button(key="xi_reject_other").click().run()
    (row,) = decisions(db)
    assert (row["action"], row["reason"], row["note"]) == ("reject", "other", "machine-translated news")
    at.button(key="xi_reject").click().run()
    at.button(key="xi_reject_wrong_language").click().run()
    assert [r["reason"] for r in decisions(db)] == ["other", "wrong_language"]


def test_undo_and_skip(db):
    at = login()
    first = at.session_state["xi_item"]["id"]
    at.button(key="xi_accept").click().run()
    assert at.session_state["xi_item"]["id"] != first
    at.button(key="xi_undo").click().run()
    assert not at.exception
    assert at.session_state["xi_item"]["id"] == first  # the undone item is back on screen
    assert [r["action"] for r in decisions(db)] == ["accept", "undo"]
    assert review.get_item(db, first)["review_status"] == "pending"
    at.button(key="xi_skip").click().run()
    assert [r["action"] for r in decisions(db)][-1] == "skip"
    assert at.session_state["xi_item"]["id"] != first


def test_failed_write_is_shown_and_retried_once(db, monkeypatch):
    real = review.record_decision
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("database is busy (test)")
        return real(*args, **kwargs)

    at = login()
    monkeypatch.setattr(review, "record_decision", flaky)
    at.button(key="xi_accept").click().run()
    assert any("was NOT saved" in e.value for e in at.error)
    assert decisions(db) == []
    at.button(key="xi_retry").click().run()
    assert "xi_retry" not in [b.key for b in at.button]
    rows = decisions(db)
    assert [r["action"] for r in rows] == ["accept"] and rows[0]["request_id"].startswith("amina:")
    assert not at.error


def test_relabel_language(db):
    at = login()
    item = at.session_state["xi_item"]
    at.selectbox(key=f"xi_lang_{item['id']}").set_value("hi").run()
    assert not at.exception
    moved = review.get_item(db, item["id"])
    assert moved["lang"] == "hi" and moved["doc_lang"] == "hi"
    assert decisions(db)[-1]["action"] == "relabel_lang"
    assert at.session_state["xi_item"]["id"] != item["id"]


def test_reviewer_sees_only_review_pages(db):
    at = app_as(AMINA)
    assert not at.exception
    for page in ("overview", "explore", "reviewers", "adjudicate", "export", "rounds"):
        with pytest.raises(ValueError):  # not registered in the reviewer's navigation at all
            at.switch_page(f"pages/{page}.py")
    at.switch_page("pages/guidelines.py").run()
    assert not at.exception and not at.text_area  # read-only for reviewers


def test_require_denies_insufficient_role(db):
    def curator_page():
        import streamlit as st

        from xinstruct import auth as a

        a.require("curator")
        st.write("curator data")

    at = AppTest.from_function(curator_page, default_timeout=30)
    at.session_state["xi_session"] = session_token(User("amina", "reviewer", ("sw",)))
    at.run()
    assert any("needs the curator role" in e.value for e in at.error)
    assert "curator data" not in [m.value for m in at.markdown]
    at = AppTest.from_function(curator_page, default_timeout=30).run()  # nobody logged in: login prompt only
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert "curator data" not in [m.value for m in at.markdown]


def test_curator_edits_guidelines(db):
    at = app_as(User("cora", "curator"))
    at.switch_page("pages/guidelines.py").run()
    at.text_area(key="xi_guidelines_text").input("# Be brief\nAccept short answers.").run()
    at.button(key="xi_guidelines_save").click().run()
    assert not at.exception
    assert review.get_guidelines(db) == "# Be brief\nAccept short answers."


def test_logout(db):
    # (AppTest 1.67 does not deliver clicks on widgets of the router script under st.navigation, so the sidebar's
    # "Log out" is exercised by the browser test; the Account page has the same button.)
    at = login()
    item = at.session_state["xi_item"]
    at.switch_page("pages/account.py").run()
    at.button(key="xi_logout_account").click().run()
    assert "user" not in at.session_state
    assert review.next_item(db, User("baraka", "reviewer", ("ur",)))["id"] == item["id"]  # the lease was released
    assert [t.label for t in at.text_input] == ["Name", "Password"]


PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_for_admin(db, page):
    review.record_decision(db, review.next_item(db, ADMIN)["id"], ADMIN, "accept")  # some data to show
    at = app_as(ADMIN)
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception, f"{page}: {at.exception}"
