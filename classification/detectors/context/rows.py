"""What every row rule shares: the rows of a column, the finding a rule adds, row shares.

A scan samples whole rows, so the n-th value of every column of a table comes from the
same row; these helpers line columns up by that row number.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import CONTEXT, Finding, PreparedColumn
from ..places import country_code, country_share

Scores = dict[str, tuple[float, Finding]]
ROW_SHARE = 0.8  # share of rows (with both values present) a rule must hold on
MIN_ROWS = 5


def by_row(column: PreparedColumn) -> dict[int, str]:
    return dict(zip(column.rows, column.texts, strict=True))


def context_finding(
    tag: str, rule: str, sibling: PreparedColumn, matched: int, checked: int, **extra: object
) -> Finding:
    return Finding(
        tag=tag,
        detector="table_context",
        matched=matched,
        checked=checked,
        strength=CONTEXT,
        full_share=ROW_SHARE,
        min_share=ROW_SHARE,
        extra={"context": {"rule": rule, "sibling_column": sibling.name, **extra}},
    )


def row_pairs(values: dict[int, str], countries: PreparedColumn) -> list[tuple[str, str]]:
    """(value, its row's ISO country) for the rows where both are known."""
    pairs = []
    for row, text in by_row(countries).items():
        value, country = values.get(row), country_code(text)
        if value is not None and country is not None:
            pairs.append((value, country))
    return pairs


def is_country_column(column: PreparedColumn) -> bool:
    return country_share(column) >= ROW_SHARE


def settled(scores: Sequence[Scores], tag: str) -> frozenset[int]:
    """Positions of the columns already tagged ``tag`` (at the auto-tag threshold)."""
    return frozenset(
        position for position, best in enumerate(scores) if best.get(tag, (0.0,))[0] >= 0.7
    )
