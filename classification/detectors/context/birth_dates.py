"""Birth dates: a date 18-100 years before a sibling date of the same row (signed up,
admitted, ordered) is a birth date; a column of them says the table's rows are people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..base import Finding, PreparedColumn
from ..birthdate import as_date
from ..masking import mask_generic
from .rows import MIN_ROWS, ROW_SHARE, Scores, context_finding

ADULT_YEARS = (18.0, 100.0)


def _dates(column: PreparedColumn) -> dict[int, dt.date] | None:
    if column.type_family not in ("date", "timestamp", "text"):
        return None
    dates = {}
    for row, value, text in zip(column.rows, column.raw_values, column.texts, strict=True):
        day, _ = as_date(value, text)
        if day is not None:
            dates[row] = day
        elif len(dates) == 0 and row >= 10:
            return None
    return dates if len(dates) >= ROW_SHARE * max(len(column.texts), 1) else None


def birth_date_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    dated = {i: d for i, column in enumerate(table) if (d := _dates(column))}
    found: list[tuple[int, Finding]] = []
    for index, births in dated.items():
        for other, later in dated.items():
            if other == index:
                continue
            gaps = [(later[r] - day).days / 365.25 for r, day in births.items() if r in later]
            adult = sum(1 for gap in gaps if ADULT_YEARS[0] <= gap <= ADULT_YEARS[1])
            if len(gaps) >= MIN_ROWS and adult >= ROW_SHARE * len(gaps):
                finding = context_finding(
                    "PII.DateOfBirth",
                    "18-100 years before a sibling date",
                    table[other],
                    adult,
                    len(gaps),
                )
                finding.examples = [mask_generic(t[:10]) for t in table[index].texts[:3]]
                found.append((index, finding))
                break
    return found


def birth_date_column(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> PreparedColumn | None:
    """A column of birth dates: the table's rows are people."""
    for column, best in zip(table, scores, strict=True):
        if best.get("PII.DateOfBirth", (0.0,))[0] >= 0.7:
            return column
    return None
