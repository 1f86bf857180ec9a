"""Phone numbers written without their country prefix: a number that is valid in its
row's country (``phonenumbers`` with the row's country column as the region) is a phone."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Finding, PreparedColumn
from ..masking import mask_generic
from ..phone import national_phone_valid
from .rows import MIN_ROWS, ROW_SHARE, Scores, by_row, context_finding, is_country_column, row_pairs


def phone_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    countries = [c for c in table if is_country_column(c)]
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        if (
            not countries
            or column in countries
            or scores[position].get("PII.Phone", (0.0,))[0] >= 0.7
        ):
            continue
        if column.type_family != "text" or any(s >= 0.7 for s, _ in scores[position].values()):
            continue
        numbers = by_row(column)
        for sibling in countries:
            known = row_pairs(numbers, sibling)
            valid = sum(1 for number, cc in known if national_phone_valid(number, cc))
            if len(known) >= MIN_ROWS and valid >= ROW_SHARE * len(known):
                finding = context_finding(
                    "PII.Phone",
                    "a valid phone number in the row's country",
                    sibling,
                    valid,
                    len(known),
                )
                finding.examples = [mask_generic(text) for text in column.texts[:3]]
                found.append((position, finding))
                break
    return found
