"""The embedded default generator end to end (slow: loads Gemma 3 270M, converting it on first use)."""

from __future__ import annotations

import pytest

from xinstruct.generate import GenerateConfig, run

pytestmark = pytest.mark.slow

DOCS = {
    "sw": "Serikali ya Tanzania imetangaza mpango mpya wa kuboresha huduma za maji safi vijijini. Kwa mujibu wa Wizara "
          "ya Maji, zaidi ya vijiji mia tano vitanufaika na mradi huu katika miaka mitatu ijayo. Wananchi wameombwa "
          "kushiriki katika kutunza miundombinu ili huduma hizo ziwe endelevu.",
    "vi": "Phở là món ăn truyền thống nổi tiếng nhất của Việt Nam. Món ăn gồm bánh phở, nước dùng được ninh từ xương bò "
          "hoặc gà trong nhiều giờ, cùng với thịt và các loại rau thơm. Ngày nay, phở được bán ở khắp nơi trên thế giới "
          "và được nhiều du khách yêu thích.",
    "ur": "لاہور پاکستان کا دوسرا بڑا شہر ہے اور اپنی تاریخی عمارتوں کی وجہ سے مشہور ہے۔ بادشاہی مسجد، شاہی قلعہ اور "
          "شالامار باغ مغل دور کی یادگاریں ہیں۔ ہر سال لاکھوں سیاح ان مقامات کو دیکھنے آتے ہیں۔",
}


def test_embedded_default_writes_english_instructions_for_native_paragraphs(store):
    from xinstruct.models.embedded import load_embedded, shipped_adapter

    model = load_embedded()
    assert model.name.startswith("gemma3-270m")
    if shipped_adapter() is not None:
        assert model.backward and "+" in model.name
    store.write(lambda tx: tx.executemany(
        "INSERT INTO documents (id, content_hash, text, lang, status) VALUES (?, ?, ?, ?, 'kept')",
        [[f"demo-{lang}", f"demo-{lang}", text, lang] for lang, text in DOCS.items()],
    ))
    stats = run(store, GenerateConfig(progress=False), model=model)
    with store.session() as tx:
        rows = tx.dicts("SELECT lang, instruction, gen_status, gen_reason FROM candidates ORDER BY lang")
    assert stats["generated"] == 3 and len(rows) == 3
    assert all(r["gen_status"] == "ok" and r["instruction"].strip() for r in rows), rows
