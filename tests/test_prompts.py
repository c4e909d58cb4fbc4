"""Golden tests of the generation prompt (all ten languages) and of the instruction parser."""

from __future__ import annotations

import pytest

from xinstruct.prompts import PROMPT_VERSION, build_generation_prompt, clip_text, parse_instruction
from xinstruct.seed import SeedPair

# The authors' wording, spelled out here on purpose: a change to the prompt must change this test (and PROMPT_VERSION).
TASK = ("Below is a text that describes a candidate output. "
        "Write an English instruction that can take the given text as an appropriate answer.")

TEXTS = {
    "bn": "ঢাকা বাংলাদেশের রাজধানী এবং সবচেয়ে বড় শহর।",
    "fi": "Helsinki on Suomen pääkaupunki ja sen suurin kaupunki.",
    "hi": "दिल्ली भारत की राजधानी है और यहाँ कई ऐतिहासिक स्मारक हैं।",
    "id": "Jakarta adalah ibu kota Indonesia dan kota terbesar di negara ini.",
    "sw": "Dar es Salaam ni mji mkubwa zaidi nchini Tanzania.",
    "ta": "சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும்.",
    "th": "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทยและเป็นเมืองที่ใหญ่ที่สุด",
    "tr": "İstanbul, Türkiye'nin en kalabalık şehridir.",
    "ur": "کراچی پاکستان کا سب سے بڑا شہر ہے۔",
    "vi": "Hà Nội là thủ đô của Việt Nam.",
}


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_zero_shot_prompt_is_golden_in_every_language(lang):
    expected = f"{TASK}\n\n### Text:\n{TEXTS[lang]}\n\n### English Instruction:\n"
    assert build_generation_prompt(TEXTS[lang], lang) == expected


def test_rtl_and_unspaced_scripts_appear_verbatim():
    urdu = build_generation_prompt(TEXTS["ur"], "ur")
    thai = build_generation_prompt(TEXTS["th"], "th")
    assert "### Text:\nکراچی پاکستان کا سب سے بڑا شہر ہے۔\n\n" in urdu
    assert "\nกรุงเทพมหานครเป็นเมืองหลวงของประเทศไทยและเป็นเมืองที่ใหญ่ที่สุด\n" in thai


def test_few_shot_examples_come_first_in_the_same_format():
    examples = [SeedPair("s1", "sw", "Describe the city of Arusha.", "Arusha ni mji ulioko kaskazini mwa Tanzania."),
                SeedPair("s2", "sw", "Write a sentence about Lake Victoria.", "Ziwa Viktoria ni ziwa kubwa.")]
    expected = (
        f"{TASK}\n\n"
        "### Text:\nArusha ni mji ulioko kaskazini mwa Tanzania.\n\n### English Instruction:\nDescribe the city of Arusha.\n\n"
        "### Text:\nZiwa Viktoria ni ziwa kubwa.\n\n### English Instruction:\nWrite a sentence about Lake Victoria.\n\n"
        f"### Text:\n{TEXTS['sw']}\n\n### English Instruction:\n"
    )
    assert build_generation_prompt(TEXTS["sw"], "sw", examples) == expected


def test_examples_of_another_language_are_refused():
    with pytest.raises(ValueError, match="language sw"):
        build_generation_prompt(TEXTS["sw"], "sw", [SeedPair("x", "fi", "Describe Helsinki.", TEXTS["fi"])])


def test_unknown_language_is_a_user_error():
    from xinstruct.errors import InputError

    with pytest.raises(InputError, match="unknown language"):
        build_generation_prompt("text", "xx")


def test_clip_text_cuts_at_a_space_or_hard_for_thai():
    assert clip_text("alpha beta gamma delta", 19) == "alpha beta gamma"
    assert clip_text("alpha beta gamma delta", 13) == "alpha beta ga"  # no space near the end: hard cut
    assert clip_text(TEXTS["th"], 10) == TEXTS["th"][:10]
    assert clip_text("  short  ", 100) == "short"
    assert build_generation_prompt("word " * 100, "fi", max_chars=20).count("word") == 4


def test_prompt_version_is_set():
    assert PROMPT_VERSION


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Write a short story about a village.\nThe village was small.", "Write a short story about a village."),
        ('"Explain how photosynthesis works."', "Explain how photosynthesis works."),
        ("“Summarize the news about the election.”", "Summarize the news about the election."),
        ("  \n\n  Write a poem about the sea.  ", "Write a poem about the sea."),
        ("Instruction: Describe the history of Istanbul.", "Describe the history of Istanbul."),
        ("### English Instruction: Summarize the article about the floods. ### Text: Mvua kubwa",
         "Summarize the article about the floods."),
        ("### English Instruction:\nList the main causes of the floods.", "List the main causes of the floods."),
        ("1. What are the main exports of Vietnam?", "What are the main exports of Vietnam?"),
    ],
)
def test_parser_keeps_the_first_instruction_line(output, expected):
    assert parse_instruction(output) == (expected, None)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "empty"),
        ("   \n \n", "empty"),
        ("### Text:\nMvua kubwa imenyesha.", "empty"),
        ('""', "empty"),
        ("Explain.", "too short"),
        ("Explain " + "the history of the city in detail " * 15, "too long"),
        ("Kirjoita lyhyt tarina pienestä kylästä ja sen ihmisistä.", "not English (detected fi)"),
        ("Andika hadithi fupi kuhusu kijiji hiki kidogo na watu wake.", "not English (detected sw)"),
        ("Viết một đoạn văn ngắn về lịch sử của thành phố Hà Nội.", "not English (detected vi)"),
        (TEXTS["th"], "not English (thai script)"),
        (TEXTS["ur"], "not English (arabic script)"),
        ("1. 1. 1. 1. 1. 1.", "too short"),
        ("123 456 789 1011 1213", "not English (no letters)"),
    ],
)
def test_parser_rejects_with_a_reason(output, reason):
    assert parse_instruction(output) == (None, reason)
