"""The demo (`scripts/demo.sh`) gives every demo user work in each of their languages.

The demo config runs end to end (ingest of the bundled corpus, generate, refine, diversify), then each user that
demo.sh creates must have a non-empty queue, through the real queue code, in every language they review. Once with the
fake model backend (fast) and once, marked slow, on the embedded models exactly as the demo runs them.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from conftest import PACKAGE_DATA, ROOT
from test_diversify import TopicEmbedder
from xinstruct import auth, review
from xinstruct.langs import LANGS
from xinstruct.models.fake import FakeModel
from xinstruct.pipeline import load_config, run

DEMO_CONFIG = PACKAGE_DATA / "demo_pipeline.yaml"
DEMO_SCRIPT = ROOT / "scripts" / "demo.sh"
TOPICS = TopicEmbedder.TOPICS


def demo_users() -> list[tuple[str, str, str]]:
    """(name, role, langs) of every `xinstruct users add` line in scripts/demo.sh (langs "" = all ten)."""
    users = []
    for line in DEMO_SCRIPT.read_text(encoding="utf-8").splitlines():
        m = re.search(r"users add (\S+) --role (\w+)(?: --langs ([\w,]+))?", line)
        if m:
            users.append((m.group(1), m.group(2), m.group(3) or ""))
    return users


def test_demo_script_creates_the_users_the_readme_names():
    assert demo_users() == [("admin", "admin", ""), ("reviewer", "reviewer", "sw,ur,th")]


def assert_every_demo_user_has_work(store) -> dict[str, dict[str, int]]:
    sizes: dict[str, dict[str, int]] = {}
    for name, role, langs in demo_users():
        user = auth.add_user(store, name, "demo-password-1", role, langs)
        sizes[name] = {}
        for lang in user.lang_list:
            one_lang = dataclasses.replace(user, langs=(lang,), cred_version=None)  # a view of one language (not re-read)
            sizes[name][lang] = review.queue_size(store, one_lang)
            item = review.next_item(store, one_lang)
            assert item is not None and item["lang"] == lang, f"{name} has nothing to review in {lang}: {sizes[name]}"
            review.release(store, one_lang, item["id"])
    empty = {name: [lang for lang, n in per.items() if n == 0] for name, per in sizes.items()}
    assert not any(empty.values()), f"empty queues: {empty}"
    return sizes


def fake_instruction(prompt: str) -> str:
    # the generation prompt ends with the document; the fake writes an English instruction about one of a few
    # topics chosen from it, so that diversify sees distinct instructions
    return f"Explain in detail how {TOPICS[len(prompt) % len(TOPICS)]} shapes daily life."


def fake_loglik(prompt: str, continuation: str) -> float:
    """The instruction is likely given its text and unlikely without one (the generation prompt with no text ends
    and the instruction header): the trained evaluator sees drafts that fit their texts."""
    return -3.0 if "### Text:\n\n\n###" in prompt else -1.0


def test_demo_config_gives_every_demo_user_work_fake_models(file_store):
    cfg, base = load_config(DEMO_CONFIG)
    model = FakeModel(generate_fn=fake_instruction, loglik_fn=fake_loglik)
    summary = run(file_store, cfg, base, model=model, evaluator=model, embedder=TopicEmbedder(), progress=False,
                  echo=lambda s: None)
    limit = cfg.generate["limit"]
    generated = {lang: s["generated"] for lang, s in summary["generate"]["result"].items()}
    assert generated == {"all": limit * len(LANGS)}
    with file_store.session() as tx:
        per_lang = dict(tx.all("SELECT lang, count(*) FROM candidates GROUP BY lang"))
        selected = dict(tx.all("SELECT lang, count(*) FROM candidates WHERE selected GROUP BY lang"))
    assert per_lang == {lang: limit for lang in LANGS}  # the limit is per language, not one global limit
    assert set(selected) == set(LANGS)
    assert_every_demo_user_has_work(file_store)


@pytest.mark.slow
def test_demo_config_gives_every_demo_user_work_embedded_models(file_store):
    """The demo exactly as scripts/demo.sh runs it (embedded generator, evaluator and embedder). Minutes on 2 cores."""
    cfg, base = load_config(DEMO_CONFIG)
    run(file_store, cfg, base, progress=False, echo=lambda s: None)
    sizes = assert_every_demo_user_has_work(file_store)
    assert set(sizes["reviewer"]) == {"sw", "ur", "th"}
