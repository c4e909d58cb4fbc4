"""Prompts of the generation stage and the parser of their outputs: pure functions, golden-tested.

The wording is the authors' (X-Instruction, ACL Findings 2024). A prompt is the task line, optional few-shot blocks of the
same language, then the text to describe:

    Below is a text that describes a candidate output. Write an English instruction that can take the given text as an
    appropriate answer.

    ### Text:
    <native text>

    ### English Instruction:
    <instruction>            <- the model writes this line

The trained backward model sees the same prompt without examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import langid
from .langs import check_lang, dominant_script
from .seed import SeedPair

PROMPT_VERSION = "gen-v1"
TASK = ("Below is a text that describes a candidate output. "
        "Write an English instruction that can take the given text as an appropriate answer.")
TEXT_HEADER = "### Text:"
INSTRUCTION_HEADER = "### English Instruction:"
EXAMPLE_CHARS = 400  # few-shot responses are clipped to this many characters (the prompt stays short on CPU)
MIN_CHARS, MAX_CHARS = 10, 400


def clip_text(text: str, max_chars: int | None) -> str:
    """Cut `text` to at most `max_chars`, at the last whitespace when one is near the end (Thai has none: hard cut)."""
    text = text.strip()
    if max_chars is None or len(text) <= max_chars:
        return text
    head = text[:max_chars]
    space = max(head.rfind(" "), head.rfind("\n"))
    return (head[:space] if space >= max_chars * 0.8 else head).rstrip()


def format_block(text: str, instruction: str = "") -> str:
    """One text/instruction block; with an empty instruction it ends where the model should start writing."""
    return f"{TEXT_HEADER}\n{text}\n\n{INSTRUCTION_HEADER}\n{instruction}"


def build_generation_prompt(text: str, lang: str, examples: Sequence[SeedPair] = (), *,
                            max_chars: int | None = None) -> str:
    """The generation prompt for one native `text`, with few-shot `examples` (same language) before it."""
    lang = check_lang(lang)
    other = [e.lang for e in examples if e.lang != lang]
    if other:
        raise ValueError(f"few-shot examples must be in the text's language {lang}, got {sorted(set(other))}")
    blocks = [format_block(clip_text(e.response, EXAMPLE_CHARS), e.instruction) for e in examples]
    blocks.append(format_block(clip_text(text, max_chars)))
    return TASK + "\n\n" + "\n\n".join(blocks)


# A leading label the model may write before the instruction: "### English Instruction:", "Instruction:", "Q:", "1." ...
_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:english\s+)?(?:instruction|question|prompt|task|q)\s*[:：]\s*|^\s*(?:\d+[.)]|[-*•])\s+",
                    re.IGNORECASE)
_QUOTES = "\"'“”‘’«»「」`"


def clean_line(line: str) -> str | None:
    """Strip labels, quotes and a '### ...' continuation from one line. None when the line opens another block."""
    line = line.strip()
    if line.startswith("#") and not _LABEL.match(line):
        return None  # e.g. "### Text:": the model started a new block instead of writing an instruction
    prev = None
    while prev != line:
        prev = line
        line = _LABEL.sub("", line, count=1).strip()
        line = line.split("###", 1)[0].strip()
        if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
    return line


def parse_instruction(output: str) -> tuple[str | None, str | None]:
    """The instruction in a model output, or None with the reason it was rejected (reason is None when accepted).

    Takes the first non-empty line (labels, quotes and '### ...' continuations removed) and keeps it only if it is
    10-400 characters of English.
    """
    instruction = ""
    for line in output.splitlines():
        cleaned = clean_line(line)
        if cleaned is None:
            break
        if cleaned:
            instruction = cleaned
            break
    if not instruction:
        return None, "empty"
    if len(instruction) < MIN_CHARS:
        return None, "too short"
    if len(instruction) > MAX_CHARS:
        return None, "too long"
    script = dominant_script(instruction)
    if script != "LATIN":
        return None, f"not English ({script.lower()} script)" if script else "not English (no letters)"
    detected = langid.detect([instruction])[0].lang
    if detected != "en":
        return None, f"not English (detected {detected or 'unknown'})"
    return instruction, None
