"""Tables of sampled columns for the classifier tests, as the scan samples them (the n-th
value of each column comes from the same row), and the tags it suggests with confidence."""

from __future__ import annotations

import datetime as dt

from classification.detectors.base import ColumnSample, TagSuggestion

THRESHOLD = 0.7


def table(columns: dict[str, list[object]], name: str = "t4") -> list[ColumnSample]:
    """Columns of one table with opaque names (c0, c1, ...) unless the key says otherwise."""
    return [
        ColumnSample(name=column_name, data_type=_type(values), values=values, table=name)
        for column_name, values in columns.items()
    ]


def _type(values: list[object]) -> str:
    if all(isinstance(v, dt.date) for v in values):
        return "date"
    if all(isinstance(v, int) for v in values):
        return "integer"
    return "text"


def tags(suggestions: list[TagSuggestion]) -> dict[str, TagSuggestion]:
    """The suggestions at or above the scan's threshold, by tag."""
    return {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}
