"""Street lines between a postcode and a town: in a table whose postcode and town columns
are settled, the column right beside either whose values are words with a house number is
their street address, in whatever script and street vocabulary the address detector lacks
("שדרות המגדלור 6", "ถนนสุขุมวิท 12"). Schemas keep the street, postcode and town together."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..base import Finding, PreparedColumn
from ..masking import mask_words
from .rows import ROW_SHARE, Scores, context_finding, is_country_column, settled

_NUMBER = re.compile(r"(?<!\d)\d{1,5}(?!\d)")
_WORD = re.compile(r"[^\W\d_]{2,}")
_DIGITS = re.compile(r"\d+")


def address_beside_postcode_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    if any(best.get("PII.Address", (0.0,))[0] >= 0.7 for best in scores):
        return []  # the table's address is found: another numbered column is something else
    postcodes = settled(scores, "PII.PostalCode")
    towns = {
        position
        for position in settled(scores, "PII.Location")
        if not is_country_column(table[position])
    }
    if not postcodes or not towns:
        return []
    for position, column in enumerate(table):
        beside = {position - 1, position + 1}
        if not beside & postcodes or position in postcodes | towns:
            continue
        if any(score >= 0.7 for score, _ in scores[position].values()):
            continue
        lines = [text for text in column.texts if street_line(text)]
        if len(lines) < ROW_SHARE * len(column.texts) or not varied(lines):
            continue
        finding = context_finding(
            "PII.Address",
            "words and a house number beside a postcode, in a table with its town",
            table[min(beside & postcodes)],
            len(lines),
            len(column.texts),
        )
        finding.examples = [mask_words(text) for text in column.texts[:3]]
        return [(position, finding)]
    return []


def street_line(text: str) -> bool:
    """A word of two letters or more and a number of one to five digits, not a number
    alone nor a long text: "Rruga e Kavajës 12", "ул. Школьная, 317"."""
    return (
        4 <= len(text) <= 120
        and len(text.split()) <= 12
        and _NUMBER.search(text) is not None
        and _WORD.search(text) is not None
    )


def varied(lines: list[str]) -> bool:
    """Streets differ from row to row; "Ward 3", "Ward 7" repeat their words."""
    words = [_DIGITS.sub("", line).strip() for line in lines]
    return len(set(words)) >= 0.5 * len(words)
