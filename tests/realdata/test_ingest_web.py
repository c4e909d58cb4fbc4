"""Real-data suite: ingest all of ../shared/data/web (real multilingual web text, 10 languages)."""

from __future__ import annotations

import json
from collections import Counter

from xinstruct.ingest import IngestConfig, ingest
from xinstruct.langid import agrees


def test_every_row_is_kept_or_dropped_with_a_reason_and_language_id_agrees(store, shared_data):
    files = sorted((shared_data / "web").glob("*.jsonl"))
    assert len(files) == 10, f"expected 10 language files in {shared_data / 'web'}"
    rows = sum(1 for f in files for line in f.open(encoding="utf-8") if line.strip())
    stats = ingest(store, files, IngestConfig(progress=False))
    assert stats.skipped_lines == 0, [str(i) for i in stats.issues[:5]]
    assert stats.read == rows
    assert stats.kept + sum(stats.dropped.values()) + stats.already_stored == rows
    with store.session() as tx:
        stored = tx.all("SELECT lang_declared, lang_detected, status, drop_reason FROM documents")
        assert tx.scalar("SELECT count(*) FROM documents WHERE status = 'dropped' AND drop_reason IS NULL") == 0
    assert len(stored) + stats.already_stored == rows
    declared = Counter(r[0] for r in stored)
    same = Counter(r[0] for r in stored if agrees(r[0], r[1]))
    exact = Counter(r[0] for r in stored if r[0] == r[1])
    report = {lang: {"rows": declared[lang], "agree": round(same[lang] / declared[lang], 3),
                     "exact": round(exact[lang] / declared[lang], 3)} for lang in sorted(declared)}
    print("\nlanguage ID vs declared language (agree counts Indonesian detected as Malay as agreeing):")
    print(json.dumps(report, indent=1))
    print("kept", stats.kept, "dropped", dict(stats.dropped))
    low = {lang: r for lang, r in report.items() if r["agree"] < 0.90}
    assert not low, f"language ID agrees with the declared language on under 90% of rows: {low}"
