"""The pure per-document checks of ingest: normalisation, filters, and MinHash signatures that stay comparable."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from xinstruct.textcheck import (
    Limits,
    analyse,
    band_keys,
    boilerplate_reason,
    clean_text,
    content_key,
    english_share,
    minhash,
    script_mismatch,
    sha,
)

HI = ("दिल्ली में आज सुबह से तेज़ बारिश हो रही है। मौसम विभाग ने अगले दो दिनों तक भारी बारिश की चेतावनी दी है "
      "और लोगों से घर में रहने की अपील की है। कई इलाकों में पानी भर गया है और यातायात धीमा चल रहा है।")
TH = ("ข้าวเหนียวมะม่วงเป็นขนมหวานที่คนไทยนิยมกินในฤดูร้อน เพราะมะม่วงสุกจะหวานและหอมที่สุดในช่วงเดือนเมษายน "
      "การทำข้าวเหนียวมูนต้องใช้กะทิสดผสมน้ำตาลและเกลือเล็กน้อย แล้วราดลงบนข้าวเหนียวที่นึ่งร้อน ๆ")
SW = ("Wakulima wa kahawa katika mkoa wa Kilimanjaro wameanza kutumia mbinu mpya za kumwagilia mashamba yao kwa njia "
      "ya matone. Mbinu hii inasaidia kuokoa maji wakati wa kiangazi na kuongeza mavuno kwa kiasi kikubwa.")


def _reference_clean(text: str) -> str:
    """The specification of clean_text, written the slow, obvious way: per line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    lines = [re.sub(r"[ \t\u00a0\u200b]+", " ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@given(st.lists(st.sampled_from(list("ab \t\n\r\u00a0\u200b\u2003\u3000\x07\x0b\x1c.é") + ["e\u0301"]), max_size=60).map("".join))
def test_clean_text_matches_its_per_line_specification(text):
    assert clean_text(text) == _reference_clean(text)


def test_signatures_and_hashes_stay_comparable_with_stored_ones():
    """Stores keep content hashes, MinHash signatures and LSH band keys of earlier ingests: if any of these changed
    for the same text, exact and near duplicates of stored documents would slip through. The digests were taken with
    the first release's implementation (Hindi has combining marks, Thai no spaces, Swahili is plain Latin)."""
    got = {}
    for name, text in [("hi", HI), ("th", TH), ("sw", SW)]:
        sig = minhash(text)
        blob = sha(content_key(text)).encode() + sig.tobytes() + b"".join(k.to_bytes(8, "little") for k in band_keys(sig))
        got[name] = hashlib.sha256(blob).hexdigest()[:16]
    assert got == GOLDEN


GOLDEN = {"hi": "f140cb0b66beb28a", "th": "da0d1049c99e9486", "sw": "dd136c9a390fb950"}


def test_minhash_ignores_repeated_shingles_and_catches_small_edits():
    assert (minhash(SW + " " + SW) == minhash(SW + " " + SW + " " + SW)).all()
    edited = SW.replace("kahawa", "chai")
    assert (minhash(edited) == minhash(SW)).mean() > 0.7
    assert (minhash(HI) == minhash(SW)).mean() < 0.1


def test_boilerplate_reasons():
    assert boilerplate_reason(SW) is None
    assert "short" in boilerplate_reason("Home\nAbout\nContact\nLogin\nShop\nCart")
    assert "separators" in boilerplate_reason("Habari | Michezo | Biashara | Burudani | Siasa | Afya | Elimu | Dunia")
    assert "phrases" in boilerplate_reason(SW + " Cookie policy. Copyright 2024. Subscribe to our NEWSLETTER.")
    assert "letters" in boilerplate_reason("12 345 678 90 " * 20 + "kahawa")
    assert "repeated" in boilerplate_reason("\n".join([SW[:60]] * 3 + [SW[60:130]] * 3))


def test_script_and_english_checks():
    assert script_mismatch(HI, "hi") is None
    assert "Devanagari" in script_mismatch(HI[:40] + " " + SW, "hi")
    assert script_mismatch(SW, "sw") is None  # Latin-script languages are judged by language ID instead
    assert english_share(SW) == 0
    assert english_share("The farmers of the region say that the rain was late this year and the harvest is small") > 0.3


def test_analyse_decides_each_document_with_a_reason():
    limits = Limits(min_chars=100, max_chars=400, min_lang_confidence=0.5)
    out = analyse([(SW, "u1", "sw"), ("Mfupi sana.", None, "sw"), (SW * 5, None, "sw"), (HI, None, "sw"),
                   (TH, None, None)], limits, parallel=False)
    kept, short, long_, mismatch, undeclared = out
    assert kept.reason is None and kept.lang == "sw" and len(kept.bands) == 16 and kept.sig is not None
    assert kept.id == analyse([(SW, "u1", "sw")], limits)[0].id != analyse([(SW, "u2", "sw")], limits)[0].id
    assert short.reason == "too_short" and long_.reason == "too_long" and short.sig is None
    assert mismatch.reason == "language" and mismatch.mismatch and mismatch.detected == "hi"
    assert undeclared.reason is None and undeclared.lang == "th" and undeclared.declared is None
