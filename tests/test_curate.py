"""Curation functions on a small store of real multilingual snippets with decisions written through review.record_decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import add_candidates
from xinstruct import curate, review
from xinstruct.auth import User
from xinstruct.curate import CandidateFilter
from xinstruct.errors import AccessDenied, InputError

AMINA = User("amina", "reviewer")
JUHA = User("juha", "reviewer")
CURATOR = User("cora", "curator")

# (key, row): snippets of native text in several scripts, English instructions as the generator would write them.
ROWS = {
    "sw_news": dict(lang="sw", label="good", score=0.91, cluster=0,
                    text="Rais wa Kenya amesema uchaguzi utafanyika kwa amani na haki mwezi ujao, huku wananchi "
                         "wakitakiwa kujiandikisha mapema.",
                    instruction="Summarize the news about the coming election in Kenya."),
    "sw_fish": dict(lang="sw", label="flawed", score=0.55, cluster=1,
                    text="Wavuvi wa Mombasa huamka alfajiri na kwenda baharini kuvua samaki, kisha huuza samaki hao "
                         "sokoni.",
                    instruction="Write a story about fishermen."),
    "fi_city": dict(lang="fi", label="good", score=0.8, cluster=0, reviews_needed=2,
                    text="Helsinki perustettiin vuonna 1550, ja siitä tuli Suomen pääkaupunki vuonna 1812.",
                    instruction="Explain the history of Helsinki in two sentences."),
    "fi_sauna": dict(lang="fi", label="bad", score=0.2, cluster=1, reviews_needed=2,
                     text="Sauna on suomalaisille tärkeä paikka rentoutua, ja monessa kodissa on oma sauna.",
                     instruction="List the benefits of the sauna."),
    "th_temple": dict(lang="th", label=None, score=None, cluster=None,
                      text="วัดพระแก้วเป็นวัดที่สำคัญที่สุดในประเทศไทย ตั้งอยู่ในกรุงเทพมหานคร",
                      instruction="Describe the most important temple in Thailand."),
    "ur_prices": dict(lang="ur", label="good", score=0.95, cluster=2,
                      text="پاکستان میں مہنگائی کی بڑی وجوہات میں ایندھن کی قیمتوں میں اضافہ اور روپے کی قدر میں کمی "
                           "شامل ہیں۔",
                      instruction="What are the main causes of inflation in Pakistan?"),
    "vi_english": dict(lang="vi", label="flawed", score=0.4, cluster=2,
                       text="Học tiếng Anh mỗi ngày một chút sẽ giúp bạn tiến bộ nhanh hơn so với học dồn vào cuối tuần.",
                       instruction="Give tips for learning English."),
}
FISH_EDIT = "Describe the working day of the fishermen of Mombasa."


def build(store) -> dict[str, str]:
    """The store every test here starts from; returns key -> candidate id.

    sw_news accepted (amina) · sw_fish edited (amina) · fi_city accepted by two reviewers (k=2, agree) · fi_sauna
    accept vs reject (k=2, conflict) · vi_english rejected (amina) · th_temple, ur_prices pending.
    """
    ids = dict(zip(ROWS, add_candidates(store, list(ROWS.values()))))
    review.record_decision(store, ids["sw_news"], AMINA, "accept")
    review.record_decision(store, ids["sw_fish"], AMINA, "edit", instruction=FISH_EDIT)
    review.record_decision(store, ids["fi_city"], AMINA, "accept")
    review.record_decision(store, ids["fi_city"], JUHA, "accept")
    review.record_decision(store, ids["fi_sauna"], AMINA, "accept")
    review.record_decision(store, ids["fi_sauna"], JUHA, "reject", reason="not_an_answer")
    review.record_decision(store, ids["vi_english"], AMINA, "reject", reason="poor_quality")
    return ids


@pytest.fixture
def ids(store):
    return build(store)


def found(store, ids, **kw) -> set[str]:
    names = {v: k for k, v in ids.items()}
    df = curate.search(store, CandidateFilter(**kw), limit=1000)
    return {names[i] for i in df["id"]}


def status(store, cid) -> str:
    with store.session() as tx:
        return tx.scalar("SELECT review_status FROM candidates WHERE id = ?", [cid])


# -- the where-clause builder (pure) ------------------------------------------------------------------------------------
def test_where_empty_filter_is_true():
    assert CandidateFilter().where() == ("TRUE", [])


def test_where_puts_every_value_in_params():
    f = CandidateFilter(langs=["sw", "fi"], labels=["good", "unlabeled"], min_score=0.5, max_score=0.9, clusters=[1, 2],
                        statuses=["pending"], reviewer="amina' OR 1=1 --", agreement="disagree", search="50%_off")
    sql, params = f.where("c")
    assert "amina" not in sql and "50" not in sql and "sw" not in sql
    assert sql.count("?") == len(params)
    assert params[:2] == ["sw", "fi"] and "amina' OR 1=1 --" in params
    assert "%50\\%\\_off%" in params  # LIKE wildcards in the search text are matched literally
    assert "c.label IS NULL" in sql


@pytest.mark.parametrize("kw", [dict(langs=["xx"]), dict(labels=["great"]), dict(statuses=["done"]),
                                dict(agreement="maybe"), dict(min_score="0.5"), dict(clusters=["1"])])
def test_where_rejects_unknown_values(kw):
    with pytest.raises(InputError):
        CandidateFilter(**kw).where()


# -- each filter on a store ---------------------------------------------------------------------------------------------
def test_filters(store, ids):
    assert found(store, ids) == set(ROWS)
    assert found(store, ids, langs=["fi"]) == {"fi_city", "fi_sauna"}
    assert found(store, ids, labels=["good"]) == {"sw_news", "fi_city", "ur_prices"}
    assert found(store, ids, labels=["unlabeled"]) == {"th_temple"}
    assert found(store, ids, min_score=0.8) == {"sw_news", "fi_city", "ur_prices"}
    assert found(store, ids, max_score=0.4) == {"fi_sauna", "vi_english"}
    assert found(store, ids, min_score=0.45, max_score=0.6) == {"sw_fish"}
    assert found(store, ids, clusters=[2]) == {"ur_prices", "vi_english"}
    assert found(store, ids, statuses=["pending"]) == {"th_temple", "ur_prices"}
    assert found(store, ids, statuses=["accepted", "edited"]) == {"sw_news", "sw_fish", "fi_city"}
    assert found(store, ids, statuses=["conflict"]) == {"fi_sauna"}
    assert found(store, ids, reviewer="juha") == {"fi_city", "fi_sauna"}
    assert found(store, ids, agreement="agree") == {"fi_city"}
    assert found(store, ids, agreement="disagree") == {"fi_sauna"}
    assert found(store, ids, langs=["sw"], labels=["flawed"]) == {"sw_fish"}


def test_search_text(store, ids):
    assert found(store, ids, search="MOMBASA") == {"sw_fish"}  # the edited (final) instruction, any case
    assert found(store, ids, search="helsinki") == {"fi_city"}
    assert found(store, ids, search="กรุงเทพ") == {"th_temple"}  # in the Thai response
    assert found(store, ids, search="مہنگائی") == {"ur_prices"}
    assert found(store, ids, search="   ") == set(ROWS)  # blank search does not filter
    assert found(store, ids, search="%") == set()  # wildcards are literal characters
    assert found(store, ids, search="_") == set()


@pytest.mark.parametrize("evil", ["'; DROP TABLE candidates; --", "%' OR '1'='1", "\\", "') OR 1=1 --", "\"; --"])
def test_injection_strings_find_nothing_and_break_nothing(store, ids, evil):
    assert found(store, ids, search=evil) == set()
    assert found(store, ids, reviewer=evil) == set()
    assert curate.count(store, CandidateFilter(search=evil)) == 0
    assert curate.count(store) == len(ROWS)  # the table is still there, untouched


def test_search_columns_paging_and_counts(store, ids):
    df = curate.search(store, CandidateFilter(), limit=3)
    assert list(df.columns) == list(curate.SEARCH_COLUMNS)
    assert list(df["score"]) == [0.95, 0.91, 0.8]  # best score first
    rest = curate.search(store, CandidateFilter(), limit=10, offset=3)
    assert len(rest) == len(ROWS) - 3 and not set(rest["id"]) & set(df["id"])
    row = curate.search(store, CandidateFilter(langs=["fi"], statuses=["conflict"])).iloc[0]
    assert row["reviews"] == 2 and row["decisions"] == 2
    fish = curate.search(store, CandidateFilter(search="Mombasa")).iloc[0]
    assert fish["instruction"] == FISH_EDIT
    assert curate.count(store, CandidateFilter(langs=["sw"])) == 2
    assert curate.clusters(store) == [0, 1, 2]
    assert curate.reviewers(store) == ["amina", "juha"]


def test_undo_takes_a_verdict_back(store, ids):
    review.record_decision(store, ids["fi_sauna"], JUHA, "undo")
    assert found(store, ids, agreement="disagree") == set()
    assert curate.search(store, CandidateFilter(langs=["fi"], search="sauna")).iloc[0]["reviews"] == 1


# -- overview -------------------------------------------------------------------------------------------------------------
def test_overview(store, ids):
    store.write(lambda tx: tx.execute(
        "INSERT INTO documents (id, content_hash, text, lang, status, drop_reason) VALUES "
        "('d1', 'd1', 'lyhyt', 'fi', 'dropped', 'too_short'), ('d2', 'd2', 'x', 'fi', 'dropped', 'too_short'), "
        "('d3', 'd3', 'y', 'fi', 'dropped', 'boilerplate')"))
    rows = {r["lang"]: r for r in curate.overview(store)}
    assert list(rows) == ["fi", "sw", "th", "ur", "vi"]  # LANGS order, only languages present
    fi, sw, vi = rows["fi"], rows["sw"], rows["vi"]
    assert fi["docs_kept"] == 2 and fi["docs_dropped"] == 3 and fi["dropped"] == {"boilerplate": 1, "too_short": 2}
    assert fi["labels"] == {"good": 1, "flawed": 0, "bad": 1, "unlabeled": 0}
    assert fi["status"]["accepted"] == 1 and fi["status"]["conflict"] == 1
    assert fi["acceptance_rate"] == 1.0 and fi["edit_rate"] == 0.0
    assert sw["acceptance_rate"] == 1.0 and sw["edit_rate"] == 0.5
    from difflib import SequenceMatcher  # noqa: F401  (the expected value below is the plain Levenshtein distance)

    assert sw["mean_edit_distance"] == _levenshtein(ROWS["sw_fish"]["instruction"], FISH_EDIT)
    assert vi["acceptance_rate"] == 0.0 and vi["edit_rate"] is None
    assert rows["th"]["acceptance_rate"] is None and rows["th"]["labels"]["unlabeled"] == 1
    assert [r["lang"] for r in curate.overview(store, ["vi", "sw"])] == ["sw", "vi"]
    flat = curate.overview_frame(curate.overview(store))
    assert {"dropped:too_short", "status:conflict", "labels:good"} <= set(flat.columns)
    with pytest.raises(InputError):
        curate.overview(store, ["english"])


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_overview_of_an_empty_store(store):
    assert curate.overview(store) == []
    assert curate.overview_frame([]).empty


# -- bulk actions -----------------------------------------------------------------------------------------------------
def test_bulk_accept_above_records_the_curators_decisions(store, ids):
    before = curate.bulk_preview(store, CandidateFilter(), "bulk_accept", 0.9)
    assert before == 1  # ur_prices; sw_news is above 0.9 too but already decided by a reviewer
    result = curate.bulk_accept_above(store, CandidateFilter(), 0.9, CURATOR, chunk=1)
    assert (result.matched, result.recorded, result.failed) == (1, 1, [])
    assert status(store, ids["ur_prices"]) == "accepted"
    with store.session() as tx:
        log = tx.dicts("SELECT reviewer, action, request_id, note FROM decisions WHERE candidate_id = ?",
                       [ids["ur_prices"]])
    assert [(d["reviewer"], d["action"]) for d in log] == [("cora", "bulk_accept")]
    assert log[0]["request_id"] == f"bulk:{result.batch}:{ids['ur_prices']}" and result.batch in log[0]["note"]
    assert status(store, ids["th_temple"]) == "pending"  # no score: never bulk-accepted


def test_bulk_accept_in_chunks_and_rerun_records_once(store):
    rows = [dict(lang="sw", text=f"Habari ya leo nambari {i}: mvua kubwa imenyesha Dar es Salaam.",
                 instruction=f"Summarize weather report {i}.", label="good", score=0.7 + i / 100) for i in range(7)]
    add_candidates(store, rows)
    result = curate.bulk_accept_above(store, CandidateFilter(langs=["sw"]), 0.7, CURATOR, chunk=3, batch="b1")
    assert result.recorded == 7
    again = curate.bulk_accept_above(store, CandidateFilter(langs=["sw"]), 0.7, CURATOR, chunk=3, batch="b1")
    assert again.matched == 0 and again.recorded == 0
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions WHERE action = 'bulk_accept'") == 7


def test_bulk_send_to_review(store, ids):
    f = CandidateFilter(langs=["vi", "fi"])
    assert curate.bulk_preview(store, f, "send_to_review") == 3  # vi rejected, fi accepted, fi conflict
    result = curate.bulk_send_to_review(store, f, CURATOR)
    assert result.recorded == 3
    for key in ("vi_english", "fi_city", "fi_sauna"):
        assert status(store, ids[key]) == "pending"
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions WHERE action = 'send_to_review' AND reviewer = 'cora'") == 3
    assert found(store, ids, agreement="disagree") == set()  # the earlier verdicts no longer count


def test_reviewers_cannot_run_bulk_actions(store, ids):
    with pytest.raises(AccessDenied):
        curate.bulk_accept_above(store, CandidateFilter(), 0.0, AMINA)
    with pytest.raises(AccessDenied):
        curate.bulk_send_to_review(store, CandidateFilter(), AMINA)
    with pytest.raises(InputError):
        curate.bulk_accept_above(store, CandidateFilter(), None, CURATOR)


def test_bulk_reports_refused_candidates(store, ids):
    sw_only = User("sami", "curator", ("sw",))
    result = curate.bulk_accept_above(store, CandidateFilter(), 0.0, sw_only)
    assert result.matched == 1 and result.recorded == 0 and len(result.failed) == 1  # ur_prices is not sami's language
    assert "refused" in str(result)


# -- reviewers and agreement ----------------------------------------------------------------------------------------------
def test_reviewer_stats(store, ids):
    stats = curate.reviewer_stats(store)
    assert stats.multi_reviewed == 2
    table = stats.reviewers.set_index("reviewer")
    assert table.loc["amina", "decisions"] == 5 and table.loc["juha", "decisions"] == 2
    assert table.loc["amina", "accept"] == 3 and table.loc["amina", "edit"] == 1 and table.loc["amina", "reject"] == 1
    assert table.loc["juha", "pairs"] == 2 and table.loc["juha", "pairwise_agreement"] == 0.5
    assert stats.per_day["decisions"].sum() == 7
    import krippendorff

    expected = krippendorff.alpha(reliability_data=[[0, 0], [0, 1]], level_of_measurement="nominal")
    assert stats.alpha == pytest.approx(expected)
    assert stats.alpha_keep == pytest.approx(expected)


def test_reviewer_stats_alpha_with_three_reviewers(store):
    ids = add_candidates(store, [dict(lang="fi", text=f"Tampere on teollisuuskaupunki, osa {i}.",
                                      instruction=f"Describe Tampere, part {i}.", reviews_needed=3) for i in range(4)])
    lea = User("lea", "reviewer")
    votes = [("accept", "accept", "accept"), ("accept", "reject", "accept"), ("reject", "reject", "reject"),
             ("edit", "accept", "accept")]
    for cid, vs in zip(ids, votes):
        for user, action in zip((AMINA, JUHA, lea), vs):
            kw = {"reason": "poor_quality"} if action == "reject" else {"instruction": "Describe Tampere."} \
                if action == "edit" else {}
            review.record_decision(store, cid, user, action, **kw)
    stats = curate.reviewer_stats(store)
    code = {"accept": 0, "reject": 1, "edit": 2}
    data = np.array([[code[v[r]] for v in votes] for r in range(3)], dtype=float)
    import krippendorff

    assert stats.multi_reviewed == 4
    assert stats.alpha == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    keep = np.array([[float(v[r] == "reject") for v in votes] for r in range(3)])
    assert stats.alpha_keep == pytest.approx(krippendorff.alpha(reliability_data=keep, level_of_measurement="nominal"))
    assert curate.reviewer_stats(store, ["sw"]).multi_reviewed == 0


def test_reviewer_stats_of_an_empty_store(store):
    stats = curate.reviewer_stats(store)
    assert stats.alpha is None and stats.multi_reviewed == 0 and stats.reviewers.empty


# -- conflicts and adjudication -------------------------------------------------------------------------------------------
def test_conflicts_show_both_reviews(store, ids):
    items = curate.conflicts(store)
    assert [it["id"] for it in items] == [ids["fi_sauna"]]
    item = items[0]
    assert item["source_text"] == ROWS["fi_sauna"]["text"]
    assert [(d["reviewer"], d["action"]) for d in item["decisions"]] == [("amina", "accept"), ("juha", "reject")]
    assert item["decisions"][0]["instruction"] == ROWS["fi_sauna"]["instruction"]
    assert item["decisions"][1]["reason"] == "not_an_answer"
    assert curate.conflicts(store, ["sw"]) == []


def test_adjudicate_edit(store, ids):
    better = "Describe what the sauna means to Finns."
    curate.adjudicate(store, ids["fi_sauna"], CURATOR, "edit", instruction=better)
    with store.session() as tx:
        row = tx.one("SELECT review_status, final_instruction FROM candidates WHERE id = ?", [ids["fi_sauna"]])
        last = tx.one("SELECT reviewer, action FROM decisions WHERE candidate_id = ? ORDER BY id DESC LIMIT 1",
                      [ids["fi_sauna"]])
    assert row == ("edited", better) and last == ("cora", "adjudicate")
    assert curate.conflicts(store) == []
    assert found(store, ids, agreement="disagree") == {"fi_sauna"}  # the reviewers still disagreed


@pytest.mark.parametrize("action, expected", [("accept", "accepted"), ("reject", "rejected")])
def test_adjudicate_accept_or_reject(store, ids, action, expected):
    curate.adjudicate(store, ids["fi_sauna"], CURATOR, action)
    assert status(store, ids["fi_sauna"]) == expected


def test_adjudicate_needs_a_curator_and_a_known_action(store, ids):
    with pytest.raises(AccessDenied):
        curate.adjudicate(store, ids["fi_sauna"], AMINA, "accept")
    with pytest.raises(InputError):
        curate.adjudicate(store, ids["fi_sauna"], CURATOR, "maybe")
    with pytest.raises(InputError):
        curate.adjudicate(store, ids["fi_sauna"], CURATOR, "edit")


# -- chart data ------------------------------------------------------------------------------------------------------------
def test_score_histogram(store, ids):
    hist = curate.score_histogram(store, bins=10)
    assert hist["candidates"].sum() == 6  # th_temple has no score
    groups = hist.groupby("decision")["candidates"].sum().to_dict()
    assert groups == {"accepted": 2, "edited": 1, "rejected": 1, "undecided": 2}
    top = hist[hist["bin"] == 0.9].set_index("decision")["candidates"].to_dict()
    assert top == {"accepted": 1, "undecided": 1}  # 0.91 accepted, 0.95 pending
    assert curate.score_histogram(store, CandidateFilter(langs=["ta"])).empty


def test_progress(store, ids):
    df = curate.progress(store)
    assert df.groupby("action")["decisions"].sum().to_dict() == {"accept": 4, "edit": 1, "reject": 2}
    assert list(df.columns) == ["day", "action", "decisions", "cumulative"]
    assert curate.progress(store, ["ta"]).empty


def test_embedding_map(store, ids):
    assert curate.embedding_map(store).empty
    rng = np.random.default_rng(0)
    rows = [[cid, "minilm", "h", rng.normal(size=8).astype(np.float32).tolist()] for cid in ids.values()]
    store.write(lambda tx: tx.executemany(
        "INSERT INTO embeddings (candidate_id, model, instruction_hash, vector) VALUES (?, ?, ?, ?)", rows))
    m = curate.embedding_map(store)
    assert len(m) == len(ROWS) and list(m.columns) == ["id", "x", "y", "review_status", "lang", "instruction"]
    assert set(m["review_status"]) == {"accepted", "edited", "rejected", "conflict", "pending"}
    assert np.isfinite(m[["x", "y"]].to_numpy()).all()
    assert len(curate.embedding_map(store, CandidateFilter(langs=["fi"]))) == 2
    assert len(curate.embedding_map(store, limit=3)) == 3


@pytest.mark.parametrize("text, expected", [
    ("Write a short summary of the article.", ("write", "summary")),
    ("Please summarise the following text.", ("summarize", "text")),
    ("Can you explain how photosynthesis works?", ("explain", "photosynthesis")),
    ("I want you to list the main causes of inflation.", ("list", "causes")),
    ("What are the benefits of green tea?", ("what", "benefits")),
    ("Translate this into Swahili", ("translate", "swahili")),
    ("Generate", ("generate", None)),
    ("", None),
    (None, None),
    ("1234 !!", None),
])
def test_verb_object(text, expected):
    assert curate.verb_object(text) == expected


def test_top_topics(store, ids):
    topics = curate.top_topics(store, n=3)
    assert list(topics.columns) == ["verb", "object", "candidates", "share"]
    assert len(topics) == 3 and topics["candidates"].sum() <= len(ROWS)
    all_topics = curate.top_topics(store, n=100)
    assert ("describe", "working") in set(zip(all_topics["verb"], all_topics["object"]))  # the edited instruction
    assert all_topics["share"].sum() == pytest.approx(1.0)
    assert isinstance(curate.top_topics(store, CandidateFilter(langs=["ta"])), pd.DataFrame)
