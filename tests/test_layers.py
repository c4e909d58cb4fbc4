"""The layering of issue 15: SQL lives in xinstruct/store/ only, store modules never import stage types, and the
words of the vocabulary are spelt once.

SQL_FREE is every module outside xinstruct/store/: the app, its pages and the package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xinstruct"
SQL_FREE = sorted(  # every module of the app, its pages and the package, less the store itself
    str(p.relative_to(ROOT)) for p in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *PACKAGE.rglob("*.py")]
    if not p.is_relative_to(PACKAGE / "store"))
SQL = re.compile(r"\bSELECT\b.+\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|"
                 r"\bCREATE\s+TABLE\b|\bALTER\s+TABLE\b|\bCOPY\s*\(", re.S)


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant in the module (docstrings included: an example of SQL in prose is SQL too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("module", SQL_FREE)
def test_no_sql_outside_the_store(module):
    found = [(line, text[:80]) for line, text in _strings(ROOT / module) if SQL.search(text)]
    assert not found, f"{module} holds SQL; move it into a module of xinstruct/store/: {found}"


def test_the_check_sees_sql():
    assert SQL.search("SELECT id FROM candidates") and SQL.search("INSERT OR REPLACE INTO x VALUES (?)")
    assert not SQL.search("Select the pairs from the store; update the card.")  # prose: SQL words are upper case


ALLOWED_IN_STORE = {"xinstruct.errors", "xinstruct.langs", "xinstruct.vocab"}


@pytest.mark.parametrize("module", sorted(str(p.relative_to(ROOT)) for p in (PACKAGE / "store").glob("*.py")))
def test_store_modules_import_no_stage(module):
    """Store modules take and return plain rows and small records: they import the engine, each other, and the
    project's pure words (errors, languages, vocabulary), never a stage (generate, refine, review rules, ...)."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    outside = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = "xinstruct.store" if node.level == 1 else "xinstruct"
            names = [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
            outside += [n for n in names if not n.startswith("xinstruct.store") and n not in ALLOWED_IN_STORE]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xinstruct"):
            if not node.module.startswith("xinstruct.store") and node.module not in ALLOWED_IN_STORE:
                outside.append(node.module)
    assert not outside, f"{module} imports {outside}"


def test_the_review_words_are_the_vocabulary():
    """One definition: the review module, curation, export and quality use the vocabulary's objects, not copies."""
    from xinstruct import curate, export, quality, review, vocab

    assert review.REJECT_REASONS is vocab.REJECT_REASONS and review.STATUS_OF is vocab.STATUS_OF
    assert review.ACTIONS is vocab.ACTIONS and review.COMPLETING is vocab.VERDICTS
    assert curate.STATUSES is vocab.STATUSES and curate.rates is vocab.rates
    assert quality.STATUS_TO_LABEL is vocab.STATUS_TO_LABEL
    assert export.STATUS_SETS["accepted"] == vocab.KEPT


def test_rates_are_one_definition():
    from xinstruct import vocab

    assert vocab.rates(3, 1, 1) == {"decided": 5, "acceptance_rate": 0.8, "edit_rate": 0.25}
    assert vocab.rates(0, 0, 0) == {"decided": 0, "acceptance_rate": None, "edit_rate": None}
    assert set(vocab.RATE_COLUMNS) >= {"acceptance_rate", "edit_rate"}
