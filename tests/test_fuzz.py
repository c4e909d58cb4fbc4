"""Bad input, fuzzed: whatever bytes land in a .jsonl / .csv / .txt file, ingest either refuses the file with an
InputError that names it (having written nothing) or succeeds and reports what it skipped, and the documents it wrote
are exactly the ones its stats count: never another exception, never a partial write. Random strings into the two
parsers of model output never raise.

Hypothesis runs a bounded number of examples (no deadline: the CPU is shared) and keeps no example database in the tree.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from xinstruct import ingest as ingest_mod
from xinstruct.errors import InputError
from xinstruct.ingest import IngestConfig, ingest
from xinstruct.prompts import MAX_CHARS, MIN_CHARS, parse_instruction
from xinstruct.refine import LABELS, parse_label
from xinstruct.store import Store

FUZZ = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SW = ("Tottenham inamfuatilia winga wa Everton na England U21 Anthony Gordon, 21, kabla ya dirisha la usajili la "
      "Januari. Klabu hiyo ya London imekuwa ikimfuatilia mchezaji huyo kwa muda mrefu na inaamini kwamba ana uwezo "
      "wa kuwa mchezaji muhimu katika kikosi chao. Everton hata hivyo hawako tayari kumuuza winga huyo kwa bei nafuu. ")
_names = itertools.count()


@pytest.fixture(scope="module")
def fuzz_store() -> Store:
    return Store(":memory:")


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def documents(store: Store) -> int:
    with store.session() as tx:
        return tx.scalar("SELECT count(*) FROM documents")


def ingest_checked(store: Store, path: Path, **cfg):
    """Ingest one file and check the contract; returns the stats, or None when the file was refused."""
    before = documents(store)
    try:
        stats = ingest(store, [path], IngestConfig(progress=False, **cfg))
    except InputError as exc:
        assert str(path) in str(exc), f"the error must name the file: {exc}"
        assert documents(store) == before, "a refused file writes nothing"
        return None
    written = documents(store) - before
    assert written == stats.kept + sum(stats.dropped.values()), "the stats count exactly what was written"
    assert stats.read == stats.kept + sum(stats.dropped.values()) + stats.already_stored
    assert stats.skipped_lines == len(stats.issues)
    for issue in stats.issues:
        assert issue.path == str(path) and str(issue).startswith(str(path)) and issue.what and issue.hint
    return stats


def write(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"f{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
sw_texts = st.integers().map(lambda n: f"{SW}Namba {n}.")  # one document each (near duplicates of each other)
text_values = st.one_of(sw_texts, sw_texts, st.text(max_size=400), json_values,
                        st.sampled_from([SW * 20, " ", "", "\x00"]))
records = st.fixed_dictionaries(
    {},
    optional={"text": text_values, "lang": st.one_of(st.sampled_from(["sw", "SW", "xx", "en", ""]), json_values),
              "url": json_values | st.text(max_size=30), "timestamp": json_values, "extra": json_values})

good_records = st.fixed_dictionaries(  # mostly usable records, so that the write path is fuzzed too
    {"text": sw_texts}, optional={"lang": st.sampled_from(["sw", "SW", "id"]), "url": st.text(max_size=30),
                                  "timestamp": json_values, "extra": json_values})


def corrupt(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    """Insert invalid UTF-8 sequences (lone continuation bytes, truncated sequences, surrogates) at the positions."""
    for pos, junk in cuts:
        pos = pos % (len(data) + 1)
        data = data[:pos] + junk + data[pos:]
    return data


bad_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])
corruptions = st.lists(st.tuples(st.integers(0, 10_000), bad_utf8), max_size=4)


def jsonl_line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------------------------------
# Ingest
# ---------------------------------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".jsonl", ".csv", ".txt"]),
       lang=st.sampled_from([None, "sw"]))
def test_random_bytes(fuzz_store, fuzz_dir, data, suffix, lang):
    ingest_checked(fuzz_store, write(fuzz_dir, suffix, data), lang=lang)


@FUZZ
@given(lines=st.lists(st.one_of(good_records, records, json_values), max_size=10), cuts=corruptions, crlf=st.booleans(),
       bom=st.booleans())
def test_jsonl_with_wrong_types_and_broken_utf8(fuzz_store, fuzz_dir, lines, cuts, crlf, bom):
    sep = b"\r\n" if crlf else b"\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + sep.join(jsonl_line(x) for x in lines)
    path = write(fuzz_dir, ".jsonl", corrupt(data, cuts))
    first = ingest_checked(fuzz_store, path)
    assert first is not None  # no NUL bytes can appear (JSON escapes them), so never refused
    again = ingest_checked(fuzz_store, path)  # re-ingesting the same file adds nothing
    assert again.kept == 0 and sum(again.dropped.values()) == 0 and again.already_stored == again.read


@FUZZ
@given(header=st.lists(st.sampled_from(["text", "lang", "url", "x", "", "te\"xt", "text"]), min_size=0, max_size=4),
       cells=st.lists(st.lists(st.one_of(st.text(max_size=60), sw_texts, st.sampled_from(['"', '""', "\n", "\r"])),
                               max_size=5), max_size=6),
       cuts=corruptions, lang=st.sampled_from([None, "sw"]))
def test_csv_with_broken_quoting_columns_and_utf8(fuzz_store, fuzz_dir, header, cells, cuts, lang):
    def row(values):
        return ",".join(v if i % 2 else '"' + v.replace('"', '""') + '"' for i, v in enumerate(values))

    text = "\n".join([",".join(header), *map(row, cells)])
    data = corrupt(text.encode("utf-8", "surrogatepass"), cuts)
    ingest_checked(fuzz_store, write(fuzz_dir, ".csv", data), lang=lang)


@FUZZ
@given(paragraphs=st.lists(st.one_of(st.text(max_size=300), sw_texts), max_size=6), cuts=corruptions,
       sep=st.sampled_from(["\n\n", "\r\n\r\n", "\n \n", "\n"]))
def test_txt_with_broken_utf8(fuzz_store, fuzz_dir, paragraphs, cuts, sep):
    data = corrupt(sep.join(paragraphs).encode("utf-8", "surrogatepass"), cuts)
    ingest_checked(fuzz_store, write(fuzz_dir, ".txt", data), lang="sw")


@FUZZ
@given(depth=st.integers(1, 200_000), where=st.sampled_from(["line", "text", "lang", "meta"]),
       opener=st.sampled_from(["[", '{"a":']))
def test_deeply_nested_json(fuzz_store, fuzz_dir, depth, where, opener):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    line = {"line": nested, "text": f'{{"text": {nested}}}', "lang": f'{{"text": "{SW}", "lang": {nested}}}',
            "meta": f'{{"text": "{SW} {depth}", "meta": {nested}}}'}[where]
    path = write(fuzz_dir, ".jsonl", (line + "\n" + json.dumps({"text": SW + str(depth)})).encode())
    stats = ingest_checked(fuzz_store, path, lang="sw")
    assert stats is not None and stats.read >= 1  # the good line after it is still read


def test_huge_lines_are_stored_cut_or_skipped_with_a_reason(fuzz_store, fuzz_dir, monkeypatch):
    huge = "Habari za mvua kubwa. " * 150_000  # 3.3 MB in one line / one field / one paragraph
    for suffix, data in [(".jsonl", jsonl_line({"text": "a" + huge}) + b"\n" + jsonl_line({"text": SW + "a"})),
                         (".csv", b'text\n"b' + huge.encode() + b'"\n"' + (SW + "b").encode() + b'"\n'),
                         (".txt", b"c" + huge.encode() + b"\n\n" + (SW + "c").encode())]:
        path = write(fuzz_dir, suffix, data)
        stats = ingest_checked(fuzz_store, path, lang="sw")
        assert stats.dropped["too_long"] == 1 and stats.read == 2
        with fuzz_store.session() as tx:
            size, detail = tx.one("SELECT length(text), drop_detail FROM documents WHERE source = ? AND "
                                  "drop_reason = 'too_long'", [path.name])
        assert size == ingest_mod.STORED_TEXT_CAP
        assert "3,300,000 characters" in detail and "stored cut to 10,000" in detail
    # a line over the hard limit (64 MB; lowered here) is skipped and reported, the rest is read
    monkeypatch.setattr(ingest_mod, "MAX_LINE_BYTES", 10_000)
    path = write(fuzz_dir, ".jsonl", jsonl_line({"text": huge[:20_000]}) + b"\n" + jsonl_line({"text": SW + "d"}))
    stats = ingest_checked(fuzz_store, path, lang="sw")
    assert stats.read == 1 and "bytes, skipped" in str(stats.issues[0])


# ~60 KB of text that compresses poorly, so that a cut anywhere past 30 % of the .gz lies past the first 8 KB (which
# ingest reads up front to refuse binary files) and is met only while the records are read and stored
FILLER = [{"text": " ".join(f"neno{j * 7919 % 1009}x{i}" for j in range(40))} for i in range(150)]


@settings(FUZZ, max_examples=20, phases=(Phase.explicit, Phase.reuse, Phase.generate))  # no slow shrinking of the xfail
@given(lines=st.lists(st.one_of(records, st.fixed_dictionaries({"text": st.just(SW), "n": st.integers()})), max_size=6),
       cut=st.floats(0.3, 0.95), suffix=st.sampled_from([".jsonl.gz", ".csv.gz", ".txt.gz"]))
def test_truncated_gzip(fuzz_store, fuzz_dir, lines, cut, suffix):
    """A .gz file cut short (an interrupted download): read up to the cut and reported, never a crash."""
    lines = [*FILLER, *lines]
    if suffix.startswith(".csv"):
        body = "text\n" + "\n".join('"' + str(x.get("text", "")).replace('"', '""') + '"' for x in lines)
        raw = body.encode("utf-8", "surrogatepass")
    elif suffix.startswith(".txt"):
        raw = "\n\n".join(str(x.get("text", "")) for x in lines).encode("utf-8", "surrogatepass")
    else:
        raw = b"\n".join(jsonl_line(x) for x in lines)
    packed = gzip.compress(raw)
    path = write(fuzz_dir, suffix, packed[: int(len(packed) * cut)])
    stats = ingest_checked(fuzz_store, path, lang="sw", batch_size=50)
    assert stats is not None and any("ends early" in str(i) or "damaged" in str(i) for i in stats.issues)


def test_refusals_name_the_file_and_write_nothing(fuzz_store, fuzz_dir):
    for suffix, data in [(".jsonl", b'{"text": "a"}\x00\x01'), (".csv", b"title,body\nx,y\n"), (".txt", b"\x00" * 10),
                         (".jsonl.gz", b"not gzip at all")]:
        path = write(fuzz_dir, suffix, data)
        before = documents(fuzz_store)
        with pytest.raises(InputError) as info:
            ingest(fuzz_store, [path], IngestConfig(progress=False))
        assert str(path) in str(info.value) and documents(fuzz_store) == before


# ---------------------------------------------------------------------------------------------------------------------
# Parsers of model output
# ---------------------------------------------------------------------------------------------------------------------
model_output = st.one_of(
    st.text(max_size=600),
    st.lists(st.sampled_from(["### English Instruction:", "### Text:", "Instruction:", "Q:", "1.", "-", '"', "“", "”",
                              "good", "bad", "flawed", "\n", " ", "Explain the news about rice.", "ข่าว", "اردو", "###",
                              "\u200f", "\x00", "：", "GOOD - fine", "Verdict: flawed"]),
             max_size=30).map("".join))


@settings(max_examples=300, deadline=None, database=None)
@given(output=model_output)
def test_parse_instruction_never_raises(output):
    instruction, reason = parse_instruction(output)
    if instruction is None:
        assert isinstance(reason, str) and reason
    else:
        assert reason is None and isinstance(instruction, str) and MIN_CHARS <= len(instruction) <= MAX_CHARS
        assert "\n" not in instruction and "###" not in instruction


@settings(max_examples=300, deadline=None, database=None)
@given(output=st.one_of(st.none(), model_output))
def test_parse_label_never_raises(output):
    label, reason = parse_label(output)
    assert label is None or label in LABELS
    assert isinstance(reason, str)
