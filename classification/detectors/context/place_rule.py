"""Places next to addresses: place names beside an address column are its city (NER need
only read a fifth of them as places, or the gazetteer know three in ten, where alone they
must read most)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..base import Finding, PreparedColumn, starts_like_name
from ..cities import place_share
from ..masking import mask_words
from ..names import name_kinds
from .rows import ROW_SHARE, Scores, by_row, context_finding, is_country_column, settled

PLACE_NER_SHARE = 0.2  # NER reads a fifth of the values as places: enough beside an address
PLACE_GAZETTEER_SHARE = 0.3  # or the gazetteer knows three in ten (villages are not in it)
KNOWN_TOWNS_SHARE = 0.9  # the gazetteer knows nearly all: towns, whatever names they share


def place_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """A column of place-like words in a table with addresses is the addresses' city.

    One such column per address column: beside a street, the English model reads surnames
    and occupations of other languages as places too, less often than the town's names and
    more often known to the name index. The most place-like column wins."""
    for best in scores:
        _towns_are_not_people(best)
    return _towns(table, scores, frozenset())


def town_beside_postcode_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """In a table with addresses, proper nouns right beside a settled postcode column are
    the town, though neither NER nor the gazetteer knows them: villages, suburbs and new
    estates are in no list, but schemas keep the town next to its postcode (street,
    postcode, town). Runs after the postal rule; towns already found use up their address."""
    postcodes = settled(scores, "PII.PostalCode")
    return _towns(table, scores, postcodes) if postcodes else []


REPEATED_ROWS_SHARE = 0.3  # rows holding a value other rows hold too


def towns_of_their_postcodes(column: PreparedColumn, postcodes: PreparedColumn) -> bool:
    """Rows of one town have postcodes of one area (the same first character: LS1, LS6;
    10115, 13353), where a status, payment method or category repeats across every area.
    Only a column whose values repeat is tested: distinct towns say nothing either way."""
    codes = by_row(postcodes)
    areas: dict[str, list[str]] = {}
    for row, text in by_row(column).items():
        code = codes.get(row, "").strip()
        if code:
            areas.setdefault(text.strip().casefold(), []).append(code[0].casefold())
    repeated = [firsts for firsts in areas.values() if len(firsts) > 1]
    rows = sum(len(firsts) for firsts in areas.values())
    if sum(len(firsts) for firsts in repeated) < REPEATED_ROWS_SHARE * rows:
        return True
    return sum(1 for firsts in repeated if len(set(firsts)) == 1) >= 0.5 * len(repeated)


def _towns(
    table: Sequence[PreparedColumn], scores: Sequence[Scores], postcodes: frozenset[int]
) -> list[tuple[int, Finding]]:
    """Place-shaped columns of a table with addresses; those right beside one of the
    ``postcodes`` (positions) need no reading as places by NER or the gazetteer."""
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
        known_places = place_share(column)
        postcode = sorted({position - 1, position + 1} & postcodes)
        if column in anchors or any(
            score >= 0.7
            and not (
                (known_places >= KNOWN_TOWNS_SHARE or postcode) and read_by_model(tag, finding)
            )
            for tag, (score, finding) in best.items()
        ):
            # towns the gazetteer knows that the model reads as people (Vũng Tàu, Long
            # Xuyên: Vietnamese towns are made of the syllables of given names) stay open,
            # as do those beside a postcode (the model reads unknown capitalised words as
            # people; the name index decides below)
            continue
        ner_places = column.ner_ran and column.entity_share("GPE", "LOC") >= PLACE_NER_SHARE
        by_postcode = not ner_places and known_places < PLACE_GAZETTEER_SHARE
        if by_postcode and (
            not postcode or not towns_of_their_postcodes(column, table[postcode[0]])
        ):
            continue
        kinds = name_kinds(column)
        names = kinds["first"] + kinds["full"] + kinds["last"]
        given = kinds["first"] + kinds["full"] >= 0.5 * kinds["read"]
        # Vietnamese towns are all given-name syllables: a gazetteer that knows nearly
        # every value outweighs them
        if (given and known_places < KNOWN_TOWNS_SHARE) or (
            names >= 0.7 * kinds["read"]
            and column.entity_share("GPE", "LOC") <= column.entity_share("PERSON")
            and known_places < ROW_SHARE  # Portuguese towns are surnames too (Elvas, Macedo)
        ):
            continue  # names, some of which read as places: a person column
        shaped = [text for text in column.texts if place_shaped(text)]
        if by_postcode:  # "Handcrafted Granite Shoes", "Senior Data Engineer": not towns
            shaped = [text for text in shaped if proper_words(text) <= 2]
        share = len(shaped) / len(column.texts)
        if share >= ROW_SHARE:
            finding = context_finding(
                "PII.Location",
                "place names beside an address column"
                if not by_postcode
                else "proper nouns beside a postcode, in a table with addresses",
                table[postcode[0]] if by_postcode else anchors[0],
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
    kept = found[: max(0, len(anchors) - towns)]
    for _, position, _ in kept:
        if read_by_model("PII.PersonName", scores[position].get("PII.PersonName", (0, None))[1]):
            del scores[position]["PII.PersonName"]
    return [(position, finding) for _, position, finding in kept]


def read_by_model(tag: str, finding: Finding | None) -> bool:
    """A person-name claim that rests on the English model's reading alone."""
    return (
        tag == "PII.PersonName"
        and finding is not None
        and finding.detector.startswith("spacy_ner")
        and not finding.name_hint
    )


def _towns_are_not_people(best: Scores) -> None:
    """Towns the gazetteer settles (more values only places than only names, few first
    names) are not also people because the model reads Swiss towns (Chur, Schwyz) as PERSON."""
    town_score, town = best.get("PII.Location", (0.0, None))
    if town is None or town_score < 0.7 or town.detector != "gazetteer":
        return
    if read_by_model("PII.PersonName", best.get("PII.PersonName", (0.0, None))[1]):
        del best["PII.PersonName"]


# Zulu and Xhosa write a place's noun-class prefix in lower case before the capital: eKapa
# (Cape Town), uMhlathuze, kwaMashu, eThekwini
_CLASS_PREFIX = re.compile(r"(?:e|u|um|kwa|o|i|ku|em)(?=[A-Z])")


def place_shaped(text: str) -> bool:
    return (
        2 <= len(text) <= 60
        and starts_like_name(_CLASS_PREFIX.sub("", text, count=1) if text[:1].islower() else text)
        and not (len(text) <= 3 and text.isupper())
        and not any(char.isdigit() for char in text)
    )


def proper_words(text: str) -> int:
    """Capitalised words: a town has one or two ("Zuidschote", "Bad Ems", "Olhão da
    Restauração"); product names and job titles three or more."""
    return sum(1 for word in text.split() if starts_like_name(word))
