"""PII.PersonName from a name-frequency resource: first, last and full names, many cultures.

The resource is ``names-dataset`` (first and last names with their popularity rank per
country, from a large public corpus). Its pickles take seconds and gigabytes to load, so
the first use in a machine derives a compact index (casefolded name -> best first-name
rank, best last-name rank; only names ranked within ``FIRST_RANK_LIMIT`` or
``LAST_RANK_LIMIT`` somewhere) and keeps it, keyed by the package version, in the cache
directory; later processes load that file in about a second.

Frequency alone tells first names from other words well (a column of common first names
is rare otherwise); surnames overlap ordinary words, countries and companies much more, so
a surname column scores weak alone and is lifted by table context (a sibling first-name
column, see ``context``). Product names ("Ergonomic Steel Chair"), companies (legal form)
and places (NER reads them as GPE) are kept out.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import threading
import unicodedata
from pathlib import Path

from anyascii import anyascii

from .base import MEDIUM, WEAK, Finding, PreparedColumn, starts_like_name, without_marks
from .entities import has_legal_form, person_hinted
from .honorifics import without_honorifics
from .masking import mask_words
from .places import country_code, country_share
from .resources import cached_table

logger = logging.getLogger(__name__)

FIRST_RANK_LIMIT = 5000  # a first name ranked this high somewhere counts
LAST_RANK_LIMIT = 10000
COMMON_FIRST_RANK = 2000  # first-name evidence for a single-token column
FIRST_NAME_SHARE = 0.75  # single tokens: share of common first names for MEDIUM strength
NAME_SHARE = 0.8  # share of values made only of known names
SURNAME_FIRST_RATIO = 10  # ranked this many times better as a surname: a surname
_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_SPLIT = re.compile(r"[ ,]+")
_PARTICLE = re.compile(r"[a-z]{1,3}")

_lock = threading.Lock()
_index: dict[str, list[int]] | None = None


def _build_index() -> dict[str, list[int]]:
    import pickle  # the package ships its data as pickles; we read only that package's files

    import names_dataset

    base = Path(names_dataset.__file__).parent / "v3"
    index: dict[str, list[int]] = {}
    for slot, (stem, limit) in enumerate(
        (("first_names", FIRST_RANK_LIMIT), ("last_names", LAST_RANK_LIMIT))
    ):
        with gzip.open(base / f"{stem}.pkl.gz") as handle:
            names = pickle.load(handle)  # trusted: the data files of a pinned dependency
        for name, info in names.items():
            ranks = info.get("rank") or {}
            best = min(ranks.values(), default=0)
            if best and best <= limit:
                entry = index.setdefault(name.casefold(), [0, 0])
                entry[slot] = best if not entry[slot] else min(entry[slot], best)
        del names
    return index


def name_index() -> dict[str, list[int]]:
    """casefolded name -> [best first-name rank, best last-name rank] (0: not that kind)."""
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = _load_or_build()
    return _index


def _load_or_build() -> dict[str, list[int]]:
    return cached_table(
        f"names-index-{{version}}-{FIRST_RANK_LIMIT}-{LAST_RANK_LIMIT}",
        "names-dataset",
        _build_index,
    )


ROMANISED_MIN_LETTERS = 4  # "Ba", "Shi": one CJK syllable romanises to some name anywhere


@functools.lru_cache(maxsize=32768)
def _entry(token: str) -> list[int] | None:
    """The index entry, also for a spelling with diacritics the resource writes without
    them (Katarīna, Elvīra: the corpus often drops Latvian or Turkish marks), and for a
    name in another script by its romanisation (Станіслава -> Stanislava, 영은 -> YeongEun):
    the resource lists most names of every culture by their Latin spelling."""
    index = name_index()
    key = token.casefold()
    entry = index.get(key)
    if entry is None and not key.isascii():
        folded = _folded(key)
        entry = index.get(folded) if folded != key and folded.isascii() else None
    if _LATVIAN_LETTERS.search(key):
        latvian = _latvian_entry(key)
        entry = entry if latvian is None else _merged(entry, latvian)
    if (entry is None or not all(entry)) and not _is_latin(token):
        # The entry in the name's own script is often one-sided (रोहन listed as a surname
        # only): the Latin spelling's ranks complete it.
        # "წიკლაური" -> "ts'ik'lauri": the apostrophes mark ejectives the Latin spelling drops
        plain = anyascii(token).casefold().replace("'", "")
        for romanised in (plain, *_with_inherent_vowels(token)):
            if len(romanised) >= ROMANISED_MIN_LETTERS and romanised.isalpha():
                latin = index.get(romanised)
                if latin is not None:
                    entry = _merged(entry, latin)
    return entry


# Letters only Latvian writes among the languages written in Latin letters
_LATVIAN_LETTERS = re.compile("[āēīūģķļņ]")
# Latvian inflects names: a man's ends in -s, -š, -is or -us (Rūdolfs, Emīls, Bērziņš), a
# woman's surname in -a or -e where his ends in -s, -š or -is (Strautiņa, Freimane). The
# resource lists most of them in their European base form (Rudolf, Emil) or only in the
# other gender's.
_LATVIAN_ENDINGS = ("is", "us", "s", "š", "a", "e")
_LATVIAN_OTHER_GENDER = ("s", "š", "is", "a", "e")


def _latvian_entry(key: str) -> list[int] | None:
    """The entry of an inflected Latvian name's base form, or its other gender's form."""
    index = name_index()
    for ending in _LATVIAN_ENDINGS:
        if not key.endswith(ending) or len(key) - len(ending) < 3:
            continue
        stem = key[: -len(ending)]
        for other in ("", *_LATVIAN_OTHER_GENDER):
            candidate = _folded(stem + other)
            if candidate != key and candidate in index:
                return index[candidate]
    return None


def _folded(key: str) -> str:
    """``key`` without its combining marks (Rūdolfs → Rudolfs)."""
    return "".join(
        char for char in unicodedata.normalize("NFKD", key) if not unicodedata.combining(char)
    )


def _merged(entry: list[int] | None, other: list[int]) -> list[int]:
    """The better rank of each kind; 0 (not that kind) yields to any rank."""
    if entry is None:
        return other
    return [min(a, b) if a and b else a or b for a, b in zip(entry, other, strict=True)]


# Scripts of India and Sri Lanka write a consonant with an unwritten "a" (क = ka);
# anyascii drops it (विक्रम -> vikrm), the name index spells it (Vikram).
# fmt: off
_ABUGIDAS = frozenset((
    "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA",
    "MALAYALAM", "SINHALA",
))
# fmt: on
# Signs written after the inherent vowel, not instead of it (कं = kam).
_AFTER_VOWEL_SIGNS = ("ANUSVARA", "CANDRABINDU", "VISARGA")


def _with_inherent_vowels(token: str) -> tuple[str, ...]:
    """विक्रम -> ("vikrama", "vikram"): the romanisation with each bare consonant's "a",
    with and without the last one (Hindi, Bengali and Sinhala speakers drop it), and with
    the nasal sign before a consonant read as "n" (गोविंदा -> Govinda, not Govimda)."""
    if unicodedata.name(token[0], "").split(" ", 1)[0] not in _ABUGIDAS:
        return ()
    parts: list[str] = []
    nasal: list[str] = []
    for char, following in zip(token, [*token[1:], ""], strict=True):
        name = unicodedata.name(char, "")
        spelled = anyascii(char).replace("'", "")
        parts.append(spelled)
        nasal.append("n" if "ANUSVARA" in name and following else spelled)
        if " LETTER " in name and " VOWEL " not in name and _bare(following):
            parts.append("a")
            nasal.append("a")
    variants = []
    for spelled in dict.fromkeys(("".join(parts).casefold(), "".join(nasal).casefold())):
        variants += [spelled, spelled[:-1]] if spelled.endswith("a") else [spelled]
    return tuple(variants)


def _bare(following: str) -> bool:
    """No vowel sign or virama after the consonant: its inherent vowel is read."""
    if not following or not unicodedata.category(following).startswith("M"):
        return True
    return any(sign in unicodedata.name(following, "") for sign in _AFTER_VOWEL_SIGNS)


def first_rank(token: str) -> int:
    entry = _entry(token)
    return entry[0] if entry and entry[0] else 0


def last_rank(token: str) -> int:
    entry = _entry(token)
    return entry[1] if entry and entry[1] else 0


def name_tokens_of(text: str) -> list[str] | None:
    """The words of a name-shaped value ("María José García-López"), else None."""
    if not 1 <= len(text) <= 60 or has_legal_form(text):
        return None
    if len(text) <= 3 and text.isupper():
        return None  # DE, USA, EUR: codes, though some are given names somewhere
    # "Dr. Modrīte Rubene", "Sīle k-dze": courtesy titles are not part of the name
    tokens = without_honorifics([token for token in _SPLIT.split(text.strip()) if token])
    # "da Mota", "van der Berg", "di Stefano": surname particles in lower case come first;
    # the name they lead to carries the capital.
    while len(tokens) > 1 and _PARTICLE.fullmatch(tokens[0]):
        tokens = tokens[1:]
    if not tokens or not starts_like_name(tokens[0]):
        return None
    if not 1 <= len(tokens) <= 4 or not all(
        _TOKEN.fullmatch(without_marks(token)) for token in tokens
    ):
        return None
    return tokens


def _is_latin(token: str) -> bool:
    return unicodedata.name(token[0], "").startswith("LATIN")


def _is_known(token: str) -> bool:
    entry = _entry(token)
    return bool(entry and (entry[0] or entry[1]))


@functools.lru_cache(maxsize=16384)
def value_kind(text: str) -> str | None:
    """ "first" (a common first name), "last" (a known surname), "full", or None."""
    tokens = name_tokens_of(text)
    if tokens is None:
        return None
    if len(tokens) == 1:
        token = tokens[0]
        if len(token) < 2 and _is_latin(token):
            return None
        # The resource ranks names by their romanised spelling first: a name written in its
        # own script (陽一, Χρύσανθος) ranks lower than it is common, so any rank counts.
        common = COMMON_FIRST_RANK if _is_latin(token) else FIRST_RANK_LIMIT
        first, last = first_rank(token), last_rank(token)
        # The resource's given names hold surnames mistaken for them somewhere (Torres, a
        # first name ranked 1302, is the 7th surname): far more common as a surname, it is one.
        if 0 < first <= common and not 0 < last * SURNAME_FIRST_RATIO < first:
            return "first"
        if last or _patronymic(token):
            return "last"
        return "full" if _dense_full_name(token) else None
    parts = [part for token in tokens for part in token.split("-")]
    known = sum(1 for part in parts if _is_known(part) or _patronymic(part))
    # Any part may be the given name: Russian writes "Рябов Сергей Иосифович".
    if known == len(parts) and any(first_rank(token) for token in tokens):
        return "full"
    # The index knows fewer names in their own script (Sinhala, Devanagari, Persian): one
    # known given name at either end and half of the parts known make a full name there.
    if (
        not _is_latin(tokens[0])
        and 2 * known >= len(parts)
        and (first_rank(tokens[0]) or first_rank(tokens[-1]))
    ):
        return "full"
    return None


# Surnames made from a given name: Russian, Uzbek, Azerbaijani -ov/-eva, Ukrainian -enko,
# Armenian -yan, Georgian -shvili/-dze, Persian -zadeh/-pour, Icelandic -sson/-dóttir,
# Balkan -ović, Turkish -oğlu (-sen, -son, -ić, -ian end too many words: Lesson, Italian).
# Read on the romanised spelling, so Ашимов is Ashim + ov.
_PATRONYMIC = re.compile(
    r"(.{4,}?)(?:ovich|evich|ovna|evna|ovic|evic|ova|eva|yeva|yev|ov|ev|enko|yan|"
    r"shvili|dze|zadeh|zade|pour|poor|sson|dottir|oglu|ogly|kyzy)"
)


def _patronymic(token: str) -> bool:
    """ "Akmalov", "Robiyayeva", "Hallgarðsson", "Ашимов": a given name and a surname suffix.
    The stem must be a given name the index knows (Akmal, Robiya), not any word."""
    romanised = anyascii(token).casefold() if not token.isascii() else token.casefold()
    match = _PATRONYMIC.fullmatch(romanised)
    if match is None:
        return False
    stem = match.group(1)
    return any(first_rank(candidate) for candidate in (stem, stem.rstrip("y"), stem + "a"))


_DENSE_NAME = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]{3,4}")


def _dense_full_name(token: str) -> bool:
    """张秀兰, 이지훈, 田中太郎: Chinese, Korean and Japanese write the surname and the given
    name without a space. The resource lists the given names (秀兰, 지훈) but not the
    one-character surnames, so a known given name after one character, or after a known
    surname, makes a full name."""
    if not _DENSE_NAME.fullmatch(token):
        return False
    return any(
        first_rank(token[cut:]) and (cut == 1 or last_rank(token[:cut]))
        for cut in (1, 2)
        if len(token) - cut >= 2
    )


_SYLLABLE = re.compile(r"[\u4e00-\u9fff\uac00-\ud7a3]")


def one_syllable_surname(text: str) -> bool:
    """张, 이, 巴: Chinese and Korean surnames are mostly one character, which the name
    index (romanised, a few letters long at best) cannot tell; beside a column of given
    names, row by row, a column of single characters is their surnames."""
    return _SYLLABLE.fullmatch(text) is not None


def name_kinds(column: PreparedColumn) -> dict[str, int]:
    """How many sampled values are first, last and full names (and how many were read)."""
    counts = {"first": 0, "last": 0, "full": 0, "read": 0}
    for text in column.texts[:100]:
        counts["read"] += 1
        kind = value_kind(text)
        if kind:
            counts[kind] += 1
    return counts


OWN_SCRIPT_FULL_SHARE = 0.5  # full names the index confirms, of a column of several words
OWN_SCRIPT_WORDS_SHARE = 0.9
PLACED_SHARE = 0.25  # values with a town or country among their words: firms and places


def _full_names_in_own_script(column: PreparedColumn, counts: dict[str, int]) -> list[Finding]:
    """Full names in a script the English NER model cannot read (Devanagari, Arabic, Thai).

    The index knows fewer names in their own script, and a display name carries titles
    (الأستاذ, जी) the index does not list: half of the values confirmed as full names,
    in a column where almost every value is two to four name-shaped words, is a column of
    names. Towns and firms of those scripts have one word as often as several, and firms
    carry a town or country more often than names do (متروی تهران, صنایع مس ایران)."""
    from .cities import is_place  # cities reads this module's index

    head = column.texts[:100]
    words = [name_tokens_of(text) for text in head]
    if (
        not head
        or _is_latin(head[0])
        or counts["full"] < OWN_SCRIPT_FULL_SHARE * counts["read"]
        or sum(1 for tokens in words if tokens and len(tokens) >= 2)
        < OWN_SCRIPT_WORDS_SHARE * len(head)
    ):
        return []
    placed = sum(
        1 for tokens in words if tokens and any(is_place(t) or country_code(t) for t in tokens)
    )
    if placed >= PLACED_SHARE * len(head):
        return []
    return [
        Finding(
            tag="PII.PersonName",
            detector="name_frequency",
            matched=counts["full"],
            checked=counts["read"],
            strength=MEDIUM,
            full_share=0.6,
            min_share=OWN_SCRIPT_FULL_SHARE,
            examples=[mask_words(text) for text in head if value_kind(text) == "full"][:3],
            extra={"full_names": counts["full"], "own_script": True},
        )
    ]


def _compound_given_names(column: PreparedColumn) -> int:
    """Given names of two given names (Francisco Javier, María Fernanda, Luis Fernando), as
    Spanish and Portuguese speakers carry them in a given-name column."""
    return sum(
        1
        for text in column.texts[:100]
        if value_kind(text) == "full"
        and all(value_kind(token) == "first" for token in text.split())
    )


REPEATED_SHARE = 0.5  # distinct values per sampled row, at most: a few values again and again
REPEATED_ROWS = 20  # fewer sampled rows say nothing of repetition (a family's four children)
COMMON_NAME_RANK = 100  # a name this common somewhere is a person's, though a town's too
UNCOMMON_SHARE = 0.8


def repeated_towns(column: PreparedColumn) -> bool:
    """A few known towns, each again and again (where an employee works, a store stands),
    few of them common names: Paris, York and Bath are in the name index, but far down.
    Anna, Florence and Silva are towns too, and among the commonest names: people.  Beside
    four or more towns, one value that is no town and no common name (Remote) may be too."""
    from .cities import is_place  # cities reads this module's index

    texts = column.texts[:100]
    distinct = set(texts)
    if len(texts) < REPEATED_ROWS or not 3 <= len(distinct) <= REPEATED_SHARE * len(texts):
        return False
    if person_hinted(column):
        return False  # first_name: Austin and Lincoln twice over are people
    towns = {text for text in distinct if is_place(text)}
    others = distinct - towns
    # One value that is neither a town nor a common name among four or more towns: "Remote"
    if others and (len(others) > 1 or len(towns) < 4 or any(map(_common_name, others))):
        return False
    uncommon = sum(1 for text in towns if not _common_name(text))
    return uncommon >= UNCOMMON_SHARE * len(towns)


def _common_name(text: str) -> bool:
    ranks = [rank for rank in (_entry(text) or [])[:2] if rank]  # first, last
    return bool(ranks) and min(ranks) <= COMMON_NAME_RANK


def detect_person_name_frequency(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json") or not column.texts:
        return []
    head = column.texts[:25]
    if sum(1 for text in head if name_tokens_of(text)) < 0.6 * len(head):
        return []  # not name-shaped: skip the index entirely
    if country_share(column) >= 0.5:
        return []  # Jordan, Chad, Georgia
    if repeated_towns(column):
        return []  # an office's town: Paris, York and Bath are in the name index too
    counts = name_kinds(column)
    read = counts["read"]
    matched = counts["first"] + counts["last"] + counts["full"]
    if matched < NAME_SHARE * read:
        return _full_names_in_own_script(column, counts)
    given = counts["first"] >= FIRST_NAME_SHARE * read or (
        counts["first"] >= 0.5 * read
        and counts["first"] + _compound_given_names(column) >= FIRST_NAME_SHARE * read
    )
    strong = given or counts["full"] >= NAME_SHARE * read
    # Places and organisations reuse surnames (Paris, Lincoln): NER breaks the tie. Not for a
    # column of common first names: the English model reads a lone foreign given name
    # (Grzegorz, Katarīna) as a place as often as a person, and no place list is that common.
    if (
        not given
        and column.ner_ran
        and column.entity_share("GPE", "LOC", "ORG") > max(0.5, column.entity_share("PERSON"))
    ):
        return []
    examples = [mask_words(text) for text in column.texts if value_kind(text)][:3]
    return [
        Finding(
            tag="PII.PersonName",
            detector="name_frequency",
            matched=matched,
            checked=read,
            strength=MEDIUM if strong else WEAK,
            examples=examples,
            extra={
                "first_names": counts["first"],
                "last_names": counts["last"],
                "full_names": counts["full"],
            },
        )
    ]
