"""One definition of the review rates: acceptance = (accepted + edited) / decided, edit rate = edited / (accepted +
edited), edit distance = mean characters changed in the instruction over edited pairs. The same store gives the same
figures on the Overview page, the Rounds page, `xinstruct round report` and the exported dataset card."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from conftest import ROOT, add_candidates, session_token
from xinstruct import curate, export, review
from xinstruct.auth import User
from xinstruct.cli import app

REVIEWER = User("amina", "reviewer")
ADMIN = User("ada", "admin")
SW_EDIT = ("Describe the fish market.", "Describe the fish market in Mombasa.")  # 11 characters inserted
UR_EDIT = ("Explain the prices.", "Explain the flour prices.")  # 6 characters inserted

# Hand-computed from the decisions below. The old Rounds figures (accepted / decided, edited / decided) would be
# sw 0.6 / 0.2 and ur 0.0 / 0.5.
EXPECTED = {
    "sw": {"decided": 5, "acceptance_rate": 0.8, "edit_rate": 0.25, "mean_edit_distance": 11.0},
    "ur": {"decided": 2, "acceptance_rate": 0.5, "edit_rate": 1.0, "mean_edit_distance": 6.0},
}


def fill(store) -> None:
    """sw: 3 accepted, 1 edited, 1 rejected, 1 pending; ur: 1 edited, 1 rejected; th: 1 pending (no rate)."""
    rows = [{"lang": "sw", "text": f"Soko la samaki namba {i}.", "instruction": f"Describe market {i}."} for i in range(3)]
    rows += [{"lang": "sw", "text": "Soko la samaki la Mombasa.", "instruction": SW_EDIT[0]},
             {"lang": "sw", "text": "Habari za leo.", "instruction": "What is the news?"},
             {"lang": "sw", "text": "Hali ya hewa.", "instruction": "Describe the weather."},
             {"lang": "ur", "text": "آٹے کی قیمتیں بڑھ گئیں۔", "instruction": UR_EDIT[0]},
             {"lang": "ur", "text": "یہ ایک خبر ہے۔", "instruction": "Summarise the news."},
             {"lang": "th", "text": "ข่าววันนี้", "instruction": "What happened today?"}]
    ids = add_candidates(store, rows)
    for cid in ids[:3]:
        review.record_decision(store, cid, REVIEWER, "accept")
    review.record_decision(store, ids[3], REVIEWER, "edit", instruction=SW_EDIT[1])
    review.record_decision(store, ids[4], REVIEWER, "reject", reason="poor_quality")
    review.record_decision(store, ids[6], REVIEWER, "edit", instruction=UR_EDIT[1])
    review.record_decision(store, ids[7], REVIEWER, "reject", reason="poor_quality")


@pytest.fixture
def filled(file_store, monkeypatch, tmp_path):
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    fill(file_store)
    return file_store


def test_the_definition():
    assert curate.rates(3, 1, 1) == {"decided": 5, "acceptance_rate": 0.8, "edit_rate": 0.25}
    assert curate.rates(0, 0, 2) == {"decided": 2, "acceptance_rate": 0.0, "edit_rate": None}
    assert curate.rates(0, 0, 0) == {"decided": 0, "acceptance_rate": None, "edit_rate": None}


def test_review_rates_by_language_and_by_round(filled):
    by_lang = curate.review_rates(filled, ("lang",))
    assert {k[0]: {f: v[f] for f in EXPECTED["sw"]} for k, v in by_lang.items()} == EXPECTED
    by_round = curate.review_rates(filled, ("round", "lang"))
    assert {k: {f: v[f] for f in EXPECTED["sw"]} for k, v in by_round.items()} == {
        (1, lang): figures for lang, figures in EXPECTED.items()}
    with pytest.raises(Exception, match="cannot group review rates by reviewer"):
        curate.review_rates(filled, ("reviewer",))


def test_every_surface_shows_the_same_figures(filled, tmp_path):
    # 1. Overview page (curate.overview): percentages with one decimal, distance with one decimal
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(ADMIN)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("language")
    for lang, name in [("sw", "Swahili (sw)"), ("ur", "Urdu (ur)")]:
        e = EXPECTED[lang]
        assert table.loc[name, "acceptance %"] == round(100 * e["acceptance_rate"], 1)
        assert table.loc[name, "edit %"] == round(100 * e["edit_rate"], 1)
        assert table.loc[name, "mean edit distance"] == e["mean_edit_distance"]
    assert any("edited / (accepted + edited)" in str(c.value) for c in at.caption)

    # 2. Rounds page (feedback.round_report): the values themselves
    at = AppTest.from_file(str(ROOT / "pages" / "rounds.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(ADMIN)
    at.run()
    assert not at.exception, at.exception
    report = at.dataframe[0].value.set_index("lang")
    for lang, e in EXPECTED.items():
        assert report.loc[lang, "reviewed"] == e["decided"]
        for field in ("acceptance_rate", "edit_rate", "mean_edit_distance"):
            assert report.loc[lang, field] == pytest.approx(e[field]), (lang, field)

    # 3. `xinstruct round report`
    out = CliRunner().invoke(app, ["round", "report", "--db", str(filled.path)])
    assert out.exit_code == 0, out.output
    header, *lines = out.output.splitlines()
    cols = header.split()
    for line in lines:
        row = dict(zip(cols, line.split()))
        e = EXPECTED[row["lang"]]
        assert (int(row["reviewed"]), row["acceptance_rate"], row["edit_rate"], row["mean_edit_distance"]) == (
            e["decided"], f"{e['acceptance_rate']:.3f}", f"{e['edit_rate']:.3f}", f"{e['mean_edit_distance']:.3f}")

    # 4. the exported dataset card
    result = export.export(filled, export.ExportConfig(out=tmp_path / "exp", status="all"))
    card = result.card.read_text(encoding="utf-8")
    for lang, e in EXPECTED.items():
        m = re.search(rf"^\| {lang} \| (\d+) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+) \|$", card, re.M)
        assert m, card
        assert (int(m[1]), float(m[2]), float(m[3]), float(m[4])) == (
            e["decided"], round(100 * e["acceptance_rate"], 1), round(100 * e["edit_rate"], 1),
            round(e["mean_edit_distance"], 1))
    assert "edited / (accepted + edited)" in card
