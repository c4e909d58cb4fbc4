"""Ingest: every format, idempotence, filters with reasons, language ID, near-duplicates, and every bad-input case."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from conftest import PACKAGE_DATA, write_jsonl
from xinstruct.errors import InputError
from xinstruct.ingest import IngestConfig, boilerplate_reason, clean_text, ingest
from xinstruct.store import Store

SW = [
    "Wakulima wa kahawa katika mkoa wa Kilimanjaro wameanza kutumia mbinu mpya za kumwagilia mashamba yao kwa njia ya "
    "matone. Mbinu hii inasaidia kuokoa maji wakati wa kiangazi na kuongeza mavuno kwa kiasi kikubwa. Afisa kilimo wa "
    "wilaya alisema kwamba zaidi ya wakulima mia tatu wamepata mafunzo tangu mwezi Machi, na wengi wao wameripoti kuwa "
    "miti yao ya kahawa sasa inazaa matunda mengi zaidi kuliko miaka iliyopita. Serikali inapanga kupanua mpango huo.",
    "Ugali ni chakula kikuu katika nchi nyingi za Afrika Mashariki. Hupikwa kwa kuchemsha maji kisha kuongeza unga wa "
    "mahindi kidogo kidogo huku ukikoroga kwa mwiko mpaka uwe mzito. Watu wengi hula ugali pamoja na mboga za majani, "
    "maharage, samaki au nyama. Katika familia nyingi, ugali huliwa kwa mikono na kila mtu huchukua kipande kidogo na "
    "kukitumbukiza kwenye mchuzi. Ni chakula cha bei nafuu kinachoshibisha kwa muda mrefu.",
]


def cfg(**kw):
    return IngestConfig(progress=False, **kw)


def docs(store):
    with store.session() as tx:
        return tx.dicts("SELECT * FROM documents ORDER BY source_line")


def test_jsonl_ingest_keeps_good_text_with_language_and_url(store, tmp_path):
    f = write_jsonl(tmp_path / "sw.jsonl", [{"text": t, "url": f"https://x/{i}", "timestamp": "2024"} for i, t in enumerate(SW)])
    stats = ingest(store, [f], cfg(lang="sw"))
    assert stats.kept == 2 and stats.read == 2
    rows = docs(store)
    assert [r["lang_detected"] for r in rows] == ["sw", "sw"]
    assert rows[0]["url"] == "https://x/0" and rows[0]["status"] == "kept" and not rows[0]["lang_mismatch"]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "txt"])
def test_every_format_plain_and_gzipped(store, tmp_path, fmt, gz):
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, [{"text": t} for t in SW])
    elif fmt == "csv":
        pd.DataFrame({"text": SW, "url": ["u1", "u2"]}).to_csv(path, index=False)
    elif fmt == "parquet":
        pd.DataFrame({"text": SW}).to_parquet(path)
    else:
        path.write_text("\n\n".join(SW) + "\n", encoding="utf-8")
    if gz:
        gz_path = path.with_name(path.name + ".gz")
        gz_path.write_bytes(gzip.compress(path.read_bytes()))
        path = gz_path
    stats = ingest(store, [path], cfg(lang="sw"))
    assert stats.kept == 2, stats.as_dict()


def test_reingesting_the_same_file_adds_nothing(store, tmp_path):
    f = write_jsonl(tmp_path / "sw.jsonl", [{"text": t} for t in SW])
    ingest(store, [f], cfg(lang="sw"))
    again = ingest(store, [f], cfg(lang="sw"))
    assert again.kept == 0 and again.already_stored == 2
    assert len(docs(store)) == 2


def test_custom_field_names(store, tmp_path):
    f = write_jsonl(tmp_path / "x.jsonl", [{"body": SW[0], "link": "https://a"}])
    ingest(store, [f], cfg(lang="sw", text_field="body", url_field="link"))
    assert docs(store)[0]["url"] == "https://a"


def test_drops_keep_their_reason(store, tmp_path):
    near = SW[0].replace("mia tatu", "mia nne").replace("Machi", "Aprili")
    boiler = "\n".join(["Nyumbani | Habari | Michezo", "Ingia", "Jisajili", "Wasiliana nasi", "© 2024 Haki zote",
                        "Sera ya faragha", "Vidakuzi (cookies)"] * 6)
    english = ("The farmers in the region have started to use new irrigation methods that save water during the dry "
               "season and increase yields. The district officer said that more than three hundred farmers were trained.")
    rows = [{"text": SW[0]}, {"text": SW[0]}, {"text": near}, {"text": "Habari fupi."}, {"text": boiler},
            {"text": english * 2}, {"text": "x" * 5000}]
    f = write_jsonl(tmp_path / "mix.jsonl", rows)
    stats = ingest(store, [f], cfg(lang="sw"))
    by_line = {r["source_line"]: r for r in docs(store)}
    assert by_line[1]["status"] == "kept"
    assert stats.already_stored == 1  # identical line: same id, stored once
    assert by_line[3]["drop_reason"] == "near_duplicate"
    assert by_line[4]["drop_reason"] == "too_short"
    assert by_line[5]["drop_reason"] == "boilerplate"
    assert by_line[6]["drop_reason"] == "language" and by_line[6]["lang_detected"] == "en" and by_line[6]["lang_mismatch"]
    assert by_line[7]["drop_reason"] == "too_long"
    assert stats.kept + sum(stats.dropped.values()) + stats.already_stored == stats.read


def test_exact_duplicate_from_another_source_is_dropped_against_the_store(store, tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": SW[1], "url": "https://a"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": "  " + SW[1].upper() + " ", "url": "https://b"}])
    ingest(store, [a], cfg(lang="sw"))
    ingest(store, [b], cfg(lang="sw"))
    dropped = [r for r in docs(store) if r["status"] == "dropped"]
    assert len(dropped) == 1 and dropped[0]["drop_reason"] == "exact_duplicate" and dropped[0]["url"] == "https://b"


def test_near_duplicate_across_separate_ingests(store, tmp_path):
    ingest(store, [write_jsonl(tmp_path / "a.jsonl", [{"text": SW[0]}])], cfg(lang="sw"))
    edited = SW[0].replace("kahawa", "chai", 1).replace("tatu", "nne")
    ingest(store, [write_jsonl(tmp_path / "b.jsonl", [{"text": edited}])], cfg(lang="sw"))
    assert [r["drop_reason"] for r in docs(store)].count("near_duplicate") == 1


def test_language_id_on_our_own_demo_corpus_in_all_ten_languages(store):
    files = sorted((PACKAGE_DATA / "demo").glob("*.jsonl"))
    assert len(files) == 10
    ingest(store, files, cfg())
    with store.session() as tx:
        rows = tx.all("SELECT lang, lang_detected FROM documents WHERE meta->>'expect' = 'keep'")
    wrong = [(lang, det) for lang, det in rows if det != lang and not (lang == "id" and det == "ms")]
    assert len(rows) >= 200 and len(wrong) <= len(rows) // 50, wrong


def test_demo_corpus_bad_documents_are_dropped_for_the_expected_reason(store):
    files = sorted((PACKAGE_DATA / "demo").glob("*.jsonl"))
    ingest(store, files, cfg())
    with store.session() as tx:
        rows = tx.all("SELECT meta->>'expect', status, drop_reason, lang FROM documents")
    good_dropped = [r for r in rows if r[0] == "keep" and r[1] != "kept"]
    assert len(good_dropped) <= 3, good_dropped
    for expect in ("too_short", "near_duplicate", "boilerplate", "language"):
        hits = [r for r in rows if r[0] == f"drop:{expect}"]
        assert sum(r[2] == expect for r in hits) >= len(hits) - 2, (expect, hits)


# --- bad input -----------------------------------------------------------------------------------------------------
def test_malformed_json_lines_are_skipped_and_reported_the_rest_stored(store, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"text": SW[0]}) + "\n{not json\n[1, 2]\n" + json.dumps({"text": SW[1]}) + "\n", encoding="utf-8")
    stats = ingest(store, [f], cfg(lang="sw"))
    assert stats.kept == 2
    messages = [str(i) for i in stats.issues]
    assert any("bad.jsonl:2" in m and "malformed JSON" in m for m in messages)
    assert any("bad.jsonl:3" in m and "not an object" in m for m in messages)


def test_invalid_utf8_line_is_skipped_with_line_number(store, tmp_path):
    f = tmp_path / "enc.jsonl"
    f.write_bytes(json.dumps({"text": SW[0]}).encode() + b"\n" + b'{"text": "caf\xe9 ' + b"a" * 400 + b'"}\n')
    stats = ingest(store, [f], cfg(lang="sw"))
    assert stats.kept == 1 and "enc.jsonl:2: invalid UTF-8" in str(stats.issues[0])


def test_bom_is_accepted(store, tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": SW[0]}).encode() + b"\n")
    assert ingest(store, [f], cfg(lang="sw")).kept == 1


def test_missing_text_field_names_the_field_and_the_option(store, tmp_path):
    f = write_jsonl(tmp_path / "nofield.jsonl", [{"body": SW[0]}])
    stats = ingest(store, [f], cfg(lang="sw"))
    assert stats.kept == 0 and "--text-field" in str(stats.issues[0]) and "nofield.jsonl:1" in str(stats.issues[0])


def test_empty_file_ingests_nothing_without_error(store, tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    assert ingest(store, [f], cfg(lang="sw")).read == 0


def test_binary_file_is_refused_and_nothing_stored_is_touched(store, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": SW[0]}])
    ingest(store, [good], cfg(lang="sw"))
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InputError, match="photo.jsonl.*binary"):
        ingest(store, [binary], cfg(lang="sw"))
    assert len(docs(store)) == 1


def test_unknown_language_code(store, tmp_path):
    f = write_jsonl(tmp_path / "x.jsonl", [{"text": SW[0], "lang": "xx"}, {"text": SW[1], "lang": "sw"}])
    with pytest.raises(InputError, match="unknown language code 'zz'"):
        ingest(store, [f], cfg(lang="zz"))
    stats = ingest(store, [f], cfg())
    assert stats.kept == 1 and "x.jsonl:1: unknown language code 'xx'" in str(stats.issues[0])


def test_a_20_mb_document_is_stored_cut_and_dropped_as_too_long(store, tmp_path):
    f = write_jsonl(tmp_path / "huge.jsonl", [{"text": "neno " * 4_000_000}, {"text": SW[0]}])
    stats = ingest(store, [f], cfg(lang="sw"))
    huge = docs(store)[0]
    assert stats.kept == 1 and huge["drop_reason"] == "too_long" and len(huge["text"]) == 10_000
    assert "20,000,000 characters" in huge["drop_detail"] or "19,999,999 characters" in huge["drop_detail"]


def test_unknown_extension_and_missing_file_are_refused_before_anything_is_written(store, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": SW[0]}])
    (tmp_path / "notes.docx").write_bytes(b"PK")
    with pytest.raises(InputError, match="unknown file type"):
        ingest(store, [good, tmp_path / "notes.docx"], cfg(lang="sw"))
    with pytest.raises(InputError, match="no such file"):
        ingest(store, [good, tmp_path / "missing.jsonl"], cfg(lang="sw"))
    assert docs(store) == []


def test_clean_text_and_boilerplate_are_pure():
    assert clean_text("a\u00a0 b\r\n\r\n\r\n\r\nc\x07") == "a b\n\nc"
    assert boilerplate_reason(SW[0]) is None
    assert "short" in boilerplate_reason("Home\nAbout\nContact\nLogin\nShop\nCart")


# --- worker processes ----------------------------------------------------------------------------------------------
def _corpus_with_duplicates_across_batches(tmp_path):
    """The demo corpus of all ten languages, then near and exact copies of early documents placed in later batches."""
    rows = [json.loads(line) for f in sorted((PACKAGE_DATA / "demo").glob("*.jsonl")) for line in f.open(encoding="utf-8")]
    kept = [r for r in rows if r.get("expect") == "keep"]
    copies = [{"text": r["text"].replace(" ", "  ", 3) + " ", "url": "https://copy"} for r in kept[:5]]
    edits = [{"text": " ".join(w if n % 40 else w.upper() + "x" for n, w in enumerate(r["text"].split())), "lang": r["lang"]}
             for r in kept[5:10]]
    return write_jsonl(tmp_path / "all.jsonl", rows + copies + edits)


def _documents(store):
    with store.session() as tx:
        return tx.all("SELECT id, status, drop_reason, drop_detail, lang, lang_detected, minhash, source_line "
                      "FROM documents ORDER BY id")


@pytest.fixture
def submitted(monkeypatch):
    """Sizes of the batches handed to worker processes."""
    import xinstruct.ingest as ingest_mod

    sizes: list[int] = []

    class CountingPool(ingest_mod.ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            sizes.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "ProcessPoolExecutor", CountingPool)
    return sizes


def test_worker_processes_store_exactly_what_one_process_stores(tmp_path, submitted):
    f = _corpus_with_duplicates_across_batches(tmp_path)
    one, many = Store(tmp_path / "one.duckdb"), Store(tmp_path / "many.duckdb")
    a = ingest(one, [f], cfg(batch_size=40, workers=1))
    assert submitted == []
    b = ingest(many, [f], cfg(batch_size=40, workers=2))
    assert len(submitted) == -(-a.read // 40) and sum(submitted) == a.read  # every batch went to the workers
    assert a.as_dict() == b.as_dict()
    assert a.dropped["near_duplicate"] >= 5 and a.dropped["exact_duplicate"] >= 5
    assert _documents(one) == _documents(many)


def test_many_small_files_share_the_workers(tmp_path, submitted):
    files = sorted((PACKAGE_DATA / "demo").glob("*.jsonl"))  # each under one batch of 40
    one, many = Store(tmp_path / "one.duckdb"), Store(tmp_path / "many.duckdb")
    a = ingest(one, files, cfg(batch_size=40, workers=1))
    b = ingest(many, files, cfg(batch_size=40, workers=2))
    assert len(submitted) == len(files) and a.as_dict() == b.as_dict() and a.files == 10
    assert _documents(one) == _documents(many)
    with many.session() as tx:
        assert tx.scalar("SELECT count(DISTINCT source) FROM documents") == 10


def test_an_error_in_a_later_file_comes_after_the_earlier_files_are_stored(tmp_path, monkeypatch, submitted):
    import xinstruct.ingest as ingest_mod

    read = ingest_mod.read_records

    def failing(path, cfg, issues):
        for n, rec in enumerate(read(path, cfg, issues)):
            if path.name == "bad.jsonl" and n == 25:
                raise InputError("the disk went away", path=str(path), line=rec.line, hint="try again")
            yield rec

    monkeypatch.setattr(ingest_mod, "read_records", failing)
    good = _corpus_with_duplicates_across_batches(tmp_path)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**json.loads(line), "url": f"https://other/{n}"}
                                               for n, line in enumerate((PACKAGE_DATA / "demo" / "fi.jsonl").open())])
    store = Store(tmp_path / "s.duckdb")
    with pytest.raises(InputError, match="the disk went away"):
        ingest(store, [good, bad], cfg(batch_size=10, workers=2))
    assert submitted  # the workers were used
    with store.session() as tx:
        by_source = dict(tx.all("SELECT source, count(*) FROM documents GROUP BY source"))
    assert by_source == {"all.jsonl": sum(1 for _ in good.open()), "bad.jsonl": 20}  # the two full batches read before


def _analyse_or_die(items, limits, parallel=True):
    """Stands in for textcheck.analyse in worker processes: the first one to run it dies as if killed."""
    import os

    from xinstruct.textcheck import analyse

    if os.getpid() != _PARENT_PID[0] and not os.path.exists(_PARENT_PID[1]):
        open(_PARENT_PID[1], "w").close()
        os._exit(9)
    return analyse(items, limits, parallel)


_PARENT_PID: list = [0, ""]


def test_a_killed_worker_loses_no_document(tmp_path, monkeypatch, submitted):
    import os

    import xinstruct.ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "analyse", _analyse_or_die)
    monkeypatch.setattr(ingest_mod, "_mp_context", lambda: __import__("multiprocessing").get_context("fork"))
    _PARENT_PID[:] = [os.getpid(), str(tmp_path / "died")]
    f = _corpus_with_duplicates_across_batches(tmp_path)
    reference, survived = Store(tmp_path / "ref.duckdb"), Store(tmp_path / "s.duckdb")
    ingest(reference, [f], cfg(batch_size=40, workers=1))
    stats = ingest(survived, [f], cfg(batch_size=40, workers=2))
    assert (tmp_path / "died").exists() and submitted  # a worker did die
    assert stats.read == stats.kept + sum(stats.dropped.values())
    assert _documents(survived) == _documents(reference)


def test_workers_exit_when_the_ingest_process_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = [{"text": f"{r['text']} {i}", "lang": r["lang"]} for i, r in enumerate(
        json.loads(line) for _ in range(8) for f in sorted((PACKAGE_DATA / "demo").glob("*.jsonl"))
        for line in f.open(encoding="utf-8"))]
    corpus = write_jsonl(tmp_path / "big.jsonl", rows)
    script = ("import sys; from xinstruct.ingest import IngestConfig, ingest; from xinstruct.store import Store; "
              "ingest(Store(sys.argv[1]), [sys.argv[2]], IngestConfig(progress=False, batch_size=20, workers=2))")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "db.duckdb"), str(corpus)])

    def alive(pid: int) -> bool:
        try:
            return "\nState:\tZ" not in open(f"/proc/{pid}/status").read()
        except FileNotFoundError:
            return False

    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        workers = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
    assert len(workers) == 2, "the ingest did not start its two workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived the killed ingest"


def test_cli_ingest_reports_counts_and_a_rerun_adds_nothing(tmp_path):
    from typer.testing import CliRunner

    from xinstruct.cli import app

    f = write_jsonl(tmp_path / "sw.jsonl", [{"text": t} for t in SW] + [{"text": "fupi"}, {"txt": "x"}])
    args = ["ingest", str(f), "--lang", "sw", "--workers", "1", "--db", str(tmp_path / "db.duckdb")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "kept 2, dropped 1 (too_short 1)" in first.output and "skipped lines 1" in first.output
    assert "sw.jsonl:4" in first.output  # the skipped line is named
    again = CliRunner().invoke(app, args)
    assert "kept 0, dropped 0" in again.output and "already stored 3" in again.output
