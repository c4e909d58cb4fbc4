"""Crashes: a stage or a reviewer killed with SIGKILL in the middle of its work, then run again.

Each pipeline test builds one input store, copies it, kills a worker process (tests/crash_worker.py) running the stage
on the first copy, reruns the stage to completion there, runs it uninterrupted on the second copy and compares: same
rows, no duplicates, nothing lost, export files byte-identical. A kill inside a transaction (`--pause-write`: the worker
stops after the unit of work ran and before COMMIT) must leave nothing of that unit.

The decision tests kill a reviewer process in the middle of `record_decision` and check that the store holds only whole
decisions, that every candidate's state is what `derive_state` says of its log, and that the reviewer can tell what was
recorded (request ids, `review.progress`) and finish the item (a retry with the same request id is recorded once).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import crash_worker as cw
from conftest import add_candidates
from xinstruct import diversify, export, generate, refine, review
from xinstruct.auth import User
from xinstruct.errors import InputError
from xinstruct.store import MIGRATIONS, Store

# ---------------------------------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def workers():
    started: list[cw.Worker] = []

    def start(*args) -> cw.Worker:
        w = cw.Worker(*args)
        started.append(w)
        return w

    yield start
    for w in started:  # never leave a worker behind, even when a test fails
        w.kill()


# ---------------------------------------------------------------------------------------------------------------------
# Inputs and comparisons
# ---------------------------------------------------------------------------------------------------------------------
def add_documents(store: Store, n: int, langs=("sw", "ur")) -> None:
    """Kept documents without candidates (what ingest leaves for generate)."""
    rows = []
    for i in range(n):
        lang = langs[i % len(langs)]
        text = cw.doc_text(lang, i)
        doc_id = hashlib.sha256(text.encode()).hexdigest()[:16]
        rows.append([doc_id, doc_id, text, lang, lang, lang, "test", "kept"])
    store.write(lambda tx: tx.executemany(
        "INSERT INTO documents (id, content_hash, text, lang_declared, lang_detected, lang, source, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows))


def two_copies(tmp_path: Path, fill) -> tuple[Path, Path]:
    """An input store built by `fill(store)` and an exact copy of it.

    The file is closed before it is copied: a process that opens and closes a DuckDB file it has open (as a copy does)
    drops its own lock on it (POSIX record locks belong to the process, and any close releases them), and another
    process could then open the file at the same time."""
    a, b = tmp_path / "crashed.duckdb", tmp_path / "clean.duckdb"
    store = Store(a)
    fill(store)
    store.close()
    for suffix in ("", ".wal"):
        if Path(f"{a}{suffix}").exists():
            shutil.copy2(f"{a}{suffix}", f"{b}{suffix}")
    return a, b


def rows(store: Store, sql: str) -> list[tuple]:
    with store.session() as tx:
        return tx.all(sql)


def rounded(table: list[tuple], digits: int = 9) -> list[tuple]:
    return [tuple(round(v, digits) if isinstance(v, float) else v for v in row) for row in table]


CANDIDATES = ("SELECT id, doc_id, lang, round_id, instruction, response, version, gen_status, gen_reason, "
              "model_version, prompt_version, sampling, label, score, gain, p_good, label_reason, refine_rounds, "
              "cluster, cluster_label, cluster_distance, selected, review_status FROM candidates ORDER BY id")
VERSIONS = ("SELECT candidate_id, version, stage, instruction, label, score, reason, round_id, model_version, "
            "p_good, gain FROM candidate_versions ORDER BY ALL")


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline stages
# ---------------------------------------------------------------------------------------------------------------------
BATCH = 4


def test_generate_killed_then_rerun_equals_an_uninterrupted_run(tmp_path, workers):
    a, b = two_copies(tmp_path, lambda s: add_documents(s, 30))
    cfg = lambda: generate.GenerateConfig(batch_size=BATCH, progress=False)  # noqa: E731
    # the model sleeps 0.3 s per batch; stop inside the 4th batch's transaction (3 batches committed)
    w = workers("generate", a, "--sleep", "0.3", "--batch", BATCH, "--pause-write", "4")
    clean = Store(b)
    full = generate.run(clean, cfg(), model=cw.generator_model())  # meanwhile, the uninterrupted run on the copy
    w.wait_for("PAUSED")
    w.kill()
    assert not any(line.startswith("FINISHED") for line in w.lines)

    crashed = Store(a)
    cands = rows(crashed, "SELECT id FROM candidates")
    versions = rows(crashed, "SELECT candidate_id, count(*) FROM candidate_versions GROUP BY 1")
    assert len(cands) == 3 * BATCH, "the batch in flight left nothing, the committed ones are whole"
    assert {c for c, _ in versions} == {c for (c,) in cands} and {n for _, n in versions} == {1}

    again = generate.run(crashed, cfg(), model=cw.generator_model())
    assert again["written"] + len(cands) == full["written"] == 30
    assert rows(crashed, CANDIDATES) == rows(clean, CANDIDATES)
    assert rows(crashed, VERSIONS) == rows(clean, VERSIONS)
    assert rows(crashed, "SELECT count(*), count(DISTINCT doc_id) FROM candidates") == [(30, 30)]
    assert full["rejected"] > 0 and full["ok"] > 0  # both paths ran


def refine_input(store: Store) -> None:
    add_candidates(store, [{"lang": "sw", "text": cw.doc_text("sw", i), "instruction": cw.refine_instruction(i)}
                           for i in range(24)])


@pytest.mark.parametrize("pause_write", [
    3,  # labelling: two batches labelled, the third inside its transaction
    # refinement round 2 starts: labels (writes 1-6) and round 1 (7-10) complete, round 2's first write in flight
    11,  # refinement round 2 starts: the rerun must run round 2 (a crash between rounds once stopped it)
], ids=["while_labelling", "between_refine_rounds"])
def test_refine_killed_then_rerun_equals_an_uninterrupted_run(tmp_path, workers, pause_write):
    a, b = two_copies(tmp_path, refine_input)
    cfg = lambda: refine.RefineConfig(batch_size=BATCH, rounds=3, evaluator="gain", progress=False)  # noqa: E731
    w = workers("refine", a, "--sleep", "0.05", "--batch", BATCH, "--pause-write", pause_write)
    clean = Store(b)
    model = cw.refine_model()
    full = refine.run(clean, cfg(), model=model, refiner=model)
    w.wait_for("PAUSED")
    w.kill()
    crashed = Store(a)
    labelled = rows(crashed, "SELECT count(*) FROM candidates WHERE label IS NOT NULL")[0][0]
    assert labelled == min(24, BATCH * (pause_write - 1)), "labels are written whole batches at a time"

    model = cw.refine_model()
    refine.run(crashed, cfg(), model=model, refiner=model)
    assert full["rounds"] >= 2 and full["refined"] > 0  # the input really needs several rounds
    assert rounded(rows(crashed, CANDIDATES)) == rounded(rows(clean, CANDIDATES))
    assert rounded(rows(crashed, VERSIONS)) == rounded(rows(clean, VERSIONS))


def diversify_input(store: Store) -> None:
    add_candidates(store, [
        {"lang": lang, "text": cw.doc_text(lang, i) + lang,
         "instruction": f"Explain {cw.TOPICS[i % 5]} in detail, case {i}",
         "label": "bad" if i % 4 == 1 else "good", "score": 0.3 + 0.05 * (i % 9)}
        for lang in ("sw", "ur") for i in range(15)])


def test_diversify_killed_then_rerun_equals_an_uninterrupted_run(tmp_path, workers):
    a, b = two_copies(tmp_path, diversify_input)
    cfg = lambda: diversify.DiversifyConfig(target=3, k=3, progress=False)  # noqa: E731
    # writes: sw embeddings, sw clusters, ur embeddings, ur clusters; stop inside the last one
    w = workers("diversify", a, "--pause-write", "4")
    clean = Store(b)
    diversify.run(clean, cfg(), embedder=cw.TopicEmbedder())
    w.wait_for("PAUSED")
    w.kill()
    crashed = Store(a)
    assert rows(crashed, "SELECT lang, count(cluster) FROM candidates GROUP BY 1 ORDER BY 1") == [("sw", 15), ("ur", 0)]
    assert rows(crashed, "SELECT count(*) FROM embeddings") == [(30,)]

    diversify.run(crashed, cfg(), embedder=cw.TopicEmbedder())
    assert rounded(rows(crashed, CANDIDATES), 6) == rounded(rows(clean, CANDIDATES), 6)
    embeddings = "SELECT * FROM embeddings ORDER BY ALL"
    assert rows(crashed, embeddings) == rows(clean, embeddings)
    assert rows(clean, "SELECT lang, count(*) FROM candidates WHERE selected GROUP BY 1 ORDER BY 1") == [("sw", 3),
                                                                                                      ("ur", 3)]


def export_input(store: Store) -> None:
    ids = add_candidates(store, [
        {"lang": ("sw", "ur")[i % 2], "text": cw.doc_text("sw", i), "instruction": f"Summarize report {i} for me.",
         "label": "good", "score": 0.5 + i / 100} for i in range(17)])
    amina, zainab = User("amina", "reviewer", ("sw",)), User("zainab", "reviewer", ("ur",))
    for i, cid in enumerate(ids[:12]):
        user = amina if i % 2 == 0 else zainab
        if i % 3 == 2:
            review.record_decision(store, cid, user, "reject", reason="poor_quality")
        elif i % 3 == 1:
            review.record_decision(store, cid, user, "edit", instruction=f"Edited instruction {i}, please.")
        else:
            review.record_decision(store, cid, user, "accept")


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_date(card: bytes) -> bytes:
    return b"\n".join(line for line in card.split(b"\n") if not line.startswith(b"- exported "))


def test_export_killed_then_rerun_gives_byte_identical_files(tmp_path, workers):
    fmt, shard_rows = "hf", 5  # 17 rows: four Parquet shards
    a, b = two_copies(tmp_path, export_input)
    out_a, out_b = tmp_path / "out_crashed", tmp_path / "out_clean"
    cfg = lambda out, **kw: export.ExportConfig(out=out, format=fmt, status="all", shard_rows=shard_rows, **kw)  # noqa
    # stop after the COPY of the second shard finished, before the shard gets its final name
    w = workers("export", a, "--out", out_a, "--format", fmt, "--shard-rows", shard_rows, "--pause-rename", 2)
    clean = Store(b)
    full = export.export(clean, cfg(out_b))
    w.wait_for("PAUSED")
    w.kill()
    left = folder_files(out_a)
    assert any(name.endswith(".partial") for name in left) and "manifest.json" not in left
    assert "data/train-00000-of-00004.parquet" in left and "data/train-00001-of-00004.parquet.partial" in left
    crashed = Store(a)
    assert rows(crashed, "SELECT count(*) FROM exports") == [(0,)]
    with pytest.raises(InputError, match="not empty"):  # a half-written folder is never silently mixed with a new run
        export.export(crashed, cfg(out_a))

    again = export.export(crashed, cfg(out_a, overwrite=True))
    files_a, files_b = folder_files(out_a), folder_files(out_b)
    assert sorted(files_a) == sorted(files_b), "no .partial or stale file left behind"
    for name in files_a:
        if name == "README.md":
            assert without_date(files_a[name]) == without_date(files_b[name])
        else:
            assert files_a[name] == files_b[name], f"{name} differs"
    assert again.rows == full.rows == 17 and again.content_hash == full.content_hash
    assert len([n for n in files_a if n.startswith("data/train-")]) == 4
    assert rows(crashed, "SELECT count(*) FROM exports") == [(1,)]


# ---------------------------------------------------------------------------------------------------------------------
# A reviewer killed in the middle of a decision
# ---------------------------------------------------------------------------------------------------------------------
AMINA = User("amina", "reviewer", ("sw",))


def decision_input(store: Store) -> None:
    add_candidates(store, [{"lang": "sw", "text": cw.doc_text("sw", i), "instruction": f"Summarize report {i} for me.",
                            "score": 0.5} for i in range(12)])


def check_whole_decisions(store: Store, done: dict[str, int], k: int = 1) -> None:
    """Every candidate's stored state is derive_state of its log; every reported decision is there exactly once."""
    with store.session() as tx:
        log = tx.dicts("SELECT id, request_id, candidate_id, reviewer, action, after, reason FROM decisions "
                       "ORDER BY id")
        cands = tx.dicts("SELECT id, review_status, final_instruction, final_response FROM candidates")
        humans = tx.scalar("SELECT count(*) FROM candidate_versions WHERE stage = 'human'")
    by_rid = Counter(d["request_id"] for d in log)
    for rid, did in done.items():
        assert by_rid[rid] == 1 and next(d["id"] for d in log if d["request_id"] == rid) == did
    for c in cands:
        state = review.derive_state([d for d in log if d["candidate_id"] == c["id"]], k)
        assert (c["review_status"], c["final_instruction"], c["final_response"]) == (
            state["review_status"], state["final_instruction"], state["final_response"]), c["id"]
    assert humans == sum(1 for d in log if d["action"] == "edit"), "an edit and its human version go together"


def reported(lines: list[str]) -> tuple[dict[str, int], list[str]]:
    done = {p[1]: int(p[2]) for p in (line.split() for line in lines) if p[0] == "DONE"}
    intents = [line.split()[1] for line in lines if line.startswith("INTENT")]
    return done, [rid for rid in intents if rid not in done]


def test_reviewer_killed_inside_a_decision_leaves_only_whole_decisions(tmp_path, workers):
    path = tmp_path / "review.duckdb"
    prepared = Store(path)
    decision_input(prepared)
    prepared.close()
    w = workers("decide", path, "--user", "amina", "--langs", "sw", "--pause-decision", "7")
    w.wait_for("PAUSED")
    w.kill()
    done, in_flight = reported(w.lines)
    assert len(done) == 6 and len(in_flight) == 1
    (rid,) = in_flight

    store = Store(path)
    check_whole_decisions(store, done)
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 6
        assert tx.scalar("SELECT count(*) FROM decisions WHERE request_id = ?", [rid]) == 0  # killed before COMMIT
    # the reviewer can see what was recorded: 5 of the 6 were accept/edit/reject (one skip)
    assert review.progress(store, AMINA)["done_today"] == sum(
        1 for r in done if r.split(":")[2] in ("accept", "edit", "reject"))
    # ... gets the item they were on back first (its lease was committed with the claim) and can finish it once
    cid, action = rid.split(":")[1], rid.split(":")[2]
    assert review.next_item(store, AMINA)["id"] == cid
    kw = {"reason": "poor_quality"} if action == "reject" else {}
    kw |= {"instruction": "Edited after the crash."} if action == "edit" else {}
    first = review.record_decision(store, cid, AMINA, action, request_id=rid, **kw)
    assert review.record_decision(store, cid, AMINA, action, request_id=rid, **kw) == first
    for r, did in done.items():  # a retry of a recorded decision records nothing new
        c, act = r.split(":")[1], r.split(":")[2]
        kw = {"reason": "poor_quality"} if act == "reject" else {"instruction": "x"} if act == "edit" else {}
        assert review.record_decision(store, c, AMINA, act, request_id=r, **kw) == did
    check_whole_decisions(store, {**done, rid: first})
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM decisions") == 7


def test_reviewer_killed_at_a_random_moment_leaves_a_consistent_store(tmp_path, workers):
    path = tmp_path / "review.duckdb"
    prepared = Store(path)
    decision_input(prepared)
    prepared.close()
    w = workers("decide", path, "--user", "amina", "--langs", "sw")
    for _ in range(4):
        w.wait_for("DONE")
    time.sleep(random.uniform(0.0, 0.08))  # claiming, deciding or committing: wherever it is
    w.kill()
    done, in_flight = reported(w.lines)
    store = Store(path)
    with store.session() as tx:
        stored = dict(tx.all("SELECT request_id, id FROM decisions"))
    # the decision in flight is either whole in the log or absent; nothing else is there
    assert set(stored) - set(done) <= set(in_flight)
    check_whole_decisions(store, done)
    for rid in in_flight:  # the reviewer retries what they did not see confirmed: recorded once either way
        cid, action = rid.split(":")[1], rid.split(":")[2]
        kw = {"reason": "poor_quality"} if action == "reject" else {"instruction": "x"} if action == "edit" else {}
        did = review.record_decision(store, cid, AMINA, action, request_id=rid, **kw)
        assert stored.get(rid, did) == did
        done[rid] = did
    check_whole_decisions(store, done)


# ---------------------------------------------------------------------------------------------------------------------
# The store itself: an upgrade killed half way, a waiting process killed
# ---------------------------------------------------------------------------------------------------------------------
def test_an_upgrade_killed_between_migrations_completes_on_the_next_open(tmp_path, workers):
    path = tmp_path / "old.duckdb"
    old = Store(path, migrate=False)
    old.migrate(upto=MIGRATIONS[0][0])
    add_candidates(old, [{"lang": "sw", "text": cw.doc_text("sw", i), "instruction": f"Summarize report {i}."}
                         for i in range(5)])
    with old.session() as tx:
        before = tx.all("SELECT id, instruction, response FROM candidates ORDER BY id")
    old.close()  # (else the worker waits for this process's idle grace to end)
    w = workers("migrate", path, "--pause-write", "2")  # the second pending migration, inside its transaction
    w.wait_for("PAUSED")
    w.kill()
    assert Store(path, migrate=False).migrations() == [MIGRATIONS[0][0], MIGRATIONS[1][0]]  # one whole, one not at all
    upgraded = Store(path)
    assert upgraded.migrations() == sorted(name for name, _ in MIGRATIONS)
    with upgraded.session() as tx:
        assert tx.all("SELECT id, instruction, response FROM candidates ORDER BY id") == before


def test_a_waiting_process_killed_does_not_hold_up_the_holder(tmp_path, workers):
    path = tmp_path / "held.duckdb"
    store = Store(path)
    markers = lambda: list(tmp_path.glob("held.duckdb.wait.*"))  # noqa: E731
    with store.session():
        w = workers("open", path)  # it cannot open the file while this session holds it: it waits, with a marker
        w.wait_for("READY")
        deadline = time.monotonic() + 60
        while not markers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert markers(), "the waiting process left its marker"
        w.kill()
    start = time.monotonic()
    for i in range(5):  # the holder goes on at once
        store.set_setting("after", str(i))

    def busy() -> None:  # a session opened while another is open looks for waiters: it finds the dead one's marker
        with store.session():
            assert store.get_setting("after") == "4"

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the holder waited for a waiter that is dead"
    assert time.monotonic() - start < 10
    assert not markers(), "the stale marker was removed"


def test_a_session_inside_a_session_does_not_wait_for_itself_while_another_process_waits(tmp_path, workers):
    path = tmp_path / "nested.duckdb"
    store = Store(path)
    result: dict[str, float] = {}

    def nested() -> None:
        with store.session():
            w = workers("open", path)  # waits for the file, with a marker: this process should hand the file over...
            w.wait_for("READY")
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob("nested.duckdb.wait.*")) and time.monotonic() < deadline:
                time.sleep(0.05)
            start = time.monotonic()
            with store.session() as tx:  # ...but a session opened inside a running one cannot wait for that one
                tx.scalar("SELECT 1")
            result["inner"] = time.monotonic() - start
        result["waiter"] = float(w.finish(timeout=60)["applied"] == [])  # and the waiter gets its turn afterwards

    t = threading.Thread(target=nested, daemon=True)
    t.start()
    t.join(90)
    assert not t.is_alive(), "a session inside a session hung while another process waited"
    assert result["inner"] < 5 and result["waiter"] == 1.0
