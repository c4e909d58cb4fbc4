"""Review settings, drafts and guidelines in their own tables: the upgrade that moves them out of `settings` (migration
0006), k and lease length per language through the service, the CLI (`xinstruct review settings`) and the Reviewers
page. (That the review package holds no SQL of its own is tests/test_layers.py.)"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import ROOT, add_candidates, session_token
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from xinstruct import auth, review
from xinstruct.auth import User, utcnow
from xinstruct.cli import app
from xinstruct.errors import AccessDenied, InputError
from xinstruct.store import Store

AMINA = User("amina", "reviewer", ("sw",))
BARAKA = User("baraka", "reviewer", ("sw",))
CORA = User("cora", "curator")
SW = "Tottenham inamfuatilia winga wa Everton na England U21 Anthony Gordon, 21, kabla ya dirisha la usajili la Januari."
runner = CliRunner()


def sw_rows(n):
    return [{"lang": "sw", "text": f"{SW} ({i})", "instruction": f"Who is Tottenham following? ({i})", "score": 0.5}
            for i in range(n)]


# -- the upgrade -----------------------------------------------------------------------------------------------------
def test_an_older_store_moves_drafts_k_counters_and_guidelines_out_of_settings(tmp_path):
    old = Store(tmp_path / "old.duckdb", migrate=False)
    old.migrate(upto="0005_trained_evaluator_features")
    ids = add_candidates(old, [dict(sw_rows(2)[0], selected=True), sw_rows(2)[1]])  # ids[0] comes first
    rows = [  # as the release before 0006 wrote them
        ("k.sw", "2"), ("k.ur", "3"), ("review.seq.sw", "41"), ("review.seq.ur", "7"),
        (f"draft.amina.{ids[0]}", '{"instruction": "Draft question?", "response": "Draft answer"}'),
        (f"draft.juha.virtanen@example.fi.{ids[1]}", '{"instruction": "Mikä?", "response": "Vastaus"}'),
        ("guidelines", "# Our own guidelines"),
        ("feedback.last_decision", "12"),  # not review's: 0006 leaves it (0007 moves it to feedback_runs)
        ("k.fi", "many"), (f"draft.amina.{ids[1]}", "not json"),  # unreadable before too: stay, untouched
    ]
    old.write(lambda tx: tx.executemany("INSERT INTO settings VALUES (?, ?)", rows))
    old.close()

    store = Store(tmp_path / "old.duckdb")
    assert "0006_review_tables" in store.migrations()
    with store.session() as tx:
        assert review.k_settings(tx) == {"sw": 2, "ur": 3}
        assert sorted(tx.all("SELECT lang, seq FROM review_counters")) == [("sw", 41), ("ur", 7)]
        assert sorted(tx.all("SELECT key, value FROM settings")) == sorted(
            [("k.fi", "many"), (f"draft.amina.{ids[1]}", "not json")])
        assert tx.scalar("SELECT max(last_decision) FROM feedback_runs") == 12
    assert review.load_draft(store, AMINA, ids[0]) == {"instruction": "Draft question?", "response": "Draft answer"}
    juha = User("juha.virtanen@example.fi", "reviewer", ("fi",))
    assert review.load_draft(store, juha, ids[1]) == {"instruction": "Mikä?", "response": "Vastaus"}
    assert review.get_guidelines(store) == "# Our own guidelines"
    # and the review queue goes on from there: k 2 and the draft come with the item
    item = review.next_item(store, AMINA)
    assert item["id"] == ids[0] and item["k"] == 2 and item["draft"]["instruction"] == "Draft question?"
    review.record_decision(store, item["id"], AMINA, "accept")
    with store.session() as tx:
        assert tx.scalar("SELECT seq FROM review_counters WHERE lang = 'sw'") > 41
        assert tx.scalar("SELECT count(*) FROM settings WHERE key LIKE 'review.seq.%'") == 0


def test_drafts_and_guidelines_live_in_their_tables(store):
    (cid,) = add_candidates(store, sw_rows(1))
    review.save_draft(store, AMINA, cid, "Draft?", SW)
    review.save_draft(store, AMINA, cid, "Draft, again?", SW)
    review.set_guidelines(store, "# One", CORA)
    review.set_guidelines(store, "# Two", CORA)
    with store.session() as tx:
        assert tx.all("SELECT reviewer, candidate_id, instruction FROM drafts") == [("amina", cid, "Draft, again?")]
        assert tx.all("SELECT text, saved_by FROM guidelines ORDER BY id") == [("# One", "cora"), ("# Two", "cora")]
        assert tx.scalar("SELECT count(*) FROM settings") == 0
    assert review.get_guidelines(store) == "# Two"
    review.set_guidelines(store, "", CORA)
    assert review.get_guidelines(store) == review.DEFAULT_GUIDELINES  # empty: the built-in ones again
    with pytest.raises(AccessDenied):
        review.set_guidelines(store, "# Mine", AMINA)


# -- k and lease length ----------------------------------------------------------------------------------------------
def test_settings_default_then_stored_per_language(store):
    shown = {s.lang: s for s in review.review_settings(store)}
    assert len(shown) == 10 and shown["sw"] == review.ReviewSettings("sw", 1, 10, False, None)
    saved = review.set_review_settings(store, CORA, "sw", k=2)
    assert (saved.k, saved.lease_minutes, saved.stored, saved.updated_by) == (2, 10, True, "cora")
    saved = review.set_review_settings(store, CORA, "SW ", lease_minutes=25)  # k is kept; code normalised
    assert (saved.k, saved.lease_minutes) == (2, 25)
    assert {s.lang: s.k for s in review.review_settings(store)}["ur"] == 1


@pytest.mark.parametrize("kw, message", [
    ({"k": 0}, "k (reviews needed) must be a whole number from 1 to 20"),
    ({"k": 21}, "from 1 to 20"),
    ({"k": 1.5}, "not 1.5"),
    ({"k": "two"}, "not 'two'"),
    ({"lease_minutes": 0}, "the lease length in minutes must be a whole number from 1 to 1440"),
    ({"lease_minutes": 24 * 60 + 1}, "from 1 to 1440"),
    ({}, "nothing to change"),
])
def test_bad_settings_are_refused_with_a_hint(store, kw, message):
    with pytest.raises(InputError, match=re.escape(message)) as err:
        review.set_review_settings(store, CORA, "sw", **kw)
    assert err.value.hint
    assert not any(s.stored for s in review.review_settings(store))


def test_settings_need_a_curator_and_a_known_language(store):
    with pytest.raises(AccessDenied, match="needs the curator role"):
        review.set_review_settings(store, AMINA, "sw", k=2)
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        review.set_review_settings(store, CORA, "xx", k=2)
    with pytest.raises(AccessDenied):
        review.set_k(store, "sw", 2, AMINA)


def test_the_lease_length_of_the_items_language_applies(store):
    add_candidates(store, sw_rows(1) + [{"lang": "ur", "text": "وزیرخزانہ اسد عمر", "instruction": "q"}])
    review.set_review_settings(store, CORA, "sw", lease_minutes=30)
    before = utcnow()
    item = review.next_item(store, AMINA)
    assert timedelta(minutes=29) < item["lease_expires_at"] - before <= timedelta(minutes=30, seconds=5)
    other = review.next_item(store, User("zainab", "reviewer", ("ur",)))  # ur keeps the default, 10 minutes
    assert timedelta(minutes=9) < other["lease_expires_at"] - before <= timedelta(minutes=10, seconds=5)
    assert review.next_item(store, BARAKA) is None  # k 1 and amina's lease holds for 30 minutes


def test_lowering_k_finishes_items_that_already_have_enough_reviews(store):
    ids = add_candidates(store, sw_rows(3))
    review.set_k(store, "sw", 2, CORA)
    review.record_decision(store, ids[0], AMINA, "accept")
    review.record_decision(store, ids[1], AMINA, "reject", reason="poor_quality")
    review.record_decision(store, ids[2], AMINA, "accept")
    review.record_decision(store, ids[2], BARAKA, "reject", reason="unsafe")  # two reviews that disagree
    statuses = lambda: [review.get_item(store, cid)["review_status"] for cid in ids]  # noqa: E731
    assert statuses() == ["in_review", "in_review", "conflict"]
    review.set_k(store, "sw", 1, CORA)
    assert statuses() == ["accepted", "rejected", "conflict"]
    assert review.get_item(store, ids[0])["final_instruction"] == "Who is Tottenham following? (0)"
    review.set_k(store, "sw", 3, CORA)  # raising k leaves decided items as they are
    assert statuses() == ["accepted", "rejected", "conflict"]


# -- the command line ------------------------------------------------------------------------------------------------
def test_cli_shows_and_changes_the_settings(file_store):
    db = str(file_store.path)
    file_store.close()
    shown = runner.invoke(app, ["review", "settings", "--db", db])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^sw\s+1\s+10\s+\(default\)", shown.output, re.M) and len(shown.output.splitlines()) == 11
    changed = runner.invoke(app, ["review", "settings", "--lang", "sw", "--lang", "ur", "--k", "2",
                                  "--lease-minutes", "15", "--db", db])
    assert changed.exit_code == 0, changed.output
    assert re.search(r"^sw\s+2\s+15\s+local:", changed.output, re.M)
    assert re.search(r"^ur\s+2\s+15\s+local:", changed.output, re.M) and "fi" not in changed.output
    store = Store(db)
    assert {s.lang: (s.k, s.lease_minutes) for s in review.review_settings(store) if s.stored} == {
        "sw": (2, 15), "ur": (2, 15)}
    store.close()


@pytest.mark.parametrize("args, message", [
    (["--k", "2"], "which language?"),
    (["--lang", "sw", "--lang", "xx", "--k", "2"], "unknown language code 'xx'"),
])
def test_cli_refuses_unclear_changes_and_changes_nothing(file_store, args, message):
    db = str(file_store.path)
    file_store.close()
    result = runner.invoke(app, ["review", "settings", *args, "--db", db])
    assert result.exit_code != 0 and message in str(result.exception), result.output
    store = Store(db)
    assert not any(s.stored for s in review.review_settings(store))  # not even sw, given before the bad code
    store.close()


# -- the Reviewers page ----------------------------------------------------------------------------------------------
@pytest.fixture
def app_store(file_store, monkeypatch, tmp_path):
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    return file_store


def reviewers_page(user: User) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "reviewers.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(user)
    return at.run()


def test_a_curator_changes_k_and_lease_on_the_reviewers_page(app_store):
    at = reviewers_page(CORA)
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table.loc[table["language"] == "Swahili (sw)", ["k", "lease (minutes)"]].iloc[0]) == [1, "10"]
    at.selectbox(key="xi_rs_lang").set_value("sw").run()
    at.number_input(key="xi_rs_k_sw").set_value(2).run()
    at.number_input(key="xi_rs_lease_sw").set_value(15).run()
    at.button(key="xi_rs_save").click().run()
    assert not at.exception
    assert any("Swahili (sw) needs k = 2" in s.value for s in at.success)
    table = at.dataframe[-1].value  # drawn after the save
    assert list(table.loc[table["language"] == "Swahili (sw)", ["k", "lease (minutes)", "set by"]].iloc[0]) == [
        2, "15", "cora"]
    shown = {s.lang: s for s in review.review_settings(app_store)}
    assert (shown["sw"].k, shown["sw"].lease_minutes, shown["sw"].updated_by) == (2, 15, "cora")


def test_a_curator_demoted_while_the_page_is_open_cannot_save(app_store):
    at = reviewers_page(CORA)
    at.number_input(key="xi_rs_k_bn").set_value(3).run()
    auth.add_user(app_store, "cora", "a new password 123", "reviewer", replace=True)  # an admin takes the role away
    at.button(key="xi_rs_save").click().run()  # the save runs as a callback, before the page checks the login again
    assert not at.exception
    assert not any(s.stored for s in review.review_settings(app_store))
    assert not at.success and any(t.label == "Password" for t in at.text_input)  # asked to log in again


def test_a_refused_save_shows_the_reason(app_store, monkeypatch):
    def refuse(*args, **kwargs):
        raise InputError("k (reviews needed) must be a whole number from 1 to 20, not 25",
                         hint="1 lets one review decide")

    at = reviewers_page(CORA)
    monkeypatch.setattr(review, "set_review_settings", refuse)
    at.button(key="xi_rs_save").click().run()
    assert not at.exception
    assert any("Could not save" in e.value and "from 1 to 20" in e.value for e in at.error)


def test_a_reviewer_gets_no_settings_form(app_store):
    at = reviewers_page(AMINA)
    assert any("needs the curator role" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "xi_rs_save"]


