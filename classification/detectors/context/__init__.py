"""Row and table context: columns of one table are judged together, row by row.

A scan samples whole rows, so the n-th value of every column of a table comes from the
same row. The rules read across columns, each adding a finding whose evidence names the
rule and the sibling column that decided (``evidence["context"]``); one module per family:

* ``place_rule``: place names beside an address column are its city, and so are proper
  nouns right beside a settled postcode in a table with addresses (villages no list knows);
* ``postal_rule``: a short code fits the postal-code format of its row's country, or of one
  country next to a city or address column;
* ``street_block``: three adjacent columns that are a street, a postcode and a town,
  when no detector knows any of them alone (joint evidence, guarded against catalogues);
* ``address_rule``: words with a house number right beside a settled postcode, in a
  table with its town, are the street address;
* ``phone_rule``: a number written without its country prefix is a valid phone number in
  its row's country;
* ``name_rules``: single-token columns that pair up as "first last" row by row, or that a
  third column of the same row writes together, are the parts of person names;
* ``birth_dates``: a date 18-100 years before a sibling date of the same row is a birth date.

A country column that contradicts a rule has the last word: codes that do not fit their
rows' countries are not postal codes, whatever else they sit next to.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Finding, PreparedColumn, confidence
from .address_rule import address_beside_postcode_rule
from .birth_dates import birth_date_rule
from .name_rules import (
    name_pair_rule,
    names_in_email_rule,
    surname_beside_name_rule,
    written_together_rule,
)
from .phone_rule import phone_rule
from .place_rule import place_rule, town_beside_postcode_rule
from .postal_rule import postal_rule
from .rows import MIN_ROWS, Scores
from .street_block import street_block_rule


def apply_table_context(columns: Sequence[PreparedColumn], scores: Sequence[Scores]) -> None:
    """Add context findings to ``scores`` (one dict per column) for columns of one sample."""
    tables: dict[tuple[str, int], list[int]] = {}
    for index, column in enumerate(columns):
        if column.row_count >= MIN_ROWS:
            tables.setdefault((column.table, column.row_count), []).append(index)
    for members in tables.values():
        if len(members) < 2:
            continue
        table = [columns[i] for i in members]
        # Birth dates first: they say the rows are people, which the name rules read. Then
        # names: a surname column the English model reads as places is settled by its
        # first-name sibling before the place rule could claim it.
        rules = (
            birth_date_rule,
            written_together_rule,
            name_pair_rule,
            names_in_email_rule,
            surname_beside_name_rule,
            place_rule,
            postal_rule,
            address_beside_postcode_rule,
            town_beside_postcode_rule,
            street_block_rule,
            phone_rule,
        )
        for rule in rules:
            for position, finding in rule(table, [scores[i] for i in members]):
                _add(scores[members[position]], finding)


def _add(best: Scores, finding: Finding) -> None:
    score = confidence(finding)
    if score > best.get(finding.tag, (0.0,))[0]:
        best[finding.tag] = (score, finding)
