"""The grounding check: names, numbers and quotes of an English instruction looked up in a native text.

The native sentences below were written for these tests (no data from ../shared)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xinstruct.errors import InputError
from xinstruct.grounding import Grounding, check, extract, prepare

# (lang, text, spans that must be found, spans that must be reported missing)
CASES = [
    ("bn", "শ্রীপেরুমবুদুর বিমানবন্দর চেন্নাইয়ের কাছে অবস্থিত। এটি ১৯৮৪ সালে চালু হয়।",
     ["Sriperumbudur", "Chennai", "1984"], ["Sri Ghalib Airport", "Kolkata"]),
    ("hi", "महात्मा गांधी का जन्म १८६९ में पोरबंदर में हुआ था।",
     ["Mahatma Gandhi", "Porbandar", "1869"], ["Ahmedabad", "Nehru"]),
    ("ta", "ஸ்ரீபெரும்புதூரில் புதிய விமான நிலையம் அமைக்கப்படும் என்று முதல்வர் ஜெயலலிதா கூறினார்.",
     ["Sriperumbudur", "Jayalalithaa"], ["Sri Ghalib Airport", "Karunanidhi"]),
    # Thai: no spaces between words; a Thai year is Buddhist era (1839 B.E. = 1296)
    ("th", "เชียงใหม่เป็นเมืองใหญ่ในภาคเหนือของประเทศไทยก่อตั้งเมื่อพ.ศ.๑๘๓๙โดยพญามังราย",
     ["Chiang Mai", "1296", "Phaya Mangrai"], ["Phuket", "Sukhothai", "1500"]),
    # Urdu: words written together ("وزیراعظم"), Extended Arabic-Indic digits
    ("ur", "وزیراعظم عمران خان نے اسلام آباد میں کہا کہ پاکستان ۲۰۱۹ میں ترقی کرےگا",
     ["Imran Khan", "Islamabad", "Pakistan", "2019"], ["Lahore", "Nawaz Sharif", "2020"]),
    ("fi", "Helsingissä asuu noin 650 000 ihmistä. Presidentti Sauli Niinistö vieraili Tampereella vuonna 2019.",
     ["Helsinki", "650,000", "Sauli Niinistö", "Tampere", "2019"], ["Turku", "Sanna Marin", "2018"]),
    ("tr", "Evliya Çelebi, Seyahatname adlı eserinde İstanbul'u ayrıntılı olarak anlatır. 1611 yılında doğdu.",
     ["Evliya Celebi", "Istanbul", "1611", "Seyahatname"], ["Mevlana", "Ankara"]),
    ("id", "Presiden Joko Widodo meresmikan Bandara Internasional Yogyakarta pada tahun 2020 dengan biaya Rp 11,3 "
           "triliun.",
     ["Joko Widodo", "Yogyakarta International Airport", "2020", "11.3"], ["Surabaya", "Megawati", "11.5"]),
    ("sw", "Rais Uhuru Kenyatta alizungumza na Wakenya jijini Nairobi mwaka 2018.",
     ["Uhuru Kenyatta", "Nairobi", "2018", "Kenya"], ["Mombasa", "Raila Odinga"]),
    ("vi", "Chủ tịch Hồ Chí Minh đọc Tuyên ngôn Độc lập tại Hà Nội ngày 2/9/1945.",
     ["Ho Chi Minh", "Hanoi", "1945"], ["Da Nang", "Hue", "1954"]),
]


@pytest.mark.parametrize("lang,text,present,absent", CASES, ids=[c[0] for c in CASES])
def test_names_and_numbers_are_found_across_scripts_and_invented_ones_are_missing(lang, text, present, absent):
    prep = prepare(text, lang)
    for span in present:
        g = check(f"What does the text say about {span}?", prep, lang)
        assert [s.text for s in g.checked] == [span], g.checked
        assert g.found and not g.missing, f"{span!r} should be found in {text!r}"
    for span in absent:
        g = check(f"What does the text say about {span}?", prep, lang)
        assert [s.text for s in g.missing] == [span], f"{span!r} should be missing from {text!r}"
        assert g.share_found == 0.0


def test_a_name_must_end_near_a_word_end_not_inside_the_next_word():
    # "Buddhists" (p-t-s-t-s) is one edit from পূজিত (p-s-t) plus the first letter of হস্তিদেবতা (s-t-p-t): a chance
    # match that runs three letters into a word. The generator's drafts were grounded this way (bench/grounding.py,
    # readers' drafts); "Ganesha" is in the text with a case ending.
    g = check("Why do Buddhists worship Ganesha?", "গ্রামে পূজিত হস্তিদেবতা গণেশের মূর্তি আছে।", "bn")
    assert [s.text for s in g.missing] == ["Buddhists"]
    assert [s.text for s in g.found] == ["Ganesha"]


def test_countries_and_languages_match_their_names_in_the_text_language():
    cases = [("fi", "Hän muutti Saksaan ja opiskeli arabiaa.", ["Germany", "Arabic"], ["France"]),
             ("tr", "Almanya'dan Hollanda'ya gitti.", ["Germany", "the Netherlands"], ["Greece"]),
             ("id", "Ia lahir di Jerman dan pindah ke Belanda.", ["Germany", "Netherlands"], ["China"]),
             ("hi", "वह भारत और चीन गया।", ["India", "China"], ["Japan"]),
             ("ur", "وہ بھارت اور چین گیا", ["India", "China"], ["Japan"])]
    for lang, text, present, absent in cases:
        for name in present:
            assert check(f"Why {name}?", text, lang).message == "", (lang, name)
        for name in absent:
            assert check(f"Why {name}?", text, lang).message == f"'{name}' not in the text", (lang, name)


def test_reviewer_message_names_the_invented_entity():
    text = CASES[2][1]  # Tamil, about Sriperumbudur
    g = check("Describe the Sri Ghalib Airport planned near Sriperumbudur and what Jayalalithaa said.", text, "ta")
    assert [s.text for s in g.checked] == ["Sri Ghalib Airport", "Sriperumbudur", "Jayalalithaa"]
    assert [s.text for s in g.missing] == ["Sri Ghalib Airport"]
    assert g.message == "'Sri Ghalib Airport' not in the text"
    assert g.share_found == pytest.approx(2 / 3)


def test_message_lists_several_missing_and_is_empty_when_all_found():
    text = CASES[6][1]  # Turkish, about Evliya Çelebi
    g = check("Why did Mevlana write about Ankara in 1611?", text, "tr")
    assert g.message == "'Mevlana' and 'Ankara' not in the text"
    g = check("Why did Mevlana visit Ankara and Konya?", text, "tr")
    assert g.message == "'Mevlana', 'Ankara' and 'Konya' not in the text"
    g = check("What did Evliya Çelebi write about Istanbul in 1611?", text, "tr")
    assert g.message == "" and g.share_found == 1.0


def test_nothing_to_check_counts_as_grounded():
    g = check("Write a short summary of this text in Swahili.", CASES[8][1], "sw")
    assert g.checked == [] and g.missing == [] and g.share_found == 1.0 and g.message == ""
    assert isinstance(g, Grounding)


def test_generic_words_language_names_and_sentence_starts_are_not_checked():
    spans = extract("Explain in English what the Swahili text says. Write 3 sentences about Nairobi in 5 bullet "
                    "points. Summarise it in under 100 words.", "sw")
    assert [(s.text, s.kind) for s in spans] == [("Nairobi", "name")]
    # a capitalised word that opens a sentence but is not a common instruction word is a name
    spans = extract("Sriperumbudur Airport: when will it open? Describe it.", "ta")
    assert [s.text for s in spans] == ["Sriperumbudur Airport"]
    # months and days are left out (no translation tables); a title word alone is not checked
    assert extract("What happened in March and on Monday to the President?", "fi") == []


def test_extracts_names_acronyms_numbers_and_quotes_with_offsets():
    instruction = ('Who founded the University of Helsinki, what did the BBC say about "Harambee" and why did '
                   "1,500 people and 3.5% of NATO members join in 1990s?")
    spans = extract(instruction, "fi")
    assert [(s.text, s.kind) for s in spans] == [
        ("University of Helsinki", "name"), ("BBC", "name"), ("Harambee", "quote"), ("1,500", "number"),
        ("3.5", "number"), ("NATO", "name"), ("1990", "number")]
    for s in spans:
        assert instruction[s.start:s.end] == s.text
    # commas, brackets and "and" end a name; "of" joins one
    spans = extract("Compare David Lloyd George, Woodrow Wilson and Georges Clemenceau (France).", "bn")
    assert [s.text for s in spans] == ["David Lloyd George", "Woodrow Wilson", "Georges Clemenceau", "France"]


def test_numbers_with_separators_decimals_and_native_digits():
    cases = [
        ("bn", "সংখ্যা ১২,৩৪৫ জন", "12,345"), ("hi", "संख्या १२,३४५ लोग", "12,345"),
        ("ta", "மக்கள் ௧௨௩௪௫ பேர்", "12,345"), ("th", "มีคน๑๒๓๔๕คน", "12,345"),
        ("ur", "تعداد ١٢٣٤٥ افراد", "12,345"), ("ur", "تعداد ۱۲۳۴۵ افراد", "12,345"),
        ("id", "sebanyak 12.345 jiwa dan 3,5 persen", "12,345"), ("id", "sebanyak 12.345 jiwa dan 3,5 persen", "3.5"),
        ("fi", "asukkaita 12 345 ja kasvu 3,5 prosenttia", "12,345"), ("vi", "có 12.345 người", "12,345"),
    ]
    for lang, text, number in cases:
        g = check(f"Why {number}?", text, lang)
        assert [s.text for s in g.found] == [number], (lang, text, number)
    # other numbers are missing, and a part of a number is not the number
    assert check("Why 12,346?", "sebanyak 12.345 jiwa", "id").message == "'12,346' not in the text"
    assert check("Why 3.6?", "kasvu 3,5 prosenttia", "fi").missing


def test_quoted_strings_are_checked_word_by_word():
    text = CASES[6][1]
    assert check('What does "Seyahatname" mean?', text, "tr").message == ""
    g = check('What does the phrase "ayrıntılı olarak anlatır" mean here?', text, "tr")
    assert g.found and g.found[0].kind == "quote"
    assert check('Who wrote "Kitab al-Hayawan"?', text, "tr").message == "'Kitab al-Hayawan' not in the text"


def test_prepared_text_gives_the_same_answer_and_rejects_another_language():
    lang, text = CASES[4][0], CASES[4][1]
    prep = prepare(text, lang)
    for instruction in ("What did Imran Khan say in Lahore in 2019?", "Why does Pakistan need Nawaz Sharif?"):
        a, b = check(instruction, prep, lang), check(instruction, text, lang)
        assert (a.checked, a.found, a.missing) == (b.checked, b.found, b.missing)
    with pytest.raises(InputError, match="prepared text is in 'ur'"):
        check("What did Imran Khan say?", prep, "hi")


def test_bad_input_is_a_clear_error():
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        check("Who is Imran Khan?", "text", "xx")
    with pytest.raises(InputError, match="instruction as a string"):
        check(None, "text", "ur")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="text as a string"):
        prepare(b"bytes", "ur")  # type: ignore[arg-type]
    # empty inputs are not errors: nothing to check, or everything missing
    assert check("", "", "th").share_found == 1.0
    assert check("Who is Imran Khan?", "", "ur").message == "'Imran Khan' not in the text"


def test_each_thing_is_checked_once_and_exam_boilerplate_is_not_a_name():
    spans = extract("Question: Amanda bought 30 apples.\nOptions:\n(A) 12\n(B) 30\nWhy did Amanda pay 45?", "bn")
    assert [s.text for s in spans] == ["Amanda", "30", "12", "45"]
    spans = extract("What did Muhammad Moazzam of WWF and Trinh Tu Van say?", "ur")
    assert [s.text for s in spans] == ["Muhammad Moazzam", "WWF", "Trinh Tu Van"]


def test_urdu_acronyms_spelled_out_and_z_letters():
    text = "ڈبلیو ڈبلیو ایف کے نمائندے محمد معظم نے بی جے پی پر تنقید کی"  # WWF's Muhammad Moazzam criticised the BJP
    g = check("What did Muhammad Moazzam of WWF say about the BJP?", text, "ur")
    assert g.message == "", g.missing
    assert check("What did the IMF say?", text, "ur").message == "'IMF' not in the text"


_PIECES = ["Sri", "Ghalib", "Airport", "1,500", "३.५", "๒๕๖๒", "\"", "'", "“", "of", "the", "WWF", "Ça", "İ", "ß",
           "ஸ்ரீ", "وزیراعظم", "เชียงใหม่", "\n", ".", ",", "-", "’s", "Van", "0", "１２", "\u200c", "\u0301"]


@given(instruction=st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=8)), max_size=30),
       text=st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=12)), max_size=60),
       lang=st.sampled_from(["bn", "fi", "hi", "id", "sw", "ta", "th", "tr", "ur", "vi"]))
@settings(max_examples=150, deadline=None, database=None)
@example(instruction=["0µA"], text=[], lang="bn")  # a name right after a digit (found by CI)
@example(instruction=["0.1.0"], text=[], lang="bn")  # a version string is not the number 0.1
def test_any_input_gives_a_consistent_answer(instruction, text, lang):
    instruction, text = " ".join(instruction), " ".join(text)
    g = check(instruction, text, lang)
    assert sorted(g.found + g.missing, key=lambda s: s.start) == g.checked
    assert all(instruction[s.start:s.end] == s.text for s in g.checked)
    assert 0.0 <= g.share_found <= 1.0 and (g.message == "") == (not g.missing)
    # a span copied into the text is found (what the instruction names verbatim is there)
    if g.checked:
        assert not check(instruction, instruction + " " + text, lang).missing or lang in ("th", "ur", "vi")
