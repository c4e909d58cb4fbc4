"""Diversification: one per cluster, quotas, determinism, labels; the real embedded MiniLM on our seed instructions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import PACKAGE_DATA, add_candidates
from xinstruct.diversify import DiversifyConfig, cluster, cluster_label, quotas, run, select


class TopicEmbedder:
    """Deterministic fake: instructions about the same topic word get nearly the same vector."""

    name = "topic-fake"
    TOPICS = ["rice", "football", "rain", "school", "bank"]

    def encode(self, texts, batch_size=128, progress=False):
        out = []
        for t in texts:
            v = np.array([1.0 if w in t.lower() else 0.0 for w in self.TOPICS]) + 0.01 * (len(t) % 7)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def fill(store, n_per_topic=4, labels=True):
    rows = []
    for t, topic in enumerate(TopicEmbedder.TOPICS):
        for j in range(n_per_topic):
            rows.append({"lang": "sw", "text": f"Maandishi {topic} {j} " * 20,
                         "instruction": f"Explain {topic} number {j} in detail" + "!" * j,
                         "label": ("good" if j != 1 else "bad") if labels else None, "score": 0.5 + 0.1 * j})
    return add_candidates(store, rows)


def selected(store):
    with store.session() as tx:
        return tx.all("SELECT id, cluster, cluster_label FROM candidates WHERE selected ORDER BY id")


def test_one_good_candidate_per_cluster_when_k_equals_target(store):
    fill(store)
    stats = run(store, DiversifyConfig(target=5, progress=False), embedder=TopicEmbedder())
    rows = selected(store)
    assert stats["sw"]["selected"] == 5 and len({c for _, c, _ in rows}) == 5
    with store.session() as tx:
        assert tx.scalar("SELECT count(*) FROM candidates WHERE selected AND label <> 'good'") == 0
        assert tx.scalar("SELECT count(*) FROM candidates WHERE cluster IS NULL") == 0
    assert all(label.startswith("explain") for _, _, label in rows)


def test_balanced_quota_when_k_is_smaller_than_target(store):
    fill(store)
    run(store, DiversifyConfig(target=10, k=5, progress=False), embedder=TopicEmbedder())
    per_cluster = {}
    for _, c, _ in selected(store):
        per_cluster[c] = per_cluster.get(c, 0) + 1
    assert sorted(per_cluster.values()) == [2, 2, 2, 2, 2]


def test_same_seed_same_selection(store):
    fill(store)
    run(store, DiversifyConfig(target=3, progress=False), embedder=TopicEmbedder())
    first = selected(store)
    run(store, DiversifyConfig(target=3, progress=False), embedder=TopicEmbedder())
    assert selected(store) == first


def test_embeddings_are_cached_by_instruction(store):
    fill(store, n_per_topic=2)

    class Counting(TopicEmbedder):
        seen = 0

        def encode(self, texts, **kw):
            Counting.seen += len(texts)
            return super().encode(texts)

    run(store, DiversifyConfig(target=3, progress=False), embedder=Counting())
    run(store, DiversifyConfig(target=3, progress=False), embedder=Counting())
    assert Counting.seen == 10


def test_quotas_and_select_are_pure():
    assert quotas({0: 5, 1: 1, 2: 5}, 7) == {0: 3, 1: 1, 2: 3}
    ids = ["a", "b", "c", "d"]
    labels = np.array([0, 0, 1, 1])
    chosen = select(ids, labels, np.array([0.1, 0.0, 0.2, 0.2]), [0.9, 0.5, None, 0.4], [True, True, True, False], 2)
    assert chosen == {"a", "c"}


def test_cluster_label_is_the_most_common_verb_and_object():
    assert cluster_label(["Write a poem about rain.", "Please write a poem on the sea", "List three rivers"]) == "write poem"
    assert cluster_label([]) == ""


def test_cluster_distances_are_cosine():
    v = np.eye(3, dtype=np.float32)
    labels, dist = cluster(np.vstack([v, v]), 3)
    assert np.allclose(dist, 0, atol=1e-5) and len(set(labels)) == 3


@pytest.mark.slow
def test_embedded_minilm_embeds_our_ten_language_seed_instructions(store):
    from xinstruct.diversify import Embedder

    files = sorted((PACKAGE_DATA / "seed").glob("*.jsonl"))
    assert len(files) == 10
    rows = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines()[:6]:
            r = json.loads(line)
            rows.append({"lang": r["lang"], "text": r["response"], "instruction": r["instruction"], "label": "good",
                         "score": 0.8})
    add_candidates(store, rows)
    emb = Embedder()
    vecs = emb.encode([r["instruction"] for r in rows])
    assert vecs.shape == (len(rows), 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    stats = run(store, DiversifyConfig(target=3, progress=False), embedder=emb)
    assert set(stats) == {f.stem for f in files} and all(s["selected"] == 3 for s in stats.values())
