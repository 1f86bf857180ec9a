"""Postal codes by their row's country, or beside a place: a short code fits the postal
format of the country in its row's country column (formats per country from
``postal-codes-tools``, countries resolved with ``pycountry``), or, with no country column,
fits one country's format next to a city or address column.

A country column that contradicts the codes has the last word: codes that do not fit their
rows' countries are not postal codes, whatever else they sit next to.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Sequence

from postal_codes_tools.formats_constants import POSTAL_CODES_REGEX

from .. import VALUE_SHAPE_TAGS
from ..base import Finding, PreparedColumn, has_hint
from ..masking import mask_generic
from ..postal import postal_fits, postal_format, without_code_label
from .rows import MIN_ROWS, ROW_SHARE, Scores, by_row, context_finding, is_country_column, row_pairs

# Without a country column a code must fit one of these (the formats of the countries a
# deployment most often meets); with one, every country ``postal-codes-tools`` knows.
# fmt: off
LONE_POSTAL_COUNTRIES = (
    "US", "DE", "FR", "ES", "IT", "GB", "NL", "BR", "PL", "PT", "SE", "AT",
    "CH", "BE", "DK", "NO", "FI", "CZ", "AU", "CA", "MX", "JP", "IN",
)
# fmt: on


def postal_candidate(column: PreparedColumn) -> bool:
    if column.type_family not in ("text", "integer") or not column.texts:
        return False
    head = column.texts[:40]
    # "13496-73780" (Iran) is 11 characters: count letters and digits, not separators
    shaped = sum(
        1 for t in head if 3 <= sum(c.isalnum() for c in t) <= 10 and any(c.isdigit() for c in t)
    )
    if shaped < ROW_SHARE * len(head):
        return False
    numbers = sorted({int(t) for t in head if t.isdigit()})
    if len(numbers) < len(set(head)) or len(numbers) < MIN_ROWS:
        return True
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    return sum(1 for step in steps if step <= 2) < 0.8 * len(steps)  # not a counter


def postal_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    countries = [c for c in table if is_country_column(c)]
    places = [
        c
        for c, best in zip(table, scores, strict=True)
        if any(best.get(tag, (0.0,))[0] >= 0.5 for tag in ("PII.Location", "PII.Address"))
        and c not in countries
    ]
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        if not postal_candidate(column) or column in countries:
            continue
        finding = _postal_by_country(column, countries, places)
        if finding is None and not countries:
            # a country column that contradicts the codes has the last word
            finding = _postal_by_place(
                column, places, _next_to(position, table, places), scores[position]
            )
        if finding is not None:
            finding.examples = [mask_generic(text) for text in column.texts[:3]]
            # member_no, order_ref: a name that says number or id outweighs a fitting shape
            finding.negative_hint = has_hint(column, _NUMBER_TOKENS)
            found.append((position, finding))
    beside = {i for i, column in enumerate(table) if column in places or column in countries}
    kept = _fewest_doubts(found, table, beside)
    for position, finding in kept:
        context = finding.extra["context"]
        if "country_column" in context or context.get("separator_as_written"):
            # "6766-472" and "03972-523" also parse as local phone numbers (Germany's area
            # codes start with 0); the row's country decides, or every code written in one
            # country's separated layout beside a place: a country's phone numbers vary in
            # length, its postal codes do not
            scores[position].pop("PII.Phone", None)
    return kept


_NUMBER_TOKENS = ("no", "nr", "num", "number", "id", "ref", "seq", "count", "qty", "quantity")


def _fixed_lengths(known: Sequence[tuple[str, str]], *, integers: bool = False) -> bool:
    """A country's postal codes have one length; counts and amounts (7, 512, 4096) do not.
    (Taiwan's have two: the caller lets text of several lengths through beside a place.)

    Integers must all have it: points and counts drawn from 0-5000 are mostly four digits
    long, and codes stored as integers lose only leading zeros, which no format fits."""
    lengths: dict[str, Counter[int]] = {}
    for code, country in known:  # "13570-747" and "13570747" are one length
        digits = sum(c.isalnum() for c in without_code_label(code))
        lengths.setdefault(country, Counter())[digits] += 1
    modal = sum(counter.most_common(1)[0][1] for counter in lengths.values())
    return modal >= (1.0 if integers else 0.9) * len(known)


_AMOUNT_TOKENS = ("price", "total", "amount", "cost", "sum", "fee", "paid", "balance", "salary")


def like_amounts(column: PreparedColumn) -> bool:
    """Numbers of several lengths whose name says money (VND 45000, 120000 in order_total).
    Not their roundness: Viet Nam's codes (100000, 10000, 70000) and Taiwan's (100, 800)
    are as round as prices."""
    return has_hint(column, _AMOUNT_TOKENS)


def _postal_by_country(
    column: PreparedColumn, countries: Sequence[PreparedColumn], places: Sequence[PreparedColumn]
) -> Finding | None:
    """Codes that fit their rows' countries' formats; beside an address or a city, codes
    with the layout of those formats (the digits of "85288" outside Croatia's 1-5 range),
    and text codes of several lengths that each fit (Taiwan's "747" beside "51315")."""
    codes = by_row(column)
    for sibling in countries:
        known = [(code, cc) for code, cc in row_pairs(codes, sibling) if postal_format(cc)]
        integers = column.type_family == "integer"
        if len(known) < MIN_ROWS:
            continue
        mixed = not _fixed_lengths(known, integers=integers)
        if mixed and (integers or not places or like_amounts(column)):
            continue
        for relaxed in (False,) if mixed or not places else (False, True):
            fits = sum(1 for code, cc in known if postal_fits(code, cc, relaxed=relaxed))
            if fits >= ROW_SHARE * len(known):
                rule = "fits the postal format of the row's country"
                if relaxed:
                    rule = "has the layout of the row's country's postal codes, next to a place"
                return context_finding(
                    "PII.PostalCode",
                    rule,
                    places[0] if relaxed else sibling,
                    fits,
                    len(known),
                    countries=sorted({country for _, country in known})[:10],
                    country_column=sibling.name,
                    layout_only=relaxed,
                    mixed_lengths=mixed,
                )
    return None


_LAST_GROUP = re.compile(r"[ -](\d+)$")


def _unlike_a_phone(code: str) -> bool:
    """Written in groups whose last is not four digits ("01310-200", "2110-092"): local
    phone numbers end in a group of four ("555-1234", "2505-4254"), so those stay phones."""
    last = _LAST_GROUP.search(code)
    return last is not None and len(last.group(1)) != 4


_SEPARATOR = re.compile(r"[ -]")


def _separator_required(codes: Sequence[str], country: str) -> bool:
    """Every code written with the separator its country's format requires ("123-4567":
    Japan's codes are never written "1234567"), and some start with 0 or 1. Seven digits
    with a dash after three are a local phone number in few countries, North America's
    above all, whose exchange codes never start with 0 or 1 ("337-9325" stays a phone)."""
    return any(code[:1] in ("0", "1") for code in codes) and all(
        _SEPARATOR.search(code) is not None
        and not postal_fits(_SEPARATOR.sub("", code), country, stored_bare=False)
        for code in codes
    )


def _next_to(
    position: int, table: Sequence[PreparedColumn], places: Sequence[PreparedColumn]
) -> bool:
    return any(
        0 <= beside < len(table) and table[beside] in places
        for beside in (position - 1, position + 1)
    )


def _postal_by_place(
    column: PreparedColumn, places: Sequence[PreparedColumn], next_to_place: bool, best: Scores
) -> Finding | None:
    """Codes that all fit one country's format, anywhere in a table with an address or city.
    Digits that fit only once a separator is put back ("7369432" as Japan's "736-9432") are
    what any seven-digit patient or order number looks like: they count only in the column
    right beside the place, where schemas keep the postcode. There too, text codes of one
    length with the layout of any country's codes ("042932", "805 97", "LV-6092"), when no
    other value shape claims them: a deployment meets more countries than the usual ones."""
    if not places:
        return None
    codes = column.texts[:100]
    passes: list[tuple[bool, bool, Sequence[str]]] = [(False, False, LONE_POSTAL_COUNTRIES)]
    if next_to_place:
        passes.append((True, False, LONE_POSTAL_COUNTRIES))
        if _any_country_candidate(column, best):
            passes.append((False, True, ANY_POSTAL_COUNTRIES))
    for stored_bare, relaxed, countries in passes:
        fitting = [
            country
            for country in countries
            if _fit_count(codes, country, stored_bare=stored_bare, relaxed=relaxed)
            >= LONE_FIT_SHARE * len(codes)
        ]
        if not fitting:
            continue
        separated = not stored_bare and (
            all(_unlike_a_phone(code) for code in codes)
            or (next_to_place and _separator_required(codes, fitting[0]))
        )
        return context_finding(
            "PII.PostalCode",
            "one country's postal format next to an address or city"
            if not relaxed
            else "one length and a country's postal layout, right beside an address or city",
            places[0],
            _fit_count(codes, fitting[0], stored_bare=stored_bare, relaxed=relaxed),
            len(codes),
            country=fitting[0],
            separator_as_written=separated,
            **({"countries": fitting[:10], "layout_only": True} if relaxed else {}),
        )
    return None


LONE_FIT_SHARE = 0.95
# Every country the resource gives a format for, the usual ones first.
ANY_POSTAL_COUNTRIES = LONE_POSTAL_COUNTRIES + tuple(
    sorted(set(POSTAL_CODES_REGEX) - set(LONE_POSTAL_COUNTRIES))
)


def _fit_count(codes: Sequence[str], country: str, *, stored_bare: bool, relaxed: bool) -> int:
    """How many ``codes`` fit ``country``; stops once too many do not (197 countries)."""
    allowed = len(codes) - math.ceil(LONE_FIT_SHARE * len(codes))
    fits = misses = 0
    for code in codes:
        if postal_fits(code, country, relaxed=relaxed, stored_bare=stored_bare):
            fits += 1
        else:
            misses += 1
            if misses > allowed:
                break
    return fits


def _any_country_candidate(column: PreparedColumn, best: Scores) -> bool:
    """Text codes of one length (letters and digits, "805 97" and "80597" alike), not money,
    that no other value shape claims (a phone claim stands down for codes unlike phones)."""
    if column.type_family != "text" or like_amounts(column):
        return False
    lengths = Counter(sum(c.isalnum() for c in without_code_label(code)) for code in column.texts)
    length, count = lengths.most_common(1)[0]
    if count < LONE_FIT_SHARE * len(column.texts) or numbered_in_sequence(column, length):
        return False
    return not any(
        score >= 0.7
        and tag in VALUE_SHAPE_TAGS
        and tag != "PII.PostalCode"
        and not (tag == "PII.Phone" and all(_unlike_a_phone(code) for code in column.texts))
        for tag, (score, _) in best.items()
    )


def numbered_in_sequence(column: PreparedColumn, length: int) -> bool:
    """Codes that differ in their last two characters only ("004512", "004577"): store,
    branch or account numbers handed out in order, where a table's postcodes spread over
    areas."""
    # character by character, as wanted: the prefix the codes share
    shared = os.path.commonprefix([without_code_label(code) for code in column.texts[:100]])  # noqa: RUF071
    return length > 3 and sum(c.isalnum() for c in shared) >= length - 2


def _fewest_doubts(
    found: list[tuple[int, Finding]], table: Sequence[PreparedColumn], beside: set[int]
) -> list[tuple[int, Finding]]:
    """Of several columns that fit the same countries' codes, keep the likeliest: a text
    column over an integer one (codes keep their leading zeros as text; points and
    counts are integers), a code that fits the format over one with its layout only, then
    a column that sits next to an address, town or country column (``beside``: positions)
    over one that does not (a six-digit member number fits Russia's codes as well as the
    postcode does, but schemas keep the postcode with the rest of the address)."""

    def doubt(item: tuple[int, Finding]) -> tuple[bool, bool, bool]:
        position, finding = item
        return (
            table[position].type_family != "text",
            bool(finding.extra["context"].get("layout_only")),
            not {position - 1, position + 1} & beside,
        )

    if len(found) < 2:
        return found
    least = min(doubt(item) for item in found)
    return [item for item in found if doubt(item) == least]
