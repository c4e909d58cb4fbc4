"""The generation stage with a scripted model: what is stored, rejections, few-shot, resume after Ctrl-C; seed files."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from xinstruct.errors import ConfigError, InputError
from xinstruct.generate import GenerateConfig, candidate_id, pick_examples, run
from xinstruct.models.fake import FakeModel
from xinstruct.prompts import PROMPT_VERSION
from xinstruct.seed import SeedPair, data_hash, load_seed, split_heldout

SW = [
    "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania na una bandari muhimu kwa biashara ya Afrika Mashariki.",
    "Mlima Kilimanjaro ndio mlima mrefu zaidi barani Afrika na huvutia watalii wengi kila mwaka.",
    "Ziwa Viktoria ni ziwa kubwa zaidi barani Afrika na linashirikiwa na nchi tatu.",
    "Kiswahili ni lugha inayozungumzwa na watu wengi katika nchi za Afrika Mashariki na Kati.",
    "Zanzibar ni visiwa vyenye historia ndefu ya biashara ya viungo na utamaduni wa pwani.",
]
FI = ["Helsinki on Suomen pääkaupunki ja sen suurin kaupunki, joka sijaitsee Suomenlahden rannalla."]
ENGLISH = "Write a short text about this place and why it matters."


def add_documents(store, docs: list[tuple[str, str]], status: str = "kept") -> list[str]:
    """Insert (lang, text) documents; returns their ids in order."""
    ids = [f"{status[0]}{i:03d}-{lang}" for i, (lang, _) in enumerate(docs)]
    store.write(lambda tx: tx.executemany(
        "INSERT INTO documents (id, content_hash, text, lang_declared, lang, source, status) VALUES (?, ?, ?, ?, ?, 'test', ?)",
        [[i, i, text, lang, lang, status] for i, (lang, text) in zip(ids, docs)],
    ))
    return ids


def candidates(store) -> list[dict]:
    with store.session() as tx:
        return tx.dicts("SELECT * FROM candidates ORDER BY doc_id")


def versions(store) -> list[dict]:
    with store.session() as tx:
        return tx.dicts("SELECT * FROM candidate_versions ORDER BY candidate_id")


@pytest.fixture
def seed_file(tmp_path):
    return write_jsonl(tmp_path / "seed.jsonl", [
        {"id": "sw-1", "lang": "sw", "instruction": "Describe the city of Arusha.", "response": "Arusha ni mji wa kaskazini."},
        {"id": "sw-2", "lang": "sw", "instruction": "Explain what ugali is.", "response": "Ugali ni chakula cha unga."},
        {"id": "sw-3", "lang": "sw", "instruction": "Write about Lake Tanganyika.", "response": "Ziwa Tanganyika ni refu."},
        {"id": "fi-1", "lang": "fi", "instruction": "Describe the city of Turku.", "response": "Turku on vanha kaupunki."},
    ])


def quiet(**kw) -> GenerateConfig:
    return GenerateConfig(progress=False, **kw)


def test_run_stores_one_candidate_per_kept_document(store, seed_file):
    ids = add_documents(store, [("sw", t) for t in SW[:3]])
    add_documents(store, [("sw", "dropped text")], status="dropped")
    stats = run(store, quiet(batch_size=2, seed_files=[str(seed_file)]), model=FakeModel(generate_fn=lambda p: ENGLISH))
    assert (stats["pending"], stats["generated"], stats["written"], stats["ok"], stats["rejected"]) == (3, 3, 3, 3, 0)
    assert stats["model"] == "fake-1" and stats["round"] == 1 and stats["few_shot"] == 2
    assert stats["new_tokens"] > 0 and stats["tokens_per_s"] > 0 and stats["docs_per_min"] > 0
    rows = candidates(store)
    assert [r["doc_id"] for r in rows] == ids
    row = rows[0]
    assert row["id"] == candidate_id(ids[0], 1)
    assert (row["instruction"], row["response"], row["gen_status"], row["gen_reason"]) == (ENGLISH, SW[0], "ok", None)
    assert (row["model_version"], row["prompt_version"], row["lang"], row["round_id"], row["version"]) == (
        "fake-1", PROMPT_VERSION, "sw", 1, 1)
    sampling = json.loads(row["sampling"])
    assert sampling["few_shot"] == 2 and sampling["temperature"] == 0.0 and sampling["max_new_tokens"] == 48
    assert [(v["version"], v["stage"], v["instruction"]) for v in versions(store)] == [(1, "generate", ENGLISH)] * 3


def test_non_english_outputs_are_rejected_with_the_raw_output_kept(store, seed_file):
    add_documents(store, [("sw", SW[0]), ("sw", SW[1])])
    finnish = "Kirjoita lyhyt tarina pienestä kylästä ja sen ihmisistä."
    model = FakeModel(generate_fn=lambda p: finnish if "Kilimanjaro" in p.rsplit("### Text:", 1)[1] else ENGLISH)
    stats = run(store, quiet(seed_files=[str(seed_file)]), model=model)
    assert (stats["ok"], stats["rejected"], stats["reasons"]) == (1, 1, {"not English (detected fi)": 1})
    rejected = next(r for r in candidates(store) if r["gen_status"] == "rejected")
    assert rejected["instruction"] is None and rejected["gen_reason"] == "not English (detected fi)"
    version = next(v for v in versions(store) if v["candidate_id"] == rejected["id"])
    assert (version["instruction"], version["reason"]) == (finnish, "not English (detected fi)")


def test_few_shot_examples_of_the_same_language_for_a_base_model_only(store, seed_file):
    add_documents(store, [("sw", SW[0]), ("fi", FI[0])])
    base = FakeModel(generate_fn=lambda p: ENGLISH)
    run(store, quiet(seed_files=[str(seed_file)]), model=base)
    prompts = base.calls[0][1]
    fi_prompt, sw_prompt = prompts  # documents come ordered by language
    assert fi_prompt.count("### Text:") == 2 and "Describe the city of Turku." in fi_prompt  # the one fi pair
    assert sw_prompt.count("### Text:") == 3 and "Turku" not in sw_prompt
    assert fi_prompt.endswith(f"### Text:\n{FI[0]}\n\n### English Instruction:\n")


def test_a_trained_backward_model_gets_no_examples(store, seed_file):
    add_documents(store, [("sw", SW[0])])
    backward = FakeModel(name="backward-1", generate_fn=lambda p: ENGLISH)
    backward.backward = True
    stats = run(store, quiet(seed_files=[str(seed_file)]), model=backward)
    assert stats["few_shot"] == 0 and backward.calls[0][1][0].count("### Text:") == 1


def test_lang_and_limit_select_documents(store, seed_file):
    add_documents(store, [("sw", t) for t in SW] + [("fi", FI[0])])
    stats = run(store, quiet(lang="sw", limit=2, seed_files=[str(seed_file)]), model=FakeModel(generate_fn=lambda p: ENGLISH))
    assert stats["generated"] == 2 and {r["lang"] for r in candidates(store)} == {"sw"}


def test_limit_is_per_language_when_no_language_is_given(store, seed_file):
    add_documents(store, [("sw", t) for t in SW] + [("fi", FI[0])])
    fake = FakeModel(generate_fn=lambda p: ENGLISH)
    stats = run(store, quiet(limit=2, batch_size=8, seed_files=[str(seed_file)]), model=fake)
    # 2 Swahili documents and the only Finnish one, in one model call (batches mix languages), not 2 documents overall
    assert stats["generated"] == 3 and len(fake.calls) == 1
    assert sorted(r["lang"] for r in candidates(store)) == ["fi", "sw", "sw"]
    stats = run(store, quiet(limit=2, batch_size=1, seed_files=[str(seed_file)]), model=fake)  # a rerun: 2 more sw
    assert stats["generated"] == 2 and [r["lang"] for r in candidates(store)].count("sw") == 4


def test_rerun_skips_done_documents_without_loading_a_model(store, seed_file):
    add_documents(store, [("sw", t) for t in SW[:2]])
    run(store, quiet(seed_files=[str(seed_file)]), model=FakeModel(generate_fn=lambda p: ENGLISH))
    stats = run(store, quiet(model="no-such-model"))  # nothing pending: the model is never loaded
    assert stats["pending"] == 0 and stats["generated"] == 0 and len(candidates(store)) == 2


def test_a_new_round_generates_only_for_documents_no_round_used(store, seed_file):
    first = add_documents(store, [("sw", SW[0])])
    run(store, quiet(seed_files=[str(seed_file)]), model=FakeModel(generate_fn=lambda p: ENGLISH))
    store.write(lambda tx: tx.execute("INSERT INTO rounds (id) VALUES (1), (2)"))
    store.write(lambda tx: tx.execute(
        "INSERT INTO documents (id, content_hash, text, lang, status) VALUES ('new', 'new', ?, 'sw', 'kept')", [SW[1]]))
    stats = run(store, quiet(seed_files=[str(seed_file)]), model=FakeModel(generate_fn=lambda p: ENGLISH))
    assert (stats["round"], stats["generated"]) == (2, 1)
    assert sorted((r["doc_id"], r["round_id"]) for r in candidates(store)) == [(first[0], 1), ("new", 2)]


class InterruptOnSecondBatch(FakeModel):
    def generate(self, prompts, params):
        if len(self.calls) == 1:
            self.calls.append(("generate", prompts))
            raise KeyboardInterrupt
        return super().generate(prompts, params)


def test_interrupted_run_resumes_without_duplicates_or_loss(store, seed_file):
    ids = add_documents(store, [("sw", t) for t in SW])
    cfg = quiet(batch_size=2, seed_files=[str(seed_file)])
    with pytest.raises(KeyboardInterrupt):
        run(store, cfg, model=InterruptOnSecondBatch(generate_fn=lambda p: ENGLISH))
    assert len(candidates(store)) == 2  # the first batch was committed, the one in flight was not
    stats = run(store, cfg, model=FakeModel(generate_fn=lambda p: ENGLISH))
    assert stats["pending"] == 3
    rows = candidates(store)
    assert sorted(r["doc_id"] for r in rows) == sorted(ids)
    assert len(versions(store)) == len(ids) == len({v["candidate_id"] for v in versions(store)})


def test_invalid_settings_are_config_errors(store):
    with pytest.raises(ConfigError, match="batch_size"):
        run(store, quiet(batch_size=0))
    with pytest.raises(ConfigError, match="unknown backend"):
        run(store, quiet(backend="magic"))
    with pytest.raises(InputError, match="unknown language"):
        run(store, quiet(lang="xx"))


def test_cli_generate_with_the_fake_backend(file_store, seed_file):
    from typer.testing import CliRunner

    from xinstruct.cli import app

    add_documents(file_store, [("sw", t) for t in SW[:2]])
    result = CliRunner().invoke(app, ["generate", "--backend", "fake", "--seed", str(seed_file), "--db", str(file_store.path)])
    assert result.exit_code == 0, result.output
    assert "generated 2 of 2 pending, ok 2, rejected 0" in result.output and "tokens/s" in result.output
    again = CliRunner().invoke(app, ["generate", "--backend", "fake", "--db", str(file_store.path)])
    assert "nothing to generate" in again.output


# -- seed files ---------------------------------------------------------------------------------------------------------
def test_seed_accepts_our_shape_and_the_shared_cross_lingual_shape(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"id": "a", "lang": "sw", "instruction": "Describe Arusha.", "response": "Arusha ni mji.", "verb": "describe"},
        {"id": "b", "lang": "fi", "instruction_en": "Who became king?", "response": "Vilhelm I.", "pair_type": "cross-lingual"},
        {"id": "c", "lang": "tr", "instruction_en": None, "response": "Merhaba.", "pair_type": "monolingual-target"},
    ])
    pairs = load_seed(files=[path])
    assert [(p.id, p.lang, p.instruction, p.verb) for p in pairs] == [
        ("a", "sw", "Describe Arusha.", "describe"), ("b", "fi", "Who became king?", None)]
    assert [p.id for p in load_seed("fi", files=[path])] == ["b"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "seed.jsonl:2: not valid JSON"),
        ('["a list"]', "seed.jsonl:2: a seed row must be a JSON object"),
        ('{"lang": "sw", "response": "Habari."}', "seed.jsonl:2: missing or empty 'instruction'"),
        ('{"lang": "sw", "instruction": "Say hi.", "response": "  "}', "seed.jsonl:2: missing or empty 'response'"),
        ('{"lang": "xx", "instruction": "Say hi.", "response": "Habari."}', "seed.jsonl:2: unknown language code 'xx'"),
    ],
)
def test_bad_seed_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "seed.jsonl"
    path.write_text('{"lang": "sw", "instruction": "Say hi.", "response": "Habari."}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_seed(files=[path])


def test_missing_seed_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="seed file not found"):
        load_seed(files=[tmp_path / "nope.jsonl"])


def test_heldout_split_is_deterministic_per_language():
    pairs = [SeedPair(f"{lang}{i}", lang, f"Instruction {i}", f"text {i}") for lang in ("sw", "fi") for i in range(10)]
    train, held = split_heldout(pairs, every=5)
    assert [p.id for p in held] == ["sw4", "sw9", "fi4", "fi9"]
    assert len(train) == 16 and split_heldout(pairs, every=0) == (pairs, [])
    assert data_hash(train) == data_hash(list(reversed(train))) != data_hash(pairs)


def test_pick_examples_is_deterministic_and_varies_by_document():
    pool = [SeedPair(str(i), "sw", f"Instruction {i}", "text") for i in range(20)]
    assert pick_examples(pool, 2, "doc-a") == pick_examples(pool, 2, "doc-a")
    assert {tuple(p.id for p in pick_examples(pool, 2, f"doc-{i}")) for i in range(10)} != {("0", "1")}
    assert pick_examples(pool, 0, "doc-a") == [] and len(pick_examples(pool[:1], 3, "x")) == 1


def test_packaged_seed_files_are_valid():
    from xinstruct.seed import packaged_files

    for path in packaged_files():
        pairs = load_seed(files=[path])
        assert pairs and all(p.lang == path.stem for p in pairs)
