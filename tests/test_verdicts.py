"""The review rule exists twice, in Python (`review.derive_state`, the rule of record) and in SQL
(`store.curation.verdicts_sql`, kept because agreement filters and reviewer statistics run over the whole log). This
replays random decision logs, written as `review.record_decision` writes them, through both and checks they agree:
which reviewers' verdicts are in force, what each is, and what status they give.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xinstruct import review, vocab
from xinstruct.store import Store
from xinstruct.store import curation as q

REVIEWERS = ("ana", "ben", "chi", "cur")
TEXTS = ("Describe the town.", "Summarize the text.", "List the dishes.")
ORIGINAL = ("Write about it.", "native text")

STEP = st.tuples(
    st.sampled_from(REVIEWERS),
    st.sampled_from([vocab.ACCEPT, vocab.EDIT, vocab.REJECT, vocab.SKIP, vocab.UNDO, vocab.UNDO, vocab.SEND_TO_REVIEW,
                     vocab.BULK_ACCEPT, vocab.ADJUDICATE, vocab.RELABEL_LANG]),
    st.sampled_from(TEXTS),
    st.booleans(),  # edit the response too
    st.integers(0, 2),  # which candidate
)


def build_logs(steps) -> dict[str, list[dict]]:
    """Decision logs per candidate, with `after` as record_decision writes it (an undo names the reviewer's latest
    decision in force, and an undo with nothing to take back is refused, so it is not logged)."""
    logs: dict[str, list[dict]] = {}
    next_id = 1
    for reviewer, action, text, edit_response, cand in steps:
        cid = f"c{cand}"
        log = logs.setdefault(cid, [])
        if action == vocab.UNDO:
            mine = [d for d in review.effective_decisions(log) if d["reviewer"] == reviewer]
            if not mine:
                continue
            after = {"undoes": mine[-1]["id"], "action": mine[-1]["action"]}
        elif action in (vocab.ACCEPT, vocab.BULK_ACCEPT):
            after = {"instruction": ORIGINAL[0], "response": ORIGINAL[1]}
        elif action == vocab.EDIT:
            after = {"instruction": text, "response": text if edit_response else ORIGINAL[1]}
        elif action == vocab.REJECT:
            after = {"reason": "poor_quality"}
        elif action == vocab.ADJUDICATE:
            after = {"status": vocab.EDITED, "instruction": text, "response": ORIGINAL[1]}
        else:
            after = None
        log.append({"id": next_id, "reviewer": reviewer, "action": action, "after": after,
                    "reason": "poor_quality" if action == vocab.REJECT else None})
        next_id += 1
    return logs


def python_verdicts(log: list[dict]) -> dict[str, tuple[str, tuple | None]]:
    """Per reviewer, the verdict derive_state counts: the latest accept / edit / reject among the decisions in force."""
    latest = {}
    for d in review.effective_decisions(log):
        if d["action"] in vocab.VERDICTS:
            text = (d["after"]["instruction"], d["after"]["response"]) if d["action"] == vocab.EDIT else None
            latest[d["reviewer"]] = (d["action"], text)
    return latest


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(STEP, max_size=24))
def test_sql_verdicts_agree_with_derive_state(steps):
    logs = build_logs(steps)
    store = _STORE
    store.write(lambda tx: tx.execute("DELETE FROM decisions"))
    rows = [[d["id"], cid, d["reviewer"], d["action"], None if d["after"] is None else json.dumps(d["after"]),
             d["reason"]] for cid, log in logs.items() for d in log]
    if rows:
        store.write(lambda tx: tx.executemany(
            "INSERT INTO decisions (id, candidate_id, reviewer, action, after, reason) VALUES (?, ?, ?, ?, ?, ?)", rows))
    sql = {}
    for v in q.verdicts_in_force(store):
        sql.setdefault(v.candidate_id, {})[v.reviewer] = v
    multi = {(v.candidate_id, v.reviewer) for v in q.verdicts_in_force(store, multi_only=True)}

    for cid, log in logs.items():
        py = python_verdicts(log)
        got = sql.get(cid, {})
        assert set(got) == set(py), (log, got)
        for reviewer, (action, text) in py.items():
            assert got[reviewer].verdict == action and got[reviewer].keep == (action != vocab.REJECT)
        # equal keys exactly where derive_state sees agreement (same action; same text for edits)
        for a in py:
            for b in py:
                assert (got[a].verdict_key == got[b].verdict_key) == (py[a] == py[b]), (log, a, b)
        # the multi-reviewer form: the same verdicts, of candidates two or more people ever gave a verdict on
        ever = {d["reviewer"] for d in log if d["action"] in vocab.VERDICTS}
        assert {r for c, r in multi if c == cid} == (set(py) if len(ever) >= 2 else set())

        # and the status derive_state gives follows from the SQL verdicts, whenever no curator decides
        curator = [d for d in review.effective_decisions(log) if d["action"] in (vocab.BULK_ACCEPT, vocab.ADJUDICATE)]
        if curator:
            continue
        n = len(got)
        state = review.derive_state(log, max(n, 1))
        assert state["reviews"] == n
        keys = {v.verdict_key for v in got.values()}
        if n == 0:
            assert state["review_status"] == vocab.PENDING
        elif len(keys) == 1:
            assert state["review_status"] == vocab.STATUS_OF[next(iter(got.values())).verdict]
        else:
            assert state["review_status"] == vocab.CONFLICT
        if n:
            assert review.derive_state(log, n + 1)["review_status"] == vocab.IN_REVIEW


_STORE = Store(":memory:")


def test_a_taken_back_verdict_and_one_before_send_to_review_are_not_in_force(store):
    """Pinned examples of the two ways a verdict stops counting."""
    after = json.dumps({"instruction": "x", "response": "y"})
    rows = [
        [1, "c1", "ana", vocab.ACCEPT, after], [2, "c1", "ben", vocab.REJECT, None],
        [3, "c1", "ana", vocab.UNDO, json.dumps({"undoes": 1, "action": vocab.ACCEPT})],
        [4, "c2", "ana", vocab.ACCEPT, after], [5, "c2", "cur", vocab.SEND_TO_REVIEW, None],
        [6, "c2", "ben", vocab.EDIT, after],
    ]
    store.write(lambda tx: tx.executemany(
        "INSERT INTO decisions (id, candidate_id, reviewer, action, after) VALUES (?, ?, ?, ?, ?)", rows))
    got = [(v.candidate_id, v.reviewer, v.verdict) for v in q.verdicts_in_force(store)]
    assert got == [("c1", "ben", vocab.REJECT), ("c2", "ben", vocab.EDIT)]


def test_the_sql_is_composed_not_rewritten():
    """The multi-reviewer form is the full form plus one condition, built from parts (no str.replace on SQL text)."""
    assert "count(DISTINCT reviewer) >= 2" in q.MULTI_VERDICTS_SQL
    assert "count(DISTINCT reviewer)" not in q.VERDICTS_SQL
    assert q.VERDICTS_SQL == q.verdicts_sql(multi_only=False)
