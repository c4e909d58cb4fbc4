"""Shared fixtures: fresh stores, a filled store with candidates, paths to packaged and shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from xinstruct.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PACKAGE_DATA = ROOT / "xinstruct" / "data"


@pytest.fixture
def store() -> Store:
    """A fresh in-memory store with all migrations applied."""
    return Store(":memory:")


@pytest.fixture
def file_store(tmp_path) -> Store:
    """A fresh store in a temporary DuckDB file (needed when several processes or the app are involved)."""
    return Store(tmp_path / "xi.duckdb")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def add_candidates(store: Store, rows: list[dict]) -> list[str]:
    """Insert documents and one candidate each, straight into the store (for tests of later stages).

    Each row: {lang, text, instruction, [label, score, selected, reviews_needed, cluster]}.
    """
    import hashlib

    ids = []

    def write(tx):
        for i, r in enumerate(rows):
            doc_id = hashlib.sha256(f"{i}:{r['text']}".encode()).hexdigest()[:16]
            cand_id = "c" + doc_id
            tx.execute(
                "INSERT INTO documents (id, content_hash, text, lang_declared, lang_detected, lang, source, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'test', 'kept')",
                [doc_id, doc_id, r["text"], r["lang"], r["lang"], r["lang"]],
            )
            tx.execute(
                "INSERT INTO candidates (id, doc_id, lang, instruction, response, gen_status, model_version, label, score,"
                " selected, reviews_needed, cluster) VALUES (?, ?, ?, ?, ?, 'ok', 'test', ?, ?, ?, ?, ?)",
                [cand_id, doc_id, r["lang"], r["instruction"], r.get("response", r["text"]), r.get("label"),
                 r.get("score"), r.get("selected", False), r.get("reviews_needed", 1), r.get("cluster")],
            )
            tx.execute(
                "INSERT INTO candidate_versions (candidate_id, version, stage, instruction, model_version) "
                "VALUES (?, 1, 'generate', ?, 'test')",
                [cand_id, r["instruction"]],
            )
            ids.append(cand_id)

    store.write(write)
    return ids


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real-data suite needs ../shared/data beside the project (looked for {SHARED_DATA})")
    return SHARED_DATA


def session_token(user, store: Store | None = None) -> str:
    """A login session token for `user`, as the login form gives one, for AppTest: `at.session_state["xi_session"] = ...`.

    The user is created in the store (`store`, default $XINSTRUCT_DB) with its role and languages if missing: the app
    re-reads every user from the store on every run, so a user that is not stored is not logged in.
    """
    import secrets

    from xinstruct import auth
    from xinstruct.store import default_db_path

    store = store or Store(default_db_path())
    if auth.get_user(store, user.name) is None:
        auth.add_user(store, user.name, secrets.token_urlsafe(12), user.role, list(user.langs))
    return auth.start_session(store, user)


def pytest_sessionfinish(session, exitstatus):
    """Kill child processes a failed test left behind: multiprocessing joins its live children at exit, so one hung
    child would otherwise keep pytest (and CI) from ever finishing."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)
