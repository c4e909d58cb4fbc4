"""The review queue and the decision log: derive_state rules, next_item ordering and leases, threads, idempotency, undo."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from conftest import add_candidates
from xinstruct import review
from xinstruct.auth import User
from xinstruct.errors import AccessDenied, InputError, StoreError

UR = "وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی اسسٹنٹ سیکریٹری ایلس ویلز سے ملاقات کی"
SW = "Tottenham inamfuatilia winga wa Everton na England U21 Anthony Gordon, 21, kabla ya dirisha la usajili la Januari."
BN = "দিল্লী দর্বার তৈরীর পূর্বে, গেটওয়ে অব ইন্ডিয়া ১৯১১ সালে নির্মাণ করা হয়েছিল।"

AMINA = User("amina", "reviewer", ("sw",))
BARAKA = User("baraka", "reviewer", ("sw",))
ZAINAB = User("zainab", "reviewer", ("ur",))
CORA = User("cora", "curator")


def d(i, reviewer, action, after=None, reason=None):
    return {"id": i, "reviewer": reviewer, "action": action, "after": after, "reason": reason}


KEEP = {"instruction": "Who is Tottenham following?", "response": SW}
EDIT1 = {"instruction": "Which winger is Tottenham watching?", "response": SW}
EDIT2 = {"instruction": "Which player does Tottenham want?", "response": SW}


# -- derive_state ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("log, k, status", [
    ([], 1, "pending"),
    ([d(1, "a", "skip")], 1, "pending"),
    ([d(1, "a", "accept", KEEP)], 1, "accepted"),
    ([d(1, "a", "accept", KEEP)], 2, "in_review"),
    ([d(1, "a", "accept", KEEP), d(2, "b", "accept", KEEP)], 2, "accepted"),
    ([d(1, "a", "accept", KEEP), d(2, "b", "reject", {"reason": "unsafe"}, "unsafe")], 2, "conflict"),
    ([d(1, "a", "reject", {}, "unsafe"), d(2, "b", "reject", {}, "poor_quality")], 2, "rejected"),
    ([d(1, "a", "edit", EDIT1), d(2, "b", "edit", EDIT1)], 2, "edited"),
    ([d(1, "a", "edit", EDIT1), d(2, "b", "edit", EDIT2)], 2, "conflict"),
    ([d(1, "a", "accept", KEEP), d(2, "b", "edit", EDIT1)], 2, "conflict"),
    ([d(1, "a", "accept", KEEP), d(2, "a", "undo", {"undoes": 1})], 1, "pending"),
    ([d(1, "a", "accept", KEEP), d(2, "b", "accept", KEEP), d(3, "a", "undo")], 2, "in_review"),
    # undo cancels the reviewer's *latest* decision in force; a second undo the one before
    ([d(1, "a", "reject", {}, "unsafe"), d(2, "a", "accept", KEEP), d(3, "a", "undo")], 1, "rejected"),
    ([d(1, "a", "reject", {}, "unsafe"), d(2, "a", "accept", KEEP), d(3, "a", "undo"), d(4, "a", "undo")], 1, "pending"),
    ([d(1, "a", "accept", KEEP), d(2, "b", "undo")], 1, "accepted"),  # b's undo does not touch a's decision
    ([d(1, "a", "accept", KEEP), d(2, "a", "accept", KEEP)], 2, "in_review"),  # one reviewer counts once
    ([d(1, "a", "accept", KEEP), d(2, "b", "reject", {}, "unsafe"), d(3, "c", "bulk_accept", KEEP)], 2, "accepted"),
    ([d(1, "a", "accept", KEEP), d(2, "c", "adjudicate", {"status": "rejected"}, "unsafe")], 1, "rejected"),
    ([d(1, "a", "accept", KEEP), d(2, "c", "send_to_review")], 1, "pending"),
    ([d(1, "a", "accept", KEEP), d(2, "c", "send_to_review"), d(3, "c", "undo")], 1, "accepted"),
    ([d(1, "a", "accept", KEEP), d(2, "c", "bulk_accept", KEEP), d(3, "c", "undo")], 2, "in_review"),
])
def test_derive_state(log, k, status):
    assert review.derive_state(log, k)["review_status"] == status


def test_derive_state_finals_and_json_after():
    s = review.derive_state([d(1, "a", "edit", json.dumps(EDIT1))], 1)
    assert (s["final_instruction"], s["final_response"]) == (EDIT1["instruction"], SW)
    s = review.derive_state([d(1, "a", "reject", {"reason": "unsafe"}, "unsafe")], 1)
    assert s["final_instruction"] is None and s["final_response"] is None
    s = review.derive_state([d(2, "b", "accept", KEEP), d(1, "a", "accept", KEEP)], 2)  # order by id, not by list
    assert s["review_status"] == "accepted" and s["reviews"] == 2
    adj = {"status": "edited", "instruction": "Fixed", "response": SW}
    assert review.derive_state([d(1, "c", "adjudicate", adj)], 3)["final_instruction"] == "Fixed"


def test_word_diff_round_trips_and_marks_words():
    a, b = "Write a short poem about the sea", "Write a long poem about the sea today"
    ops = review.word_diff(a, b)
    assert "".join(t for op, t in ops if op != "insert") == a
    assert "".join(t for op, t in ops if op != "delete") == b
    assert ("delete", "short") in ops and ("insert", "long") in ops
    ur_ops = review.word_diff(UR, UR.replace("امریکی", "برطانوی"))
    assert ("delete", "امریکی") in ur_ops and ("insert", "برطانوی") in ur_ops
    assert review.word_diff("same", "same") == [("equal", "same")]
    assert review.word_diff(None, "new") == [("insert", "new")]


# -- next_item ---------------------------------------------------------------------------------------------------------
def sw_rows(n, **kw):
    return [{"lang": "sw", "text": f"{SW} ({i})", "instruction": f"Question {i}?", **kw} for i in range(n)]


def test_next_item_order_and_fields(store):
    ids = add_candidates(store, [
        {"lang": "sw", "text": SW + " a", "instruction": "far", "score": 0.95, "label": "good"},
        {"lang": "sw", "text": SW + " b", "instruction": "none", "score": None},
        {"lang": "sw", "text": SW + " c", "instruction": "near", "score": 0.55, "label": "flawed"},
        {"lang": "sw", "text": SW + " d", "instruction": "selected", "score": 0.99, "selected": True},
        {"lang": "sw", "text": SW + " e", "instruction": "nearest", "score": 0.49},
        {"lang": "ur", "text": UR, "instruction": "other language", "score": 0.5},
    ])
    seen = []
    while (item := review.next_item(store, AMINA)) is not None:
        seen.append(item["instruction"])
        review.record_decision(store, item["id"], AMINA, "accept")
    assert seen == ["selected", "nearest", "near", "far", "none"]
    item = review.next_item(store, ZAINAB)
    assert item["id"] == ids[5]
    for key in ("text", "url", "label", "score", "label_reason", "lang", "cluster_label", "doc_id", "response"):
        assert key in item
    assert item["text"] == UR and item["lang"] == "ur" and item["k"] == 1


def test_next_item_skips_rejected_final_and_ties_by_id(store):
    ids = add_candidates(store, sw_rows(3, score=0.5))
    with store.session() as tx:
        tx.execute("UPDATE candidates SET gen_status = 'rejected' WHERE id = ?", [ids[0]])
        tx.execute("UPDATE candidates SET review_status = 'accepted' WHERE id = ?", [ids[1]])
    assert review.next_item(store, AMINA)["id"] == ids[2]
    assert review.next_item(store, BARAKA) is None  # k=1 and amina holds the lease


def test_own_lease_resumes_then_expires(store):
    add_candidates(store, sw_rows(2, score=0.5))
    carol = User("carol", "reviewer", ("sw",))
    first = review.next_item(store, AMINA, lease_seconds=0.3)
    assert review.next_item(store, AMINA, lease_seconds=0.3)["id"] == first["id"]  # a reload shows the same item
    other = review.next_item(store, BARAKA, lease_seconds=0.3)
    assert other["id"] != first["id"]
    assert review.next_item(store, carol) is None  # k=1: both items are leased
    time.sleep(0.5)
    assert review.next_item(store, carol)["id"] in {first["id"], other["id"]}  # expired leases are ignored


def test_k_from_settings_and_candidate(store):
    ids = add_candidates(store, sw_rows(1, score=0.5) + [{"lang": "ur", "text": UR, "instruction": "q", "reviews_needed": 2}])
    review.set_k(store, "sw", 2, CORA)
    carol = User("carol", "reviewer", ("sw",))
    a, b, c = (review.next_item(store, u) for u in (AMINA, BARAKA, carol))
    assert a["id"] == b["id"] == ids[0] and a["k"] == 2 and c is None
    review.record_decision(store, ids[0], AMINA, "accept")
    assert review.get_item(store, ids[0])["review_status"] == "in_review"
    assert review.next_item(store, carol) is None  # 1 done + baraka's lease = k
    review.record_decision(store, ids[0], BARAKA, "accept")
    assert review.get_item(store, ids[0])["review_status"] == "accepted"
    # the candidate's own reviews_needed applies when larger than the language's k
    u1, u2 = User("u1", "reviewer", ("ur",)), User("u2", "reviewer", ("ur",))
    assert review.next_item(store, u1)["k"] == 2 and review.next_item(store, u2)["id"] == ids[1]


def run_threads(store, users, lease_seconds=600, decide=True):
    got: dict[str, list[str]] = {u.name: [] for u in users}
    errors: list[BaseException] = []
    start = threading.Barrier(len(users))

    def work(user):
        try:
            start.wait()
            while True:
                item = review.next_item(store, user, lease_seconds=lease_seconds)
                if item is None:
                    return
                got[user.name].append(item["id"])
                if not decide:
                    return
                review.record_decision(store, item["id"], user, "accept",
                                       request_id=review.request_id_for(user, item["id"], "accept", "t"))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return got


REVIEWERS = [User(f"r{i}", "reviewer", ("sw",)) for i in range(8)]


def test_threads_k1_each_item_once(file_store):
    ids = add_candidates(file_store, sw_rows(24, score=0.5))
    got = run_threads(file_store, REVIEWERS)
    counts = Counter(cid for items in got.values() for cid in items)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 24
        assert tx.scalar("SELECT count(*) FROM candidates WHERE review_status = 'accepted'") == 24
        assert tx.scalar("SELECT count(*) FROM leases") == 0


def test_threads_k2_exactly_two_reviewers(file_store):
    ids = add_candidates(file_store, sw_rows(12, score=0.5))
    review.set_k(file_store, "sw", 2, CORA)
    got = run_threads(file_store, REVIEWERS)
    for name, items in got.items():
        assert len(items) == len(set(items)), f"{name} got an item twice"
    counts = Counter(cid for items in got.values() for cid in items)
    assert set(counts) == set(ids) and set(counts.values()) == {2}
    with file_store.session() as tx:
        pairs = tx.all("SELECT candidate_id, count(DISTINCT reviewer) FROM decisions GROUP BY 1")
        assert {n for _, n in pairs} == {2}
        assert tx.scalar("SELECT count(*) FROM candidates WHERE review_status = 'accepted'") == 12


def test_threads_claims_without_decisions(file_store):
    ids = add_candidates(file_store, sw_rows(4, score=0.5))
    got = run_threads(file_store, REVIEWERS, decide=False)
    claimed = [i for items in got.values() for i in items]
    assert sorted(claimed) == sorted(ids)  # 4 reviewers got one item each, 4 got none


def test_threads_leases_expire(file_store):
    ids = add_candidates(file_store, sw_rows(3, score=0.5))
    run_threads(file_store, REVIEWERS[:3], lease_seconds=0.2, decide=False)
    time.sleep(0.4)
    later = [review.next_item(file_store, u) for u in REVIEWERS[3:6]]
    assert sorted(i["id"] for i in later) == sorted(ids)


# -- decisions ---------------------------------------------------------------------------------------------------------
def test_idempotent_request_id(store):
    (cid,) = add_candidates(store, sw_rows(1))
    first = review.record_decision(store, cid, AMINA, "accept", request_id="amina:x:accept:1")
    again = review.record_decision(store, cid, AMINA, "accept", request_id="amina:x:accept:1")
    assert first == again
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 1


def test_idempotent_request_id_under_threads(file_store):
    (cid,) = add_candidates(file_store, sw_rows(1))
    ids, barrier = [], threading.Barrier(6)

    def go():
        barrier.wait()
        ids.append(review.record_decision(file_store, cid, AMINA, "accept", request_id="same"))

    threads = [threading.Thread(target=go) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(ids)) == 1
    with file_store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 1


def test_edit_stores_diff_and_human_version(store):
    (cid,) = add_candidates(store, sw_rows(1))
    did = review.record_decision(store, cid, AMINA, "edit", instruction="Which winger does Tottenham follow?")
    with store.session() as tx:
        after = json.loads(tx.scalar("SELECT after FROM decisions WHERE id = ?", [did]))
        versions = tx.all("SELECT version, stage, instruction FROM candidate_versions WHERE candidate_id = ? ORDER BY 1",
                          [cid])
    assert after["instruction"] == "Which winger does Tottenham follow?"
    ops = after["diff"]["instruction"]
    assert ["delete", "Question"] in ops and any(op == "insert" and "Tottenham" in text for op, text in ops)
    assert after["diff"]["response"] == [["equal", item_text(store, cid)]]
    assert versions[-1] == (2, "human", "Which winger does Tottenham follow?")
    item = review.get_item(store, cid)
    assert item["review_status"] == "edited" and item["final_instruction"] == "Which winger does Tottenham follow?"
    assert item["instruction"] == "Question 0?"  # the generated instruction stays; the edit is the final one


def item_text(store, cid):
    return review.get_item(store, cid)["response"]


def test_unchanged_edit_is_an_accept(store):
    (cid,) = add_candidates(store, sw_rows(1))
    did = review.record_decision(store, cid, AMINA, "edit", instruction="Question 0?")
    with store.session() as tx:
        assert tx.scalar("SELECT action FROM decisions WHERE id = ?", [did]) == "accept"


def test_reject_reasons(store):
    (cid,) = add_candidates(store, sw_rows(1))
    with pytest.raises(InputError):
        review.record_decision(store, cid, AMINA, "reject", reason="boring")
    with pytest.raises(InputError, match="other"):
        review.record_decision(store, cid, AMINA, "reject", reason="other", note="  ")
    review.record_decision(store, cid, AMINA, "reject", reason="other", note="an advert, not news")
    item = review.get_item(store, cid)
    assert item["review_status"] == "rejected" and item["final_response"] is None
    with store.session() as tx:
        assert tx.one("SELECT reason, note FROM decisions") == ("other", "an advert, not news")


def test_undo_last_puts_item_back_first(store):
    ids = add_candidates(store, sw_rows(3, score=0.5))
    first = review.next_item(store, AMINA)
    review.record_decision(store, first["id"], AMINA, "reject", reason="unsafe")
    second = review.next_item(store, AMINA)
    assert second["id"] != first["id"]
    undone = review.undo_last(store, AMINA, request_id="u1")
    assert undone["candidate_id"] == first["id"] and undone["action"] == "reject"
    assert review.get_item(store, first["id"])["review_status"] == "pending"
    assert review.next_item(store, AMINA)["id"] == first["id"]  # back on screen
    assert review.undo_last(store, AMINA, request_id="u1")["id"] == undone["id"]  # retried: nothing more undone
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions WHERE action = 'undo'") == 1
    assert review.undo_last(store, AMINA) is None  # nothing else in force
    assert review.progress(store, AMINA) == {"done_today": 0, "left_in_queue": 3}
    assert len(ids) == 3


def test_progress(store):
    add_candidates(store, sw_rows(4))
    for _ in range(2):
        item = review.next_item(store, AMINA)
        review.record_decision(store, item["id"], AMINA, "accept")
    item = review.next_item(store, AMINA)
    review.record_decision(store, item["id"], AMINA, "skip")
    assert review.progress(store, AMINA) == {"done_today": 2, "left_in_queue": 1}
    assert review.progress(store, BARAKA) == {"done_today": 0, "left_in_queue": 2}  # skipped item stays for others


def test_access_denied(store):
    sw_id, ur_id = add_candidates(store, sw_rows(1) + [{"lang": "ur", "text": UR, "instruction": "q"}])
    with pytest.raises(AccessDenied):
        review.record_decision(store, ur_id, AMINA, "accept")  # not her language
    for action in ("bulk_accept", "adjudicate", "send_to_review"):
        with pytest.raises(AccessDenied):
            review.record_decision(store, sw_id, AMINA, action)
    with pytest.raises(AccessDenied):
        review.record_decision(store, sw_id, None, "accept")  # forged session: no user
    with pytest.raises(AccessDenied):
        review.record_decision(store, sw_id, User("eve", "superuser"), "accept")
    with pytest.raises(AccessDenied):
        review.set_guidelines(store, "# mine now", AMINA)
    with pytest.raises(AccessDenied):
        review.set_document_lang(store, review.get_item(store, ur_id)["doc_id"], "sw", AMINA)
    with pytest.raises(AccessDenied):
        review.next_item(store, None)
    assert review.next_item(store, AMINA)["id"] == sw_id  # only her language
    review.record_decision(store, sw_id, CORA, "bulk_accept")
    assert review.get_item(store, sw_id)["review_status"] == "accepted"
    with pytest.raises(InputError):
        review.record_decision(store, sw_id, AMINA, "approve")


def test_curator_adjudicates_conflict(store):
    (cid,) = add_candidates(store, sw_rows(1))
    review.set_k(store, "sw", 2, CORA)
    review.record_decision(store, cid, AMINA, "accept")
    review.record_decision(store, cid, BARAKA, "reject", reason="poor_quality")
    assert review.get_item(store, cid)["review_status"] == "conflict"
    assert review.next_item(store, User("carol", "reviewer", ("sw",))) is None
    review.record_decision(store, cid, CORA, "adjudicate", instruction="A better question?")
    item = review.get_item(store, cid)
    assert item["review_status"] == "edited" and item["final_instruction"] == "A better question?"
    review.record_decision(store, cid, CORA, "send_to_review")
    assert review.get_item(store, cid)["review_status"] == "pending"
    assert review.next_item(store, AMINA)["id"] == cid  # her earlier decision no longer counts


def test_set_document_lang(store):
    (cid,) = add_candidates(store, [{"lang": "sw", "text": BN, "instruction": "Why was it built?"}])
    item = review.next_item(store, AMINA)
    did = review.set_document_lang(store, item["doc_id"], "bn", AMINA, candidate_id=cid, request_id="l1")
    assert review.set_document_lang(store, item["doc_id"], "bn", AMINA, request_id="l1") == did
    moved = review.get_item(store, cid)
    assert moved["lang"] == "bn" and moved["doc_lang"] == "bn"
    with store.session() as tx:
        row = tx.one("SELECT action, before, after FROM decisions WHERE id = ?", [did])
    assert row[0] == "relabel_lang" and json.loads(row[1])["lang"] == "sw" and json.loads(row[2])["lang"] == "bn"
    assert review.next_item(store, AMINA) is None
    assert review.next_item(store, User("rana", "reviewer", ("bn",)))["id"] == cid
    with pytest.raises(InputError):
        review.set_document_lang(store, item["doc_id"], "xx", CORA)


def test_drafts_and_guidelines(store):
    (cid,) = add_candidates(store, sw_rows(1))
    assert review.load_draft(store, AMINA, cid) is None
    review.save_draft(store, AMINA, cid, "Draft question?", SW)
    assert review.load_draft(store, AMINA, cid) == {"instruction": "Draft question?", "response": SW}
    assert review.load_draft(store, BARAKA, cid) is None
    review.clear_draft(store, AMINA, cid)
    assert review.load_draft(store, AMINA, cid) is None
    assert "Accept" in review.get_guidelines(store)
    review.set_guidelines(store, "# Be kind", CORA)
    assert review.get_guidelines(store) == "# Be kind"


def test_failed_write_leaves_nothing(store, monkeypatch):
    (cid,) = add_candidates(store, sw_rows(1))
    original = review.derive_state

    def boom(*a, **k):
        raise StoreError("disk full")

    monkeypatch.setattr(review.decisions, "derive_state", boom)
    with pytest.raises(StoreError):
        review.record_decision(store, cid, AMINA, "accept", request_id="r")
    monkeypatch.setattr(review.decisions, "derive_state", original)
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 0
    review.record_decision(store, cid, AMINA, "accept", request_id="r")
    assert review.get_item(store, cid)["review_status"] == "accepted"


def test_new_candidates_reach_the_queue(store):
    add_candidates(store, sw_rows(1, score=0.9))
    first = review.next_item(store, AMINA)
    review.record_decision(store, first["id"], AMINA, "accept")
    assert review.next_item(store, AMINA) is None
    (new,) = add_candidates(store, [{"lang": "sw", "text": "Habari mpya kabisa", "instruction": "New?", "score": 0.5}])
    assert review.next_item(store, AMINA)["id"] == new  # the cached order is refreshed when candidates are added
