"""PII.Address: a house number next to a street word (several languages) or a street shape.

Street words are matched as whole words (``rue``, ``via``, ``calle``) or as the end of a
compound (``Liebeltweg``, ``Kerkstraat``). A number-first line of capitalised words
(``58683 Mitchell Parks``) also counts; NER places inside the text add to the share.
"""

from __future__ import annotations

import re

from .base import MEDIUM, Finding, PreparedColumn, has_hint
from .masking import mask_words

_STREET_WORDS = (
    "street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl|"
    "square|sq|parkway|pkwy|terrace|circle|cir|trail|highway|hwy|suite|apt|apartment|unit|flat|"
    "po box|rue|chemin|impasse|allée|quai|route|cours|calle|avenida|plaza|paseo|camino|"
    "carrera|ronda|cañada|travesía|vía|callejón|glorieta|pasaje|alameda|rambla|cuesta|"
    "urbanización|via|viale|piazza|corso|largo|vicolo|strada|contrada|borgo|incrocio|"
    "rotonda|piazzale|canale|stretto|piazzetta|appartamento|piano|piso|puerta|straße|strasse|"
    "str|platz|allee|gasse|"
    "straat|laan|plein|gracht|kade|singel|dreef|steeg|dijk|weg|hof|park|ring|damm|ufer"
)
_STREET_WORD = re.compile(rf"(?<!\w)(?:{_STREET_WORDS})\.?(?!\w)", re.IGNORECASE)
_STREET_SUFFIX = re.compile(
    r"\w{3,}(?:straße|strasse|str\.|straat|laan|weg|plein|gracht|kade|singel|hof|dreef|"
    r"gasse|allee|platz|ring|damm|steeg|dijk|baan|boulevard|markt|pad|plantsoen|burg)(?!\w)",
    re.IGNORECASE,
)
_NUMBER_FIRST = re.compile(r"\d{1,6}[A-Za-z]?,? (?:[A-Z][\w'.-]+ ?){2,5}")
_HOUSE_NUMBER = re.compile(r"(?<![\d.:])\d{1,5}(?:[/-]\d{1,5})?[A-Za-z]?(?![\d.:])")
_LEADING_STREET_WORD = re.compile(rf"(?:{_STREET_WORDS})\b", re.IGNORECASE)
_POSTAL_LINE = re.compile(
    r"(?m)(?:^|, )(?:\d{4,6}|[1-9]\d{3} ?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
    r"|[A-Z]{2} \d{5}(?:-\d{4})?)(?:$|[ ,])"
)
_HINT_TOKENS = (
    "address",
    "addr",
    "street",
    "addr1",
    "address1",
    "address2",
    "line1",
    "line2",
    "adresse",
    "direccion",
    "indirizzo",
    "strasse",
    "residence",
    "domicile",
)
_HINT_PHRASES = ("address", "street", "adres", "direccion", "indirizzo")


def _is_address(text: str) -> bool:
    words = len(text.split())
    if not 6 <= len(text) <= 160 or words > 16:
        return False
    if not _HOUSE_NUMBER.search(text):
        # "rue de Guichard", "Via Adele": a street without a number, only as a short line
        return words <= 6 and _LEADING_STREET_WORD.match(text) is not None
    return bool(
        _STREET_WORD.search(text)
        or _STREET_SUFFIX.search(text)
        or _NUMBER_FIRST.match(text)
        or ("\n" in text and _POSTAL_LINE.search(text))
    )


def detect_address(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json"):
        return []
    matched = checked = 0
    examples: list[str] = []
    for text in column.texts:
        if checked == 25 and matched == 0:
            break
        checked += 1
        if _is_address(text):
            matched += 1
            if len(examples) < 3:
                examples.append(mask_words(text))
    return [
        Finding(
            tag="PII.Address",
            detector="street_pattern",
            matched=matched,
            checked=checked,
            strength=MEDIUM,
            examples=examples,
            name_hint=has_hint(column, _HINT_TOKENS, _HINT_PHRASES),
        )
    ]
