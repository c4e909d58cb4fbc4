"""The Rounds page's model comparisons section (AppTest): empty store, and a stored comparison with its per-language
table, the models' data and the unparseable outputs."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, session_token
from test_judge import constructed
from xinstruct.auth import User

ADMIN = User("ada", "admin")


@pytest.fixture
def app_store(file_store, monkeypatch, tmp_path):
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    return file_store


def rounds_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "rounds.py"), default_timeout=90)
    at.session_state["xi_session"] = session_token(ADMIN)
    return at.run()


def test_without_comparisons_the_section_says_how_to_make_one(app_store):
    at = rounds_page()
    assert not at.exception, at.exception
    assert any("Model comparisons" == h.value for h in at.subheader)
    assert any("xinstruct eval judge" in i.value for i in at.info)


def test_a_stored_comparison_is_listed_and_reported(app_store):
    constructed(app_store)
    app_store.close()
    at = rounds_page()
    assert not at.exception, at.exception
    assert not at.error
    [pick] = [s for s in at.selectbox if s.key == "xi_rounds_comparison"]
    assert "A vs B" in pick.options[0] and "judge-x" in pick.options[0]
    tables = [d.value for d in at.dataframe]
    report = next(t for t in tables if "win_ci" in t.columns)
    sw = report[report["lang"] == "sw"].iloc[0]
    assert (sw["win"], sw["tie"], sw["loss"], sw["unparseable"]) == (6, 2, 1, 1)
    models = next(t for t in tables if "data_hash" in t.columns)
    assert list(models["export_rows"])[0] == 321
    assert any("Wilson" in c.value for c in at.caption)
