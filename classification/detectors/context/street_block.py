"""A street, its postcode and its town side by side, found together when no column of them
is found alone: the other row rules start from a street or town some detector knows, and a
table of villages no gazetteer lists, with streets in a script or vocabulary the address
detector lacks ("משעול נחמן מברסלב 687"), gave them nothing to start from.

Each of the three is weak alone: words with a number are also product models and wards,
short codes are also SKUs and member numbers, short proper-noun phrases are also brands and
departments. Three adjacent columns that are one of each, none claimed by anything else, are
how schemas write an address (street, postcode, town in some order). A catalogue has the
same three shapes (model, SKU, brand), so what tells them apart is checked too: street words
differ from row to row (a catalogue repeats a few product lines), the town is not written in
the street ("Nike" in "Nike Air Max 90") and is not a column of people's names."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence

from ..base import Finding, PreparedColumn
from ..masking import mask_generic, mask_words
from ..names import name_kinds
from ..postal import without_code_label
from .address_rule import street_line, varied
from .place_rule import place_shaped, proper_words, read_by_model, towns_of_their_postcodes
from .postal_rule import like_amounts, numbered_in_sequence, postal_candidate
from .rows import ROW_SHARE, Scores, context_finding, is_country_column

MAX_TOWN_WORDS = 3
_DIGITS_AND_SEPARATORS = re.compile(r"[0-9][0-9 -]*")
MIN_TOWN_VARIETY = 0.4  # distinct towns per row: a table's rows come from many places
MAX_CODE_LENGTHS = 2  # Israel's codes are five digits or seven (2013), Taiwan's 3 or 5


def street_block_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """Three adjacent columns, each a street, a postcode or a town: settled by a detector,
    or of its weak shape; the ones of the weak shape only are found here (Israel's codes of
    five and seven digits beside a known street and town fit no one format)."""
    for start in range(len(table) - 2):
        for street, code, town in itertools.permutations(range(start, start + 3)):
            roles = ((street, "PII.Address"), (code, "PII.PostalCode"), (town, "PII.Location"))
            settled = {
                position
                for position, tag in roles
                if scores[position].get(tag, (0.0,))[0] >= 0.7
                and not (tag == "PII.Location" and is_country_column(table[position]))
            }
            if len(settled) == 3:
                break
            if all(
                position in settled or _shaped(tag, table, scores, position, (street, code))
                for position, tag in roles
            ):
                return _findings(table, street, code, town, settled)
    return []


def _shaped(
    tag: str,
    table: Sequence[PreparedColumn],
    scores: Sequence[Scores],
    position: int,
    street_and_code: tuple[int, int],
) -> bool:
    """The column has the weak shape of ``tag`` (the town's is read against the street and
    the postcode: positions)."""
    column, best = table[position], scores[position]
    if tag == "PII.Address":
        return _street(column, best)
    if tag == "PII.PostalCode":
        return _code(column, best)
    street, code = street_and_code
    return _town(column, best, table[street], table[code])


def _open(best: Scores, *, town: bool = False) -> bool:
    """No other tag claims the column (the English model's person reading of unknown
    capitalised words aside, for the town)."""
    return not any(
        score >= 0.7 and not (town and read_by_model(tag, finding))
        for tag, (score, finding) in best.items()
    )


def _street(column: PreparedColumn, best: Scores) -> bool:
    if column.type_family != "text" or not _open(best):
        return False
    lines = [text for text in column.texts if street_line(text)]
    return len(lines) >= ROW_SHARE * len(column.texts) and varied(lines)


def _code(column: PreparedColumn, best: Scores) -> bool:
    if not postal_candidate(column) or like_amounts(column) or not _open(best):
        return False
    lengths = Counter(sum(c.isalnum() for c in without_code_label(t)) for t in column.texts)
    if len(lengths) > MAX_CODE_LENGTHS or any("." in t for t in column.texts):
        return False
    # Codes with letters that fit no country's format are SKUs and bins ("KX-4821",
    # "A-1203"; the postal rule reads those that fit), and codes differing only at the end
    # are numbers handed out in order (store 004512, 004513)
    digits_only = all(_DIGITS_AND_SEPARATORS.fullmatch(without_code_label(t)) for t in column.texts)
    return digits_only and not numbered_in_sequence(column, lengths.most_common(1)[0][0])


def _town(
    column: PreparedColumn, best: Scores, street: PreparedColumn, codes: PreparedColumn
) -> bool:
    if column.type_family != "text" or is_country_column(column) or not _open(best, town=True):
        return False
    texts = column.texts
    # "Senior Data Engineer", "Handcrafted Granite Shoes": three capitalised words or more
    shaped = [
        t
        for t in texts
        if place_shaped(t) and len(t.split()) <= MAX_TOWN_WORDS and proper_words(t) <= 2
    ]
    if len(shaped) < ROW_SHARE * len(texts):
        return False
    if len(set(texts)) < MIN_TOWN_VARIETY * len(texts):
        return False  # departments, brands, warehouses: a few values over and over
    if not towns_of_their_postcodes(column, codes):
        return False  # a status or category repeats across every postal area
    kinds = name_kinds(column)
    if kinds["first"] + kinds["full"] >= 0.5 * kinds["read"]:
        return False  # given names: a person column
    written = {word.casefold() for text in street.texts for word in text.split()}
    return sum(1 for t in texts if t.casefold() in written) < 0.2 * len(texts)


def _findings(
    table: Sequence[PreparedColumn], street: int, code: int, town: int, settled: set[int]
) -> list[tuple[int, Finding]]:
    rule = "a street, a postcode and a town side by side"
    found = []
    for position, tag, sibling in (
        (street, "PII.Address", code),
        (code, "PII.PostalCode", street),
        (town, "PII.Location", code),
    ):
        if position in settled:
            continue
        column = table[position]
        finding = context_finding(
            tag, rule, table[sibling], len(column.texts), len(column.texts), joint=True
        )
        mask = mask_generic if tag == "PII.PostalCode" else mask_words
        finding.examples = [mask(text) for text in column.texts[:3]]
        found.append((position, finding))
    return found
