"""Titles and suffixes written around a person's name, read off before the name index.

A contact or display name carries the courtesy title of its language ("Dr. Modrīte
Rubene", "Vilhelmīne Sīle k-dze", "محترم. محسن جان", "Sra. Ana Gómez", "John Smith Jr.")
that no name list holds. No maintained multilingual list of them is packaged on PyPI
(``nameparser``'s is English), so this is a short one by language: the courtesy titles and
their usual abbreviations, the academic ones, and generational suffixes. Words that are
also given names or surnames somewhere (Don, Pan, Bay, Tuan, Jun, Ji, Sen, San) are left
out, as are initials other than French "M." (D., G., P.): reading one off would turn a
two-word name into one word.

Tokens are compared casefolded, with a trailing full stop removed ("Mme." and "Mme").
"""

from __future__ import annotations

from collections.abc import Sequence

# fmt: off
# Written before the name.
TITLES = frozenset((
    # English
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "dame", "madam",
    # German, Dutch, Scandinavian
    "herr", "frau", "hr", "fr", "dhr", "mevr", "mw", "dipl", "ing", "mag", "fru",
    # French, Italian, Spanish, Portuguese, Romanian
    "m", "mme", "mlle", "me", "sig", "sig.ra", "dott", "dott.ssa", "sr", "sra", "srta",
    "dña", "dra", "sr.ª", "exmo", "exma", "dl", "dna", "dnul", "doamna", "domnul",
    # Slavic, Baltic, Hungarian
    "г-н", "г-жа", "гн", "гжа", "пан", "пані", "ks", "ponas", "ponia",
    "gospodin", "gospođa", "ifj",
    # Greek, Turkish
    "κ", "κα", "κος", "sayın",
    # Arabic, Persian, Urdu, Hebrew
    "السيد", "السيدة", "الأستاذ", "الدكتور", "د", "آقای", "خانم", "جناب", "محترم",
    "محترمہ", "ڈاکٹر", "מר", "גב", "ד\"ר", "ד״ר",
    # South and South-East Asian
    "श्री", "श्रीमती", "सुश्री", "कुमारी", "डा", "डॉ", "श्रीमान", "bapak", "ibu", "sdr", "sdri",
    "puan", "encik", "cik", "ông", "bà",
))
# Written after the name: generational suffixes, degrees, and titles some languages put
# last (Latvian kungs/kundze, Hindi जी, Urdu sahib, Japanese sama written apart).
SUFFIXES = frozenset((
    "jr", "sr", "ii", "iii", "iv", "v", "phd", "md", "esq", "mba", "msc", "bsc",
    "kungs", "kundze", "k-gs", "k-dze",
    "जी", "sahib", "saheb", "صاحب", "sama", "さん", "様", "씨", "님",
    "محترم", "محترمہ",
))
# fmt: on


def _key(token: str) -> str:
    return token.casefold().rstrip(".,")


def without_honorifics(tokens: Sequence[str]) -> list[str]:
    """``tokens`` of a name without courtesy titles before it and suffixes after it;
    the tokens as they were when nothing else would be left."""
    start, end = 0, len(tokens)
    while start < end - 1 and _key(tokens[start]) in TITLES:
        start += 1
    while end - 1 > start and _key(tokens[end - 1]) in SUFFIXES:
        end -= 1
    return list(tokens[start:end])
