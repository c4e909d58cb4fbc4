"""Grounding: are the names, numbers and quoted strings of an English instruction found in its native text?

The generator's commonest failure is an invented or garbled name ("Sri Ghalib Airport" for a text about Sriperumbudur).
`check(instruction, text, lang)` extracts what the instruction asserts about the text and looks for each item in it:

* **names and entities**: capitalised words not at a sentence start (or at one, when not a common instruction word),
  joined into spans ("Gateway of India"), acronyms ("FIFA"), words written in a non-Latin script; generic title words
  ("Airport", "University", "King"), language names ("Swahili", "English"), month and day names are not checked on their
  own (month names would need translation tables: left out on purpose);
* **numbers** with thousand separators and decimals ("1,500", "3.5", "1990s"), not small counts (0-10) that usually say
  how much to write or are spelled out in the text; Thai years also match the Buddhist-era year (+543);
* **quoted strings** ("...", '...', “...”), matched word by word like names.

Matching allows transliteration between scripts. The text is split into words, each romanised with `anyascii`, and
keyed per language:

* Latin-script languages (fi id sw tr vi): case and diacritics folded ("Çelebi" = "Celebi"), the key is the word's
  letters; a name may match the start of a word (Finnish case endings "Helsingissä", Vietnamese syllables "Hà Nội" =
  "Hanoi") and, for Indonesian and Swahili, after a short prefix ("Wakenya"); a consonant skeleton of four or more
  letters matching a whole word is accepted too ("Jamshid" = "Cemşid"; not in Vietnamese);
* Bengali, Devanagari, Tamil, Thai and Urdu: a consonant skeleton. Vowels, y, w and h are dropped (Urdu writes few
  vowels; anyascii leaves out the inherent vowel of Indic scripts; Thai puts leading vowels before their consonant),
  voiced and voiceless pairs are folded (Tamil script does not tell k from g), s/c/j/z are one class and m/n another.
  Thai writes words together, so a name may match anywhere; in the other scripts it must start at a word start (Urdu
  names written together with the next word still start one). A skeleton of two or three consonants ('Gauri' is k-r,
  like the Hindi verb kar) must also match one word with its vowels, at most one vowel apart; in Thai it is no evidence.
* Acronyms in a non-Latin text are looked for as spoken letters ("WWF" is "dablyu dablyu ef", "BJP" "bi je pi") and,
  when they have a vowel, as a word ("FIFA").
* Countries, regions and languages also match their CLDR names in the text's language (Babel): "Germany" is "Saksa",
  "Almanya", "Jerman", "जर्मनी"; a few English short names (US, UK, Holland) are mapped to their CLDR territory.

A match allows a few edits, depending on the key's length and language (`_max_edits`, measured in
`bench/grounding.py`). Native digits (Bengali, Devanagari, Tamil, Thai, Arabic-Indic, Extended Arabic-Indic) are read
as ASCII digits; "1.500" in the text is both 1500 and 1.5.

Use `prepare(text, lang)` once per text when several instructions are checked against it: romanising the text is the
slow part (a few milliseconds for 3,000 characters on a loaded 2-core machine; words are cached across texts);
checking one instruction against a prepared text takes about a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache

import regex
from anyascii import anyascii
from rapidfuzz.distance import Levenshtein

from .errors import InputError
from .langs import check_lang

__all__ = ["Span", "Grounding", "Prepared", "prepare", "extract", "check"]


@dataclass(frozen=True)
class Span:
    """One thing the instruction says that the text must contain: `text` as written in the instruction."""

    text: str
    kind: str  # "name", "number" or "quote"
    start: int  # character offsets in the instruction
    end: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Grounding:
    """The result of `check`: every span checked, split into found and missing (in instruction order)."""

    checked: list[Span]
    found: list[Span]
    missing: list[Span]

    @property
    def share_found(self) -> float:
        """Share of checked spans found in the text; 1.0 when the instruction names nothing to check."""
        return len(self.found) / len(self.checked) if self.checked else 1.0

    @property
    def message(self) -> str:
        """For reviewers: "'Sri Ghalib Airport' not in the text"; empty when everything was found."""
        if not self.missing:
            return ""
        quoted = [f"'{s.text}'" for s in self.missing]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        return f"{listed} not in the text"


# ---------------------------------------------------------------------------------------------------------------------
# Words that are not checked
# ---------------------------------------------------------------------------------------------------------------------
# Words an instruction starts a sentence with (checked only when not in this list).
_COMMON = set("""
a about according after all also an analyse analyze and any are as ask assume at based be before between briefly but
by calculate can choose classify compare compose consider could create describe design detail determine did discuss do
does draft each edit elaborate email estimate evaluate even every examine explain express extract find first for from
generate give given how however identify if illustrate imagine in include into is it its just let list make mention
name next no not now of on once only or outline paraphrase please point predict prepare present provide read recommend
rephrase rewrite say should show since so some state suggest summarise summarize suppose take talk teach tell than
that the their then there these they this those though to today translate under use using was we were what whats when
where whether which while who whom whose why will with within without would write yes you your above act add after
again answer another argue begin below both brainstorm categorise categorize change check clarify combine complete
connect continue convert correct count critique define delete different dear either end example examples expand few
finally finish fix follow following format group he hello her here hey hi his how identify improve interpret invent
justify keep kind kinds label lastly less link list locate long look many map mark match more most my neither note
okay one order our output pair pick plan play pretend print propose rank rate reflect remember remove reply respond
return review reword second select separate several she short shorten simplify solve sort spot start stop such sure
tag thank thanks think third three transform turn two type types watch question questions options option random hmm
hmmm stream step solution problem context input output passage text zero four five six seven eight nine ten eleven
twelve twenty hundred thousand million
""".split())

# Capitalised words that are generic parts of names or titles: translated in the text, so not checked on their own.
_GENERIC = set("""
academy act age armed agency agreement airlines airport alliance ancient army assembly association authority avenue
award bank battle bay beach bishop board bridge building bureau cabinet camp canal cape capital captain castle
cathedral center centre central championship chapter chief church city civil club coast college commission committee
commonwealth company conference constitution corporation council count country county court cup day democratic
department desert district doctor dr duke dynasty east eastern emperor empire era festival federal federation force
forces forest fort foundation front game games general god government governor grand great group gulf hall harbour
harbor high highway hill hills hospital hotel house imperial independence institute international island islands
journal judge king kingdom lake law league liberation library lord lower lt madam market mayor media memorial minister
ministry mosque mount mountain mountains movement mr mrs ms museum national navy new north northern ocean office old
order organisation organization palace park parliament party peninsula people peoples plains plateau police pope port
president prime prince princess prize professor program programme project province queen railway regency region
republic revolution river road royal saint school sea secretary senate sir society south southern sr st stadium state
states station street sultan summit supreme team temple theatre theater tower town treaty tribe union united
university upper valley village war west western world zone i january february march april may june july august
september october november december monday tuesday wednesday thursday friday saturday sunday english bengali bangla
finnish hindi indonesian swahili kiswahili tamil thai turkish urdu vietnamese
""".split())

# Lower-case words allowed inside a name span: "Gateway of India", "Abu al-Qasim", "Ludwig van Beethoven".
_CONNECTORS = {"of", "the", "de", "del", "der", "da", "di", "du", "la", "le", "van", "von", "bin", "binti", "al", "el",
               "dos", "das", "ibn", "bint", "ul", "ud"}
_ROMAN = re.compile(r"^[IVXLC]+$")  # "King George V", "World War II": numerals, spelled out in the text

# Integers up to this are counts of what to write ("3 sentences") or spelled out in the text ("three"): not checked.
# Larger ones before an output-size word ("in 100 words", `_SIZE_WORDS`) are not checked either.
_SMALL_COUNT = 10

_THAI_MIN = 4  # Thai keys shorter than this are no evidence (measured: 3 lets 22% of swapped names through)
_LATIN_SKELETON_MIN = 4  # shorter skeletons of names in Latin-script texts match common words ('Aconcagua' is k-n-k)
_MIN_LEN = 3  # a word whose key is shorter is no evidence on its own ('Ali' is 'l' in consonants)
_LATIN = {"fi", "id", "sw", "tr", "vi"}
# How much of the last word a match may leave over (case endings, postpositions written together). Every match must
# end this near a word end: a long key that runs on into the next word is chance ('Buddhists' as p-s-t of one Bengali
# word plus the s of the next; measured on readers' drafts in bench/grounding.py, no true span lost). Thai has no
# spaces to end at.
_TAIL = {"bn": 2, "hi": 1, "ta": 3, "ur": 1, "th": None, "fi": 4, "tr": 4, "id": 3, "sw": 2, "vi": 0}
_PREFIXES = {"sw": ("m", "wa", "ki", "u", "ji", "ma", "vi"), "id": ("ke", "di", "se", "ber", "ter", "me", "pe")}

# ---------------------------------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------------------------------
_NATIVE_DIGITS = {}
# Bengali, Devanagari, Tamil, Thai, Arabic-Indic, Extended Arabic-Indic, full-width
for _zero in (0x09E6, 0x0966, 0x0BE6, 0x0E50, 0x0660, 0x06F0, 0xFF10):
    for _d in range(10):
        _NATIVE_DIGITS[_zero + _d] = str(_d)
_DIGITS_TABLE = str.maketrans(_NATIVE_DIGITS)

# Urdu says ذ ض ظ as z and ث as s (anyascii writes the Arabic dh, d, dh, th): Moazzam is معظم
_URDU_Z = str.maketrans({"ذ": "ز", "ض": "ز", "ظ": "ز", "ث": "س"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_CONSONANT_H = re.compile(r"([bcdgjkpstz])h")
_SOFT_C = re.compile(r"c(?=[eiy])")
_SOFT_G = re.compile(r"(?<!g)g(?=[eiy])")
_CH_K = re.compile(r"ch(?=[rl])")
_CLASSES = str.maketrans({"b": "p", "f": "p", "v": "p", "d": "t", "g": "k", "q": "k", "c": "s", "j": "s", "z": "s",
                          "m": "n", "x": "ks"})
_DROP = re.compile(r"[aeiouyhw0-9]+")
_FINAL_E = re.compile(r"(?<=[^aeiou]{1})e$")
_VOWELS = str.maketrans({"y": "i", "w": "u", "h": None, **{d: None for d in "0123456789"}})
# anyascii leaves out the inherent vowel of Indic scripts (गणेश is "gnes"): a (Bengali: also o) is dropped on both sides
_INDIC_VOWELS = str.maketrans({"y": "i", "w": "u", "h": None, "a": None, **{d: None for d in "0123456789"}})
_BENGALI_VOWELS = str.maketrans({"y": "i", "w": "u", "h": None, "a": None, "o": None,
                                 **{d: None for d in "0123456789"}})
_W_V = re.compile(r"w(?=[aeiouy])")
_H_K = re.compile(r"(?<=[aeiou])h(?=[aeiou])")
_URDU_VOWELS = str.maketrans({"y": "i", "w": "u", "h": None, "a": None, "e": "i", "o": "u",
                              **{d: None for d in "0123456789"}})
_REPEATS = re.compile(r"(.)\1+")


def _fold(word: str) -> str:
    """Romanised, lower-cased letters and digits: 'Çelebi' -> 'celebi', 'শ্রী' -> 'sri'."""
    # anyascii writes the Indic flapped r (ড়, ड़) as d': it is an r to an English ear (Bogura, Garhwal)
    return _NOT_ALNUM.sub("", anyascii(word.translate(_URDU_Z)).lower().replace("d'", "r"))


def _skeleton(folded: str, *, english: bool = False, lang: str = "", vowels: bool = False) -> str:
    """Consonant classes of a folded word, vowels/y/w/h dropped, repeats collapsed: 'sriperumbudur' -> 'srprnptr'.

    `english` applies English spelling first (soft c is s, hard c is k, 'ck' is k, w is v to Hindi and Tamil ears);
    romanised native text spells c for the ch sound. `vowels` keeps the vowels (y as i, w as u; Urdu writes no short
    vowels and anyascii drops its alef, so there a is dropped, e is i and o is u): the vowelled key that short names
    must match as well ('Gauri' is not any Hindi word starting k-r)."""
    s = folded
    if english:
        s = _CH_K.sub("k", s.replace("ck", "k"))  # Christian, Chloe
        s = _SOFT_G.sub("j", _SOFT_C.sub("s", s))  # Clemenceau, George
        s = s.replace("ch", "C").replace("c", "k").replace("C", "c")
        if lang in ("hi", "ta"):
            s = _W_V.sub("v", s)  # Warsaw is "vorso" in Hindi
        if lang == "ta":
            s = _H_K.sub("k", s)  # Tamil has no h between vowels: Rahul is "rakul", Bihar "pikar"
        if vowels:
            s = _FINAL_E.sub("", s.replace("ee", "i").replace("oo", "u"))
    s = _CONSONANT_H.sub(r"\1", s).translate(_CLASSES)
    if vowels:
        s = s.translate(_URDU_VOWELS if lang == "ur" else _BENGALI_VOWELS if lang == "bn" else
                        _INDIC_VOWELS if lang in ("hi", "ta") else _VOWELS)
    else:
        s = _DROP.sub("", s)
    return _REPEATS.sub(r"\1", s)


def _max_edits(n: int, lang: str) -> int:
    """Edits allowed between a key of length n and the text (measured in bench/grounding.py): none up to 4 letters,
    then one per 4 letters; Urdu skeletons (few letters, no vowels) and Vietnamese syllables (short common words)
    match by chance with fewer: none up to 6 (Urdu) or 9 (Vietnamese) letters, then one per 5; Thai, searched
    anywhere, one per 5 letters."""
    if lang == "ur":
        return 0 if n <= 6 else n // 5
    if lang == "vi":
        return 0 if n <= 9 else n // 5
    if lang == "th":  # searched anywhere in the text, not only at word starts
        return 0 if n <= 4 else n // 5
    return 0 if n <= 4 else n // 4


# ---------------------------------------------------------------------------------------------------------------------
# The prepared text
# ---------------------------------------------------------------------------------------------------------------------
_WORD = regex.compile(r"[\p{L}\p{M}]+")
_LETTER = regex.compile(r"[\p{L}\p{M}]")
_TEXT_NUMBER = re.compile(r"\d+(?:(?:[.,'\u00a0\u202f\u2009 ](?=\d{3}(?!\d))|[.,])\d+)*")


@dataclass
class _View:
    """The keys of all words of a text, concatenated, and where a match may start and end."""

    stream: str
    starts: frozenset[int]  # word starts (and starts after a known prefix); empty when `anywhere`
    ends: list[int]  # word ends, ascending
    anywhere: bool  # a match may start anywhere (Thai)

    @classmethod
    def build(cls, keys: list[str], anywhere: bool, prefixes: tuple[str, ...] = ()) -> "_View":
        keys = [k for k in keys if k]
        starts, ends, pos = set(), [], 0
        for k in keys:
            starts.add(pos)
            starts.update(pos + len(p) for p in prefixes if k.startswith(p) and len(k) > len(p) + 2)
            pos += len(k)
            ends.append(pos)
        return cls("".join(keys), frozenset() if anywhere else frozenset(starts), ends, anywhere)

    def _tail_ok(self, end: int, tail: int | None) -> bool:
        """Whether a match ending at `end` leaves at most `tail` characters of its last word (a case ending)."""
        if tail is None:
            return True
        i = bisect_left(self.ends, end)
        return i < len(self.ends) and self.ends[i] - end <= tail

    def find(self, key: str, edits: int, tail: int | None = None) -> bool:
        """Whether `key` occurs within `edits` edits: at a word start unless `anywhere`, and, when `tail` is given,
        ending at most `tail` characters before a word end.

        With e edits, one of e+1 pieces of the key occurs unchanged, shifted by at most e: the pieces are found by
        substring search and only the starts around them are compared (Levenshtein with a cutoff)."""
        n, stream = len(key), self.stream
        if n == 0:
            return False
        size = n // (edits + 1)
        tried: set[int] = set()
        for c in range(edits + 1):
            offset = c * size
            piece = key[offset:offset + size] if c < edits else key[offset:]
            pos = stream.find(piece)
            while pos >= 0:
                for start in range(max(0, pos - offset - edits), pos - offset + edits + 1):
                    if start in tried or not (self.anywhere or start in self.starts):
                        continue
                    tried.add(start)
                    for length in (n, n - 1, n + 1) if edits else (n,):
                        if Levenshtein.distance(key, stream[start:start + length], score_cutoff=edits) <= edits \
                                and self._tail_ok(start + length, tail):
                            return True
                pos = stream.find(piece, pos + 1)
        return False


@dataclass
class Prepared:
    """A text romanised and keyed once, for checking several instructions against it (`prepare`)."""

    lang: str
    text: str
    view: _View  # the language's keys: folded words (Latin scripts) or consonant skeletons
    skeletons: _View | None  # Latin-script languages: consonant skeletons too (Jamshid = Cemşid, Germany = Jerman)
    pairs: list[tuple[str, str]]  # Bengali, Hindi, Tamil, Urdu: (skeleton, vowelled key) of every word, for short names
    numbers: frozenset[str]
    latin_words: frozenset[str]  # non-Latin-script languages: words the text writes in Latin letters, folded
    folded_text: str  # the text case-folded, for names written exactly as in the instruction


def prepare(text: str, lang: str) -> Prepared:
    """Romanise and key `text` (a native web text in `lang`) for `check`."""
    lang = check_lang(lang)
    if not isinstance(text, str):
        raise InputError(f"grounding needs the text as a string, got {type(text).__name__}",
                         hint="pass the document's text")
    words = _WORD.findall(text)
    keyed = [_text_word(w, lang) for w in words]
    folded = [k[0] for k in keyed]
    skels = [k[1] for k in keyed]
    pairs: list[tuple[str, str]] = []
    if lang in _LATIN:
        view = _View.build(folded, False, _PREFIXES.get(lang, ()))
        skeletons = _View.build(skels, False) if lang != "vi" else None  # Vietnamese names are spelled as written
    else:
        view, skeletons = _View.build(skels, lang == "th"), None
        if lang != "th":
            pairs = [(k[1], k[2]) for k in keyed]
    latin = frozenset() if lang in _LATIN else frozenset(f for w, f in zip(words, folded) if not _is_native(w))
    return Prepared(lang, text, view, skeletons, pairs, _text_numbers(text.translate(_DIGITS_TABLE)), latin,
                    text.casefold())


@lru_cache(maxsize=200_000)
def _text_word(word: str, lang: str) -> tuple[str, str, str]:
    """A word of a text: folded, skeleton, vowelled key (words repeat: cached across texts)."""
    folded = _fold(word)
    vowelled = _skeleton(folded, lang=lang, vowels=True) if lang not in _LATIN and lang != "th" else ""
    return folded, _skeleton(folded), vowelled


def _text_numbers(text: str) -> frozenset[str]:
    """Every reading of every number in the text: '1.500' -> {'1500', '1.5'}, '3,5' -> {'35', '3.5'}."""
    out: set[str] = set()
    for m in _TEXT_NUMBER.finditer(text):
        raw = m.group()
        parts = re.split(r"[.,'\u00a0\u202f\u2009 ]", raw)
        out.add(_canon("".join(parts)))
        out.update(_canon(p) for p in parts)
        if len(parts) >= 2:
            out.add(_canon("".join(parts[:-1]) + "." + parts[-1]))
    return frozenset(out)


def _canon(number: str) -> str:
    """'0015' -> '15', '3.50' -> '3.5', '2.0' -> '2'."""
    if "." in number:
        whole, frac = number.split(".", 1)
        frac = frac.rstrip("0")
        whole = whole.lstrip("0") or "0"
        return f"{whole}.{frac}" if frac else whole
    return number.lstrip("0") or "0"


# ---------------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------------
_QUOTE = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|‘([^’\n]{2,80})’|«([^»\n]{2,80})»|"
                    r"(?<![\w])'([^'\n]{2,80})'(?![\w])")
# a whole number, not the head of a longer one: "0.1.0" (a version) and "1,5000" name no number
_INSTR_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?!\d|[.,]\d)")
_SIZE_WORDS = re.compile(r"\s*(?:[a-z-]+\s+)?(?:sentences?|words?|paragraphs?|bullets?|points?|questions?|lines?|"
                         r"items?|examples?|tips?|reasons?|ways?|steps?|options?|facts?|sections?|characters?)\b",
                         re.IGNORECASE)
_TOKEN = regex.compile(r"[\p{L}\p{M}][\p{L}\p{M}\p{N}]*(?:['’][\p{L}\p{M}\p{N}]+)*|\n|[^\s\p{L}\p{M}]")
_SENTENCE_END = {".", "!", "?", ":", ";", "\n"}


def extract(instruction: str, lang: str) -> list[Span]:
    """The names, numbers and quoted strings of an English instruction that its text in `lang` must contain."""
    lang = check_lang(lang)
    if not isinstance(instruction, str):
        raise InputError(f"grounding needs the instruction as a string, got {type(instruction).__name__}",
                         hint="pass the candidate's instruction")
    spans: list[Span] = []
    quoted: list[tuple[int, int]] = []
    for m in _QUOTE.finditer(instruction):
        g = next(i for i in range(1, 6) if m.group(i) is not None)
        raw = m.group(g)
        body = raw.strip()
        if _WORD.search(body):
            start = m.start(g) + len(raw) - len(raw.lstrip())
            spans.append(Span(body, "quote", start, start + len(body)))
            quoted.append((m.start(), m.end()))

    def outside(a: int, b: int) -> bool:
        return not any(qa <= a < qb or qa < b <= qb for qa, qb in quoted)

    for m in _INSTR_NUMBER.finditer(instruction):
        if not outside(m.start(), m.end()):
            continue
        whole = m.group(1).replace(",", "")
        if m.group(2) is None and int(whole) <= _SMALL_COUNT and "%" not in instruction[m.end():m.end() + 2]:
            continue
        if m.group(2) is None and _SIZE_WORDS.match(instruction, m.end()):
            continue
        spans.append(Span(m.group(), "number", m.start(), m.end()))

    run: list[regex.Match] = []  # the current name span: capitalised words and the connectors between them
    at_start = True

    def close():
        while run and run[-1].group() in _CONNECTORS:  # a trailing "of"; a capitalised Van is a name
            run.pop()
        if run and (any(_is_checkable(w.group()) for w in run)
                    or _exonym(instruction[run[0].start():run[-1].end()], lang)):
            spans.append(Span(instruction[run[0].start():run[-1].end()], "name", run[0].start(), run[-1].end()))
        run.clear()

    for m in _TOKEN.finditer(instruction):
        tok = m.group()
        if tok in _SENTENCE_END:
            close()
            at_start = True
            continue
        if not outside(m.start(), m.end()) or not tok[0].isalpha():  # quotes, commas, brackets end a name
            close()
            at_start = at_start and not tok[0].isalnum()
            continue
        base = _strip_possessive(tok)
        is_name = _looks_like_name(base) and not (at_start and base.lower() in _COMMON)
        if is_name and run and run[-1].group().lower() in _CONNECTORS and _is_acronym(base):
            close()  # "Muhammad Moazzam of WWF": an organisation after "of" is a name of its own
            run.append(m)
        elif is_name:
            run.append(m)
        elif run and tok.lower() in _CONNECTORS:
            run.append(m)
        else:
            close()
        at_start = False
    close()
    spans.sort(key=lambda s: s.start)
    seen: set[tuple[str, str]] = set()
    unique = []
    for s in spans:  # each thing once, where the instruction first names it
        key = (s.kind, s.text.casefold())
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _strip_possessive(word: str) -> str:
    return re.sub(r"['’]s$", "", word)


def _looks_like_name(word: str) -> bool:
    """Capitalised or an acronym, or written in a script other than Latin."""
    first = word[0]
    if not first.isalpha():
        return False
    if first.isupper():
        return True
    return not unicodedata.name(first, "").startswith("LATIN")


def _is_checkable(word: str) -> bool:
    word = _strip_possessive(word)
    if len(word) < 2 or _ROMAN.match(word):
        return False
    base = word.lower()
    return base not in _GENERIC and base not in _CONNECTORS and base not in _COMMON or _is_acronym(word)


def _is_acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters) and word.lower() not in ("i",)


# ---------------------------------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------------------------------
def _units(span: Span) -> list[str]:
    """The words of a span that are checked: generic words and connectors are left out."""
    words = [_strip_possessive(w) for w in _WORD.findall(span.text)]
    if span.kind == "quote":
        return words
    return [w for w in words if _is_checkable(w)]


def _found(span: Span, prep: Prepared) -> bool:
    if span.kind == "number":
        return _number_found(span.text, prep)
    if _verbatim(span.text, prep):
        return True  # written the same way in the text, as a whole word or words
    words = _units(span)
    # countries and languages have their own names in the text's language (Germany: Saksa, Almanya, Jerman, เยอรมนี)
    natives = _exonym(span.text, prep.lang) if span.kind == "name" else ()
    if not words and not natives:
        return True
    # with the connectors too ("Gateway of India" is "getoy'e ab indiy'a" in Bengali)
    every = [_strip_possessive(w) for w in _WORD.findall(span.text)] if span.kind != "quote" else words
    if words and _words_found(words, every, span.kind, prep):
        return True
    for native in natives:
        if _verbatim(native, prep, word_end=False, word_start=prep.lang != "th"):
            return True  # as CLDR writes it (เยอรมนี in unspaced Thai; Saksassa: a case ending)
        ws = _WORD.findall(native)
        if ws and _words_found(ws, ws, "native", prep):
            return True
    return False


def _verbatim(phrase: str, prep: Prepared, *, word_start: bool = True, word_end: bool = True) -> bool:
    """Whether the text has `phrase` as written (case-folded), starting and ending at word boundaries if asked.

    The boundaries are the instruction's token boundaries (`_TOKEN`): a word starts at a letter after anything but a
    letter or mark (a name may follow a digit: "0µA"), and runs on through letters, marks and digits."""
    folded = prep.folded_text
    needle = phrase.casefold()
    pos = folded.find(needle) if needle else -1
    while pos >= 0:
        end = pos + len(needle)
        if (not word_start or pos == 0 or not _LETTER.match(folded[pos - 1])) \
                and (not word_end or end == len(folded) or not folded[end].isalnum()):
            return True
        pos = folded.find(needle, pos + 1)
    return False


@lru_cache(maxsize=16)
def _exonyms(lang: str) -> dict[str, tuple[str, ...]]:
    """English country, region and language names (casefolded) -> their names in `lang`, from CLDR (Babel)."""
    from babel import Locale  # imported on first use: the module loads without it

    en, native = Locale("en"), Locale(lang)
    out: dict[str, list[str]] = {}
    for en_names, native_names in ((en.territories, native.territories), (en.languages, native.languages)):
        for code, name in en_names.items():
            other = native_names.get(code)
            if other and other.casefold() != name.casefold():
                out.setdefault(name.casefold(), []).append(other)
    for alias, code in _TERRITORY_ALIASES.items():
        if code in native.territories:
            out.setdefault(alias, []).append(native.territories[code])
    return {k: tuple(v) for k, v in out.items()}


# English short names that CLDR does not list as a territory's name
_TERRITORY_ALIASES = {"us": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US", "america": "US", "uk": "GB",
                      "u.k.": "GB", "britain": "GB", "great britain": "GB", "holland": "NL", "burma": "MM",
                      "czech republic": "CZ", "ivory coast": "CI", "swaziland": "SZ", "east timor": "TL",
                      "persia": "IR", "siam": "TH", "ceylon": "LK", "korea": "KR", "south korea": "KR",
                      "north korea": "KP", "russia": "RU", "vatican": "VA", "uae": "AE", "drc": "CD"}


def _exonym(text: str, lang: str) -> tuple[str, ...]:
    """The names in `lang` of a country or language named in English ("the United States"); not of the language
    names that say what to write in ("English", "Swahili")."""
    key = _strip_possessive(text.strip()).casefold()
    key = key[4:] if key.startswith("the ") else key
    return () if key in _GENERIC else _exonyms(lang).get(key, ())


def _words_found(words: list[str], every: list[str], kind: str, prep: Prepared) -> bool:
    """Whether the checked words of a span (`every`: with its connectors) occur in the prepared text.

    `kind` "name" words are English spellings, "quote" words are matched as written, "native" words are a name in the
    text's own language (a CLDR country name)."""
    lang = prep.lang
    english = kind == "name"

    def keys(ws: list[str], skeleton: bool, vowels: bool = False) -> str:
        return "".join(_spoken(w, lang, vowels) if spell and _is_acronym(w)
                       else _skeleton(_fold(w), english=english and not _is_native(w), lang=lang, vowels=vowels)
                       if skeleton else _fold(w) for w in ws)

    def find(view: _View, key: str, skeleton: bool, ws: list[str]) -> bool:
        if skeleton and lang in _LATIN:  # the skeleton fallback of a Latin-script text: exact, whole words
            return len(key) >= _LATIN_SKELETON_MIN and view.find(key, 0, _TAIL[lang])
        if lang == "th" and len(key) < _THAI_MIN:  # Thai is searched anywhere: a short key matches by chance
            return False
        tail = _TAIL[lang]
        if len(key) < 2:
            return False
        if not prep.pairs or len(key) >= 4 or spell and len(key) >= 3:  # BJP is "bi je pi", three words
            return view.find(key, _max_edits(len(key), lang), tail)
        # a short skeleton ('Gauri' is k-r, like the Hindi verb kar) must match one word with its vowels too
        vkey = keys(ws, True, vowels=True)
        return any(sk.startswith(key) and len(sk) - len(key) <= _TAIL[lang] and _vowels_agree(vkey, vw)
                   for sk, vw in prep.pairs)

    if prep.latin_words and all(_fold(w) in prep.latin_words for w in words if not _is_native(w)) \
            and not any(_is_native(w) for w in words):
        return True  # written in Latin letters in the text too ("DSM-IV" in a Thai text)
    views = [(prep.view, lang not in _LATIN)]
    if prep.skeletons is not None:
        views.append((prep.skeletons, True))
    # acronyms in other scripts are written as spoken (WWF) or read as a word (FIFA)
    spell = False
    acronyms = [w for w in words if _is_acronym(w)] if english and lang not in _LATIN else []
    # an acronym without vowels is only ever spelled out (WWF); one with vowels may be read as a word (FIFA, RAB)
    readable = all(any(c in "AEIOU" for c in a) for a in acronyms)
    for spell in ((False, True) if readable else (True,)) if acronyms else (False,):
        for view, skeleton in views:
            for ws in (words, every):
                if find(view, keys(ws, skeleton), skeleton, ws):
                    return True
    spell = False
    if lang == "vi":  # Vietnamese names are syllables, each a common word: only the whole name is evidence
        return False
    # every informative word on its own (Finnish inflects only the last word of a name)
    found = []
    for w in words:
        hit = None
        for view, skeleton in views:
            k = keys([w], skeleton)
            if len(k) < _MIN_LEN:
                continue
            hit = bool(hit) or find(view, k, skeleton, [w])
        if hit is not None:
            found.append(hit)
    if not found:
        return False
    if kind == "quote":
        return sum(found) >= 0.8 * len(found)
    return all(found)


def _vowels_agree(name: str, word: str) -> bool:
    """Whether the vowelled key of a word starts like the name's: same consonants, at most one vowel edit."""
    vowels = 0
    for op, i, j in Levenshtein.editops(name, word):
        if op == "insert" and i >= len(name):
            continue  # the word's ending
        if op != "insert" and name[i] not in "aeiou" or op != "delete" and word[j] not in "aeiou":
            return False
        vowels += 1
    return vowels <= 1


# How English speakers say letters: acronyms are written as spoken in other scripts (WWF is "dablyu dablyu ef" in Urdu).
_LETTERS = dict(zip("abcdefghijklmnopqrstuvwxyz", "e bi si di i ef ji ech ai je ke el em en o pi kyu ar es ti yu vi "
                                                  "dablyu eks wai zed".split()))


def _spoken(acronym: str, lang: str, vowels: bool) -> str:
    return _skeleton("".join(_LETTERS.get(c, "") for c in acronym.lower()), lang=lang, vowels=vowels)


def _is_native(word: str) -> bool:
    return not unicodedata.name(word[0], "LATIN").startswith("LATIN")


def _number_found(number: str, prep: Prepared) -> bool:
    canon = _canon(number.translate(_DIGITS_TABLE).replace(",", ""))
    if canon in prep.numbers:
        return True
    if prep.lang == "th" and canon.isdigit() and 1000 <= int(canon) <= 2200:
        return str(int(canon) + 543) in prep.numbers  # Buddhist era
    return False


def check(instruction: str, text: str | Prepared, lang: str) -> Grounding:
    """Check that the names, numbers and quoted strings of `instruction` occur in `text` (a native text in `lang`).

    `text` may be a `prepare`d text, to reuse its romanisation across instructions."""
    lang = check_lang(lang)
    if isinstance(text, Prepared):
        if text.lang != lang:
            raise InputError(f"the prepared text is in {text.lang!r}, the check was asked for {lang!r}",
                             hint="prepare the text with the same language code")
        prep = text
    else:
        prep = prepare(text, lang)
    spans = extract(instruction, lang)
    found, missing = [], []
    for s in spans:
        (found if _found(s, prep) else missing).append(s)
    return Grounding(spans, found, missing)
