"""Grounding check on real web paragraphs: recall on true entities, missing rate on swapped ones, speed.

    python bench/grounding.py [--data ../shared/data/web] [--json OUT]

For five real paragraphs per language (named by their id in ../shared/data/web; the text stays there) this file holds
an English instruction written by hand for this benchmark and the spans of it that truly occur in the paragraph, written
the way an English instruction names them ("Chiang Mai", "Jayalalithaa", "1884" for a Thai text that says 2427 B.E.).

* recall: share of those spans that `check` finds in their paragraph; every span is also checked to be extracted;
* swapped: every name of the *other* paragraphs of the same language, asked about in "What does the text say about X?",
  must be reported missing (swaps that also name something of this paragraph are left out);
* speed: `prepare` per paragraph, `check` per instruction against a prepared text, and both in one `check` call;
  `prepare` on the 20 longest paragraphs of each language (cut at 3,000 characters) with an empty word cache;
* seed pairs: human-written English instructions with their native responses (../shared/data/seed, bn fi tr vi): the
  share of their spans found, an upper bound on false alarms (a question's entities need not recur in its answer);
* baseline, same run: the span as a case-folded substring of the text (numbers: the digits as written in English);
* readers' drafts: every generated draft a reader judged (bench/quality/labels, pass 1, deduplicated by paragraph and
  instruction), by split: the share of drafts the reader marked `invented_entity` that the check flags, and the share
  of accepted or edited drafts it flags (false alarms). What the generator really writes, not a swap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cpu_name  # noqa: E402
from bench.quality.labels import read_jsonl  # noqa: E402
from xinstruct import grounding  # noqa: E402
from xinstruct.grounding import check, prepare  # noqa: E402

# (paragraph id, instruction, spans that truly occur in the paragraph). Written for this benchmark.
CASES: dict[str, list[tuple[str, str, list[str]]]] = {
    "bn": [
        ("bn-tydiqa-goldp-00000",
         "Why was the Gateway of India in Mumbai built in 1911 for King George V and Queen Mary, and what did "
         "George Sydenham Clarke do?",
         ["Gateway of India", "Mumbai", "1911", "King George V", "Queen Mary", "George Sydenham Clarke"]),
        ("bn-tydiqa-goldp-00001",
         "What role did David Lloyd George, Woodrow Wilson, Georges Clemenceau and Vittorio Emanuele Orlando play, "
         "and did they really meet 145 times?",
         ["David Lloyd George", "Woodrow Wilson", "Georges Clemenceau", "Vittorio Emanuele Orlando", "145"]),
        ("bn-tydiqa-goldp-00002",
         "How is Ganesha mentioned by Kalidasa, Bharavi and in the Baudhayana Dharmasutra?",
         ["Ganesha", "Kalidasa", "Bharavi", "Baudhayana Dharmasutra"]),
        ("bn-bnlp-punct-news-reconstructed-00169",
         "Why did Limon's case against RAB fail, and what did the Dhanmondi police do to Jisan?",
         ["Limon's", "RAB", "Dhanmondi", "Jisan"]),
        ("bn-bnlp-punct-news-reconstructed-00295",
         "What happened on the Bogura bypass road after 5 January 2014, and how many people died in 15 days?",
         ["Bogura", "2014", "15"]),
    ],
    "fi": [
        ("fi-tydiqa-goldp-00000",
         "What posts did Hermann Göring hold in the Luftwaffe between 1933 and 1945?",
         ["Hermann Göring", "Luftwaffe", "1933", "1945"]),
        ("fi-tydiqa-goldp-00002",
         "When did Kivi leave hospital in 1872, and why did his brother Alpertti take him to Tuusula?",
         ["Kivi", "1872", "Alpertti", "Tuusula"]),
        ("fi-ud-finnish-tdt-00304",
         "When did Eleanor Garatti win Olympic gold in Amsterdam and Los Angeles, and where in California was she "
         "born?",
         ["Eleanor Garatti", "Olympic", "Amsterdam", "Los Angeles", "California"]),
        ("fi-ud-finnish-tdt-00305",
         "Which NBC sitcom did Kaye Ballard appear in between 1967 and 1969, and who was Eve Arden?",
         ["NBC", "Kaye Ballard", "1967", "1969", "Eve Arden"]),
        ("fi-ud-finnish-tdt-00314",
         "What caused the fire at the building site near the Riihimäki railway station?",
         ["Riihimäki"]),
    ],
    "hi": [
        ("hi-xquad-translated-00001",
         "What share of the 711,988 inhabitants of Warsaw in 1901 were Catholic, and what happened to its churches "
         "after 1944?",
         ["711,988", "Warsaw", "1901", "Catholic", "1944"]),
        ("hi-xquad-translated-00006",
         "Why is Fresno not on an interstate highway, and what was decided about State Route 99 in the 1950s?",
         ["Fresno", "State Route", "99", "1950"]),
        ("hi-xquad-translated-00007",
         "What did the medical faculty in Paris report to the King of France in 1345, and what is the Miasma theory?",
         ["Paris", "King of France", "1345", "Miasma"]),
        ("hi-hindi-discourse-stories-00236",
         "What does Radhakrishna tell Kunti about the man proposed for Gauri?",
         ["Radhakrishna", "Kunti", "Gauri"]),
        ("hi-hindi-discourse-stories-00237",
         "Why does Lahasanva call out to Lalmohar, and what does the Nepali soldier do?",
         ["Lahasanva", "Lalmohar", "Nepali"]),
    ],
    "id": [
        ("id-tydiqa-goldp-00001",
         "Where is Banggai Regency in Central Sulawesi, what is its capital Luwuk, and why did 323,626 people live "
         "there in 2010?",
         ["Banggai Regency", "Central Sulawesi", "Luwuk", "323,626", "2010"]),
        ("id-tydiqa-goldp-00002",
         "What was the Westerling massacre in South Sulawesi, and who led the Depot Speciale Troepen in 1946?",
         ["Westerling", "South Sulawesi", "Depot Speciale Troepen", "1946"]),
        ("id-tydiqa-goldp-00004",
         "When did Realme launch its first phone in India in 2018?",
         ["Realme", "India", "2018"]),
        ("id-idk-mrc-tydiqa-00301",
         "How did Giuseppe Garibaldi and Camillo Benso unify Italy in 1861, and what did Victor Emmanuel II gain from "
         "the war with Prussia?",
         ["Giuseppe Garibaldi", "Camillo Benso", "Italy", "1861", "Victor Emmanuel II", "Prussia"]),
        ("id-idk-mrc-tydiqa-00307",
         "Why are about 60% of people in Germany Christian, and what is the EKD?",
         ["60", "Germany", "Christian", "EKD"]),
    ],
    "sw": [
        ("sw-masakhanews-00016",
         "What does doctor Carla Casulo say about Hodgkin lymphoma, and is it usually found between 20 and 40?",
         ["Carla Casulo", "Hodgkin", "20", "40"]),
        ("sw-masakhanews-00018",
         "How were thermobaric weapons used in Vietnam and against al-Qaeda at Tora Bora in Afghanistan in 2001?",
         ["Vietnam", "Qaeda", "Tora Bora", "Afghanistan", "2001"]),
        ("sw-masakhanews-00033",
         "What did the BBC report about Uighur women in camps in Xinjiang, and how did China respond?",
         ["BBC", "Uighur", "Xinjiang", "China"]),
        ("sw-tydiqa-goldp-00400",
         "Where was Dwight Eisenhower born in 1890, and why did his family move to Abilene, Kansas?",
         ["Dwight Eisenhower", "1890", "Abilene", "Kansas"]),
        ("sw-tydiqa-goldp-00401",
         "How high is Mount Kilimanjaro in Tanzania (5,963 m) compared with Aconcagua in Argentina?",
         ["Mount Kilimanjaro", "Tanzania", "5,963", "Aconcagua", "Argentina"]),
    ],
    "ta": [
        ("ta-ud-tamil-ttb-00003",
         "What did Jayalalithaa and Ramadoss say about the greenfield airport near Chennai, and what did Vaiko demand?",
         ["Jayalalithaa", "Ramadoss", "Chennai", "Vaiko"]),
        ("ta-ud-tamil-ttb-00004",
         "What did Chief Minister Karunanidhi say at the 125th anniversary of the Kasturba Gandhi hospital in Chennai, "
         "and what was built in Chepauk?",
         ["Chief Minister Karunanidhi", "125", "Kasturba Gandhi", "Chennai", "Chepauk"]),
        ("ta-ud-tamil-ttb-00005",
         "Why does Rahul say Congress is a party for everyone, and why will it contest alone in Bihar?",
         ["Rahul", "Congress", "Bihar"]),
        ("ta-ud-tamil-ttb-00011",
         "Why did Thirumavalavan boycott the Delhi Commonwealth Games closing ceremony, and what did he say about "
         "Rajapaksa?",
         ["Thirumavalavan", "Delhi Commonwealth Games", "Rajapaksa"]),
        ("ta-ud-tamil-ttb-00021",
         "What did Jayalalithaa say, and how many civilians did the rocket kill in Paktika province in Afghanistan?",
         ["Jayalalithaa", "Paktika", "Afghanistan"]),
    ],
    "th": [
        ("th-iapp-wiki-qa-00000",
         "When was Prince Phichit Prichakon sent to Chiang Mai in 1884, and when did he return to Bangkok?",
         ["Prince Phichit Prichakon", "Chiang Mai", "1884", "Bangkok"]),
        ("th-iapp-wiki-qa-00001",
         "What share of children have the disorder by the DSM-IV and ICD-10 criteria, and do 30-50% keep it as adults?",
         ["DSM", "ICD", "30", "50"]),
        ("th-iapp-wiki-qa-00002",
         "When was the Ban Kok Kho Kok Pho school founded in 1939, and who was Chan Wongchiangpheng?",
         ["Ban Kok Kho Kok Pho", "1939", "Chan Wongchiangpheng"]),
        ("th-iapp-wiki-qa-00005",
         "When was the single Koi no Tsubomi by Kumi Koda released in 2006, and did it sell 273,000 copies?",
         ["Koi", "Tsubomi", "Kumi Koda", "2006", "273,000"]),
        ("th-iapp-wiki-qa-00010",
         "When did Germany invade Poland in 1939, and how long did Britain hold out?",
         ["Germany", "Poland", "1939", "Britain"]),
    ],
    "tr": [
        ("tr-tquad-00008",
         "Who developed the GÖZCÜ mini UAV with Kale-Baykar, when did the Turkish Armed Forces start using it in 2007, "
         "and was it sold to Qatar?",
         ["GÖZCÜ", "Kale", "Baykar", "2007", "Qatar"]),
        ("tr-tquad-00011",
         "What did Attar learn in his father's shop near Nishapur, and did he know Arabic?",
         ["Attar", "Nishapur", "Arabic"]),
        ("tr-tquad-00013",
         "What methods did Jazari use before building his devices?",
         ["Jazari"]),
        ("tr-tquad-00047",
         "What did Giyaseddin Jamshid write about decimal fractions, and which Ottoman mathematicians of the 16th "
         "century used it?",
         ["Giyaseddin Jamshid", "Ottoman", "16"]),
        ("tr-tquad-00066",
         "What is HÜRJET, which TUSAŞ is developing as the jet successor of HÜRKUŞ?",
         ["HÜRJET", "TUSAŞ", "HÜRKUŞ"]),
    ],
    "ur": [
        ("ur-bend-the-truth-real-news-00001",
         "What did Asad Umar tell Alice Wells about money laundering, and what did Pakistan promise in Islamabad?",
         ["Asad Umar", "Alice Wells", "Pakistan", "Islamabad"]),
        ("ur-bend-the-truth-real-news-00002",
         "How did Brazil beat Mexico at the 2018 FIFA World Cup, and did Neymar and Roberto Firmino score?",
         ["Brazil", "Mexico", "2018", "FIFA World Cup", "Neymar", "Roberto Firmino"]),
        ("ur-bend-the-truth-real-news-00010",
         "How did the BJP do in the 2018 elections in Madhya Pradesh, Rajasthan and Chhattisgarh, and what did "
         "Prakash Raj say about Modi?",
         ["BJP", "2018", "Madhya Pradesh", "Rajasthan", "Chhattisgarh", "Prakash Raj", "Modi"]),
        ("ur-bend-the-truth-real-news-00059",
         "What did Muhammad Moazzam of WWF say about the oil between Churna Island and Mubarak Village?",
         ["Muhammad Moazzam", "WWF", "Churna Island", "Mubarak Village"]),
        ("ur-bend-the-truth-real-news-00085",
         "Why was the Egyptian actress Rania Youssef criticised for her dress, and could the 44-year-old go to prison?",
         ["Egyptian", "Rania Youssef", "44"]),
    ],
    "vi": [
        ("vi-baomoi-news-00003",
         "What is Kodu, and how does it help children with STEM skills?",
         ["Kodu", "STEM"]),
        ("vi-baomoi-news-00020",
         "Which pages of the Truong Chinh collection published in Hanoi in 2009 are cited?",
         ["Truong Chinh", "Hanoi", "2009"]),
        ("vi-baomoi-news-00024",
         "Why did the An Giang customs department say the damage by the Saigon food company had not yet happened, and "
         "what did the Ho Chi Minh City tax department reply on 25/10/2016?",
         ["An Giang", "Saigon", "Ho Chi Minh City", "25", "2016"]),
        ("vi-baomoi-news-00048",
         "How did Eden Hazard score for Chelsea against Arsenal, and what went wrong against Watford?",
         ["Eden Hazard", "Chelsea", "Arsenal", "Watford"]),
        ("vi-baomoi-news-00055",
         "Why does the US military worry about China investing in AI?",
         ["China", "AI"]),
    ],
}


# Written after the thresholds were set on CASES and not tuned against: how the check does on paragraphs it was not
# developed on.
HELD_OUT: dict[str, list[tuple[str, str, list[str]]]] = {
    "bn": [
        ("bn-tydiqa-goldp-00032",
         "When did construction of the Kudankulam nuclear power plant in Tamil Nadu start in 2002, and how did Russia "
         "help India build it?",
         ["Kudankulam", "Tamil Nadu", "2002", "Russia", "India"]),
        ("bn-tydiqa-goldp-00008",
         "When did the poet publish Kalo Baraper Pratibeshi in 1989 and Palatak Pendulum in 2015, and did he teach at "
         "Chittagong University?",
         ["Kalo Baraper Pratibeshi", "1989", "Palatak Pendulum", "2015", "Chittagong University"]),
    ],
    "fi": [
        ("fi-ud-finnish-tdt-00322",
         "Was Jan Pieterszoon Sweelinck born in Deventer in 1562, and did Gioseffo Zarlino teach him?",
         ["Jan Pieterszoon Sweelinck", "Deventer", "1562", "Gioseffo Zarlino"]),
        ("fi-ud-finnish-tdt-00390",
         "When was Suomalainen Kirjakauppa founded in 1912, and since when has Rautakirja owned it?",
         ["Suomalainen Kirjakauppa", "1912", "Rautakirja"]),
    ],
    "hi": [
        ("hi-xquad-translated-00040",
         "What happened in Europe between 1756 and 1763 during the war in North America?",
         ["Europe", "1756", "1763", "North America"]),
        ("hi-xquad-translated-00187",
         "When did the last glacial period end, about 11,600 BP, and what happened in Europe around 70,000 BP?",
         ["11,600", "BP", "Europe", "70,000"]),
    ],
    "id": [
        ("id-tydiqa-goldp-00171",
         "What title did Tuanku Abdul Rahman give the Federation of Malaya police on 24 July 1958?",
         ["Tuanku Abdul Rahman", "Federation of Malaya", "24", "1958"]),
        ("id-tydiqa-goldp-00028",
         "Who captured Dipati Ukur according to the Leiden Oriental manuscript written by Sukamandara?",
         ["Dipati Ukur", "Leiden Oriental", "Sukamandara"]),
    ],
    "sw": [
        ("sw-tydiqa-goldp-00549",
         "When did Zidane marry Véronique Fernández, was Enzo born in 1995, and does he play for Deportivo Alavés?",
         ["Zidane", "Véronique Fernández", "Enzo", "1995", "Deportivo Alavés"]),
        ("sw-tydiqa-goldp-00687",
         "Does East African Breweries own 80% of Kenya Breweries and 98.2% of Uganda Breweries?",
         ["East African Breweries", "80", "Kenya Breweries", "98.2", "Uganda Breweries"]),
    ],
    "ta": [
        ("ta-ud-tamil-ttb-00077",
         "Who invited Pakistan's president Asif Ali Zardari to Washington, and why is Karunakaran in hospital in "
         "Kerala?",
         ["Pakistan's", "Asif Ali Zardari", "Washington", "Karunakaran", "Kerala"]),
        ("ta-ud-tamil-ttb-00035",
         "Who are S. Malathi and Letika Saran, and what did Vaiko say about the Mullaperiyar dam?",
         ["Malathi", "Letika Saran", "Vaiko", "Mullaperiyar"]),
    ],
    "th": [
        ("th-iapp-wiki-qa-00118",
         "Did Willy Messerschmitt and Robert Lusser design it at Bayerische Flugzeugwerke in 1930?",
         ["Willy Messerschmitt", "Robert Lusser", "Bayerische Flugzeugwerke", "1930"]),
        ("th-iapp-wiki-qa-00165",
         "When was the Avengers sequel announced in 2014, and when did the Russo brothers join?",
         ["Avengers", "2014", "Russo"]),
    ],
    "tr": [
        ("tr-tquad-00107",
         "Was he born in Istanbul in 1901, was his father Ahmet Celal Bey, and did he finish the Darülfünun medical "
         "faculty in 1924 before going to Paris?",
         ["Istanbul", "1901", "Ahmet Celal Bey", "Darülfünun", "1924", "Paris"]),
        ("tr-tquad-00342",
         "Which academies in Istanbul and Kocaeli were merged by the decree of 20 July 1982?",
         ["Istanbul", "Kocaeli", "20", "1982"]),
    ],
    "ur": [
        ("ur-bend-the-truth-real-news-00071",
         "Will the BJP field Madhuri Dixit in the 2019 Lok Sabha elections, like Hema Malini and Paresh Rawal?",
         ["BJP", "Madhuri Dixit", "2019", "Lok Sabha", "Hema Malini", "Paresh Rawal"]),
        ("ur-bend-the-truth-real-news-00407",
         "What did Zafar Paracha say about the IMF and a dollar above 111 rupees?",
         ["Zafar Paracha", "IMF", "111"]),
    ],
    "vi": [
        ("vi-baomoi-news-00175",
         "Was Dam Vinh Hung nominated at the Big Apple Music Awards 2017 (BAMA) alongside Cam Ly?",
         ["Dam Vinh Hung", "Big Apple Music Awards", "2017", "BAMA", "Cam Ly"]),
        ("vi-baomoi-news-00244",
         "Who visited Luu Duc Hoa after the accident: Trinh Tu Van or Mieu Kieu Vy?",
         ["Luu Duc Hoa", "Trinh Tu Van", "Mieu Kieu Vy"]),
    ],
}


def load(data: Path, wanted: set[str] | None = None) -> dict[str, str]:
    """Paragraph id -> text for `wanted` (default: the paragraphs of CASES and HELD_OUT)."""
    if wanted is None:
        wanted = {pid for cases in (CASES, HELD_OUT) for c in cases.values() for pid, _, _ in c}
    texts = {}
    for f in sorted(data.glob("*.jsonl")):
        for line in f.open(encoding="utf-8"):
            row = json.loads(line)
            if row["id"] in wanted:
                texts[row["id"]] = row["text"]
    missing = wanted - texts.keys()
    if missing:
        raise SystemExit(f"paragraphs not found in {data}: {sorted(missing)}")
    return texts


def baseline_found(span: str, text: str) -> bool:
    """What a check without transliteration sees: the span, case-folded, as a substring of the text."""
    return span.replace(",", "").casefold() in text.casefold() if span.replace(",", "").isdigit() \
        else span.casefold() in text.casefold()


def run(data: Path, cases_by_lang: dict | None = None) -> dict:
    """Recall, swapped-name missing rate and baseline per language on `cases_by_lang` (default: CASES)."""
    cases_by_lang = CASES if cases_by_lang is None else cases_by_lang
    texts = load(data)
    out: dict = {"languages": {}}
    prep_s = check_s = full_s = 0.0
    n_prep = n_check = 0
    for lang, cases in cases_by_lang.items():
        rec_hits, rec_total, not_extracted, recall_misses = 0, 0, [], []
        swap_missing, swap_total, swap_found = 0, 0, []
        base_hits = base_missing = 0
        for pid, instruction, spans in cases:
            text = texts[pid]
            t0 = time.perf_counter()
            prep = prepare(text, lang)
            prep_s += time.perf_counter() - t0
            n_prep += 1
            t0 = time.perf_counter()
            g = check(instruction, prep, lang)
            check_s += time.perf_counter() - t0
            n_check += 1
            t0 = time.perf_counter()
            check(instruction, text, lang)
            full_s += time.perf_counter() - t0
            got = {s.text: s for s in g.checked}
            found = {s.text for s in g.found}
            for span in spans:
                rec_total += 1
                base_hits += baseline_found(span, text)
                if span not in got:
                    not_extracted.append(f"{pid}: {span!r} (extracted {sorted(got)})")
                elif span in found:
                    rec_hits += 1
                else:
                    recall_misses.append(f"{pid}: {span!r}")
            own = {s.casefold() for s in spans}
            for other_pid, _, other_spans in cases:
                if other_pid == pid:
                    continue
                for other in other_spans:
                    if other.casefold() in own:
                        continue
                    t0 = time.perf_counter()
                    sg = check(f"What does the text say about {other}?", prep, lang)
                    check_s += time.perf_counter() - t0
                    n_check += 1
                    if not sg.checked:
                        continue
                    swap_total += 1
                    base_missing += not baseline_found(other, text)
                    if sg.missing:
                        swap_missing += 1
                    else:
                        swap_found.append(f"{pid}: {other!r}")
        out["languages"][lang] = {
            "recall": round(rec_hits / rec_total, 3), "true_spans": rec_total,
            "swapped_missing": round(swap_missing / swap_total, 3), "swapped_spans": swap_total,
            "baseline_recall": round(base_hits / rec_total, 3),
            "baseline_swapped_missing": round(base_missing / swap_total, 3),
            "not_extracted": not_extracted, "true_not_found": recall_misses, "swapped_found": swap_found,
        }
    langs = out["languages"].values()
    out["overall"] = {}
    for key, weight in (("recall", "true_spans"), ("swapped_missing", "swapped_spans"),
                        ("baseline_recall", "true_spans"), ("baseline_swapped_missing", "swapped_spans")):
        out["overall"][key] = round(sum(v[key] * v[weight] for v in langs) / sum(v[weight] for v in langs), 3)
    out["speed_ms"] = {"prepare_per_text": round(1000 * prep_s / n_prep, 3),
                       "check_prepared_per_instruction": round(1000 * check_s / n_check, 3),
                       "check_unprepared_per_instruction": round(1000 * full_s / n_prep, 3),
                       "texts": n_prep, "checks": n_check}
    # speed on long texts: the longest real paragraphs of each language (up to 3,000 characters)
    out["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                      "load_average": os.getloadavg(), "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
    return out


def long_text_speed(data: Path, per_lang: int = 20) -> dict:
    """Per language: ms to prepare the longest paragraphs (cut at 3,000 characters) and to check one instruction."""
    res = {}
    for lang, cases in CASES.items():
        rows = [json.loads(line) for line in (data / f"{lang}.jsonl").open(encoding="utf-8")]
        rows.sort(key=lambda r: -len(r["text"]))
        texts = [r["text"][:3000] for r in rows[:per_lang]]
        instruction = cases[0][1]
        grounding._text_word.cache_clear()  # cold: no word seen before
        t0 = time.perf_counter()
        preps = [prepare(t, lang) for t in texts]
        t1 = time.perf_counter()
        for p in preps:
            check(instruction, p, lang)
        t2 = time.perf_counter()
        res[lang] = {"chars": round(sum(map(len, texts)) / len(texts)),
                     "prepare_ms": round(1000 * (t1 - t0) / len(texts), 2),
                     "check_ms": round(1000 * (t2 - t1) / len(texts), 2)}
    return res


def seed_pairs(seed: Path) -> dict:
    """Human-written instructions against their native responses: share of spans found (grounding vs baseline)."""
    res = {}
    for f in sorted(seed.glob("*.jsonl")):
        rows = [json.loads(line) for line in f.open(encoding="utf-8") if line.strip()]
        rows = [r for r in rows if isinstance(r.get("instruction_en"), str) and isinstance(r.get("response"), str)]
        spans = found = base = grounded = 0
        for r in rows:
            g = check(r["instruction_en"], r["response"], r["lang"])
            spans += len(g.checked)
            found += len(g.found)
            base += sum(baseline_found(s.text, r["response"]) for s in g.checked)
            grounded += not g.missing
        res[f.stem] = {"pairs": len(rows), "spans": spans, "found": round(found / max(spans, 1), 3),
                       "baseline_found": round(base / max(spans, 1), 3),
                       "fully_grounded": round(grounded / max(len(rows), 1), 3)}
    return res


_CLASSES = ("invented", "kept", "other_reject")  # what the reader said of a draft (`readers`)


def readers(data: Path, quality: Path = ROOT / "bench" / "quality") -> dict:
    """The check on the drafts readers judged: flagged share of invented-entity drafts, of kept ones, of other rejects,
    by split ("dev", "test", "all") and language (and "all")."""
    cands = {c["id"]: c for f in sorted(quality.glob("candidates-*.jsonl")) for c in read_jsonl(f)}
    judged: dict[tuple[str, str], tuple[dict, dict]] = {}  # (paragraph, instruction) -> (candidate, first label)
    for f in sorted((quality / "labels").glob("*.pass1.jsonl")):
        for lab in read_jsonl(f):
            c = cands.get(lab["id"])
            if c is not None:
                judged.setdefault((c["row"], c["instruction"]), (c, lab))
    texts = load(data, {row for row, _ in judged})
    counts: dict[tuple[str, str, str], list[int]] = {}  # (split, lang, class) -> [flagged, drafts]
    for (row, instruction), (c, lab) in judged.items():
        flagged = bool(check(instruction, texts[row], c["lang"]).missing)
        cls = "invented" if "invented_entity" in (lab.get("failures") or []) else \
            "kept" if lab["label"] in ("accept", "edit") else "other_reject"
        for split in (c["split"], "all"):
            for lang in (c["lang"], "all"):
                cell = counts.setdefault((split, lang, cls), [0, 0])
                cell[0] += flagged
                cell[1] += 1
    out: dict = {}
    for (split, lang, cls), (k, n) in sorted(counts.items(), key=lambda kv: (kv[0][1] == "all", kv[0])):
        cells = out.setdefault(split, {}).setdefault(lang, {c: {"flagged": None, "n": 0} for c in _CLASSES})
        cells[cls] = {"flagged": round(k / n, 3), "n": n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "web")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quiet", action="store_true", help="only the summary table")
    args = ap.parse_args()
    res = run(args.data)
    res["held_out"] = run(args.data, HELD_OUT)
    res["long_texts"] = long_text_speed(args.data)
    res["seed"] = seed_pairs(args.data.parent / "seed")
    res["readers"] = readers(args.data)
    if not args.quiet:
        for part in (res, res["held_out"]):
            for lang, v in part["languages"].items():
                for key in ("not_extracted", "true_not_found", "swapped_found"):
                    for item in v[key]:
                        print(f"{lang} {key}: {item}")
    print("\n| lang | true spans found | swapped spans missing | baseline: found / missing | prepare ms (chars) "
          "| check ms |\n|---|---|---|---|---|---|")
    for lang, v in res["languages"].items():
        lt = res["long_texts"][lang]
        print(f"| {lang} | {v['recall']:.2f} ({v['true_spans']}) | {v['swapped_missing']:.2f} ({v['swapped_spans']}) | "
              f"{v['baseline_recall']:.2f} / {v['baseline_swapped_missing']:.2f} | {lt['prepare_ms']:.1f} "
              f"({lt['chars']:,}) | {lt['check_ms']:.2f} |")
    print("held out: | lang | found | swapped missing | baseline found / missing |")
    for lang, v in res["held_out"]["languages"].items():
        print(f"| {lang} | {v['recall']:.2f} ({v['true_spans']}) | {v['swapped_missing']:.2f} ({v['swapped_spans']}) | "
              f"{v['baseline_recall']:.2f} / {v['baseline_swapped_missing']:.2f} |")
    print("held out overall", res["held_out"]["overall"])
    print("readers' drafts: | split | lang | invented flagged | kept (accept/edit) flagged | other rejects flagged |")
    for split in ("dev", "test", "all"):
        for lang, v in res["readers"].get(split, {}).items():
            print(f"| {split} | {lang} | " + " | ".join(
                f"{v[c]['flagged']:.2f} ({v[c]['n']})" if v[c]["n"] else "-" for c in _CLASSES)
                + " |")
    print("overall", res["overall"], "\nspeed", res["speed_ms"], "\nseed", res["seed"], "\nmachine", res["machine"])
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
