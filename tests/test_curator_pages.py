"""AppTest for the curator pages: each renders without an exception for a curator (empty store and filled store), a
reviewer is turned away from each, and the main actions of explore, adjudicate and export work through the widgets."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, session_token
from test_curate import AMINA, CURATOR, build
from xinstruct.auth import User

PAGES = ["overview", "explore", "reviewers", "adjudicate", "export"]


@pytest.fixture
def app_store(file_store, monkeypatch, tmp_path):
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)  # DuckDB may spill to ./.tmp
    return file_store


@pytest.fixture
def filled(app_store):
    ids = build(app_store)
    rng = np.random.default_rng(0)
    rows = [[cid, "all-MiniLM-L6-v2", "h", rng.normal(size=16).astype(np.float32).tolist()] for cid in ids.values()]
    app_store.write(lambda tx: tx.executemany(
        "INSERT INTO embeddings (candidate_id, model, instruction_hash, vector) VALUES (?, ?, ?, ?)", rows))
    return ids


def page(name: str, user: User | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)
    if user is not None:
        at.session_state["xi_session"] = session_token(user)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [w.value for w in at.warning] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_an_empty_store(app_store, name):
    at = page(name, CURATOR)
    assert not at.exception, at.exception


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_with_data(filled, name):
    at = page(name, CURATOR)
    assert not at.exception, at.exception
    assert not at.error


@pytest.mark.parametrize("name", PAGES)
def test_a_reviewer_is_denied(filled, name):
    at = page(name, AMINA)
    assert not at.exception
    assert any("needs the curator role" in e.value for e in at.error)
    assert not at.title  # stopped before the page itself


@pytest.mark.parametrize("name", PAGES)
def test_nobody_logged_in_gets_the_login_form(app_store, name):
    at = page(name, None)
    assert not at.exception
    assert any(t.label == "Password" for t in at.text_input)


def test_overview_shows_languages_and_the_map(filled):
    at = page("overview", CURATOR)
    table = at.dataframe[0].value
    assert list(table["language"]) == ["Finnish (fi)", "Swahili (sw)", "Thai (th)", "Urdu (ur)", "Vietnamese (vi)"]
    assert "No instruction embeddings" not in texts(at)
    at.multiselect(key="xi_ov_langs").set_value(["sw"]).run()
    assert list(at.dataframe[0].value["language"]) == ["Swahili (sw)"]


def test_explore_filters_and_bulk_accepts_after_confirmation(filled, app_store):
    at = page("explore", CURATOR)
    assert "**7** candidates" in texts(at)
    at.text_input(key="xi_ex_search").set_value("Mombasa").run()
    assert "**1** candidates" in texts(at)
    assert list(at.dataframe[0].value["id"]) == [filled["sw_fish"]]
    at.text_input(key="xi_ex_search").set_value("'; DROP TABLE candidates; --").run()
    assert not at.exception and "No candidate matches" in texts(at)
    at.text_input(key="xi_ex_search").set_value("").run()

    at.number_input(key="xi_ex_bulk_min").set_value(0.9).run()
    at.button(key="xi_ex_bulk_accept").click().run()
    assert "accept 1 pending candidates" in texts(at)  # ur_prices (0.95); nothing recorded yet
    with app_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions WHERE action = 'bulk_accept'") == 0
    at.button(key="xi_ex_bulk_yes").click().run()
    assert not at.exception
    assert "1 of 1 candidates recorded" in texts(at)
    with app_store.session() as tx:
        row = tx.one("SELECT candidate_id, reviewer FROM decisions WHERE action = 'bulk_accept'")
        assert row == (filled["ur_prices"], "cora")


def test_explore_bulk_can_be_cancelled(filled, app_store):
    at = page("explore", CURATOR)
    at.button(key="xi_ex_bulk_review").click().run()
    assert "send 5 decided candidates back" in texts(at)
    at.button(key="xi_ex_bulk_no").click().run()
    assert "Confirm:" not in texts(at)
    with app_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions WHERE action = 'send_to_review'") == 0


def test_reviewers_page_shows_agreement(filled):
    at = page("reviewers", CURATOR)
    values = {m.label: m.value for m in at.metric}
    assert values["Items with several verdicts"] == "2"
    assert values["Krippendorff's alpha"] != "–"
    assert set(at.dataframe[0].value["reviewer"]) == {"amina", "juha"}


def test_adjudicate_records_the_final_decision(filled, app_store):
    at = page("adjudicate", CURATOR)
    assert "1 item(s) in conflict" in texts(at)
    heads = [h.proto.body for h in at.get("html") if h.proto.body.startswith('<div class="xi-caption"')
             and "</b> · " in h.proto.body]  # "<b>reviewer</b> · action · time", as escaped HTML
    assert [h.split(" · ")[1] for h in heads][:2] == ["accept", "reject"]
    at.radio(key=f"xi_adj_choice_{filled['fi_sauna']}").set_value("edit myself").run()
    at.text_area(key=f"xi_adj_i_{filled['fi_sauna']}").set_value("Describe what the sauna means to Finns.").run()
    at.button(key=f"xi_adj_save_{filled['fi_sauna']}").click().run()
    assert not at.exception
    assert "Recorded\\: edit myself" in texts(at) and "No conflicts" in texts(at)  # Markdown-escaped (render.md_escape)
    with app_store.session() as tx:
        status, final = tx.one("SELECT review_status, final_instruction FROM candidates WHERE id = ?",
                               [filled["fi_sauna"]])
        who = tx.scalar("SELECT reviewer FROM decisions WHERE action = 'adjudicate'")
    assert (status, final, who) == ("edited", "Describe what the sauna means to Finns.", "cora")


def test_export_writes_and_offers_a_zip(filled, app_store):
    at = page("export", CURATOR)
    assert "**3** pairs selected" in texts(at)
    at.radio(key="xi_exp_format").set_value("parquet").run()
    at.multiselect(key="xi_exp_langs").set_value(["sw"]).run()
    assert "**2** pairs selected" in texts(at)
    at.button(key="xi_exp_go").click().run()
    assert not at.exception
    assert "exported 2 rows" in texts(at)
    with app_store.session() as tx:
        path, by, rows = tx.one("SELECT path, by_user, rows FROM exports")
    assert by == "cora" and rows == 2
    from pathlib import Path

    out = Path(path)
    assert (out / "data.parquet").exists() and out.with_name(out.name + ".zip").exists()
    assert out.parent == Path(app_store.path).parent / "exports"
    (button,) = at.get("download_button")
    assert button.proto.label == "Download (zip)"
