"""Places next to addresses: place names beside an address column are its city (NER need
only read a fifth of them as places, or the gazetteer know three in ten, where alone they
must read most)."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Finding, PreparedColumn, starts_like_name
from ..cities import place_share
from ..masking import mask_words
from ..names import name_kinds
from .rows import ROW_SHARE, Scores, context_finding, is_country_column

PLACE_NER_SHARE = 0.2  # NER reads a fifth of the values as places: enough beside an address
PLACE_GAZETTEER_SHARE = 0.3  # or the gazetteer knows three in ten (villages are not in it)


def place_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """A column of place-like words in a table with addresses is the addresses' city.

    One such column per address column: beside a street, the English model reads surnames
    and occupations of other languages as places too, less often than the town's names and
    more often known to the name index. The most place-like column wins."""
    anchors = [
        c
        for c, best in zip(table, scores, strict=True)
        if best.get("PII.Address", (0.0,))[0] >= 0.7
    ]
    if not anchors:
        return []
    found: list[tuple[float, int, Finding]] = []
    for position, column in enumerate(table):
        best = scores[position]
        if column in anchors or any(score >= 0.7 for score, _ in best.values()):
            continue
        ner_places = column.ner_ran and column.entity_share("GPE", "LOC") >= PLACE_NER_SHARE
        known_places = place_share(column)
        if not ner_places and known_places < PLACE_GAZETTEER_SHARE:
            continue
        kinds = name_kinds(column)
        names = kinds["first"] + kinds["full"] + kinds["last"]
        if kinds["first"] + kinds["full"] >= 0.5 * kinds["read"] or (
            names >= 0.7 * kinds["read"]
            and column.entity_share("GPE", "LOC") <= column.entity_share("PERSON")
            and known_places < ROW_SHARE  # Portuguese towns are surnames too (Elvas, Macedo)
        ):
            continue  # names, some of which read as places: a person column
        share = sum(1 for text in column.texts if _place_shaped(text)) / len(column.texts)
        if share >= ROW_SHARE:
            finding = context_finding(
                "PII.Location",
                "place names beside an address column",
                anchors[0],
                round(share * len(column.texts)),
                len(column.texts),
            )
            finding.examples = [mask_words(text) for text in column.texts[:3]]
            ner_lead = column.entity_share("GPE", "LOC") - names / kinds["read"]
            found.append((known_places + ner_lead, position, finding))
    # Towns already settled (by the gazetteer or the column's name) use up their addresses.
    towns = sum(
        1
        for column, best in zip(table, scores, strict=True)
        if best.get("PII.Location", (0.0,))[0] >= 0.7 and not is_country_column(column)
    )
    found.sort(key=lambda item: -item[0])
    return [(position, finding) for _, position, finding in found[: max(0, len(anchors) - towns)]]


def _place_shaped(text: str) -> bool:
    return (
        2 <= len(text) <= 60
        and starts_like_name(text)
        and not (len(text) <= 3 and text.isupper())
        and not any(char.isdigit() for char in text)
    )
