"""Shared types and helpers for Warden's detectors.

A detector is a pure function ``(PreparedColumn) -> list[Finding]``. The classifier turns a
``ColumnSample`` into a ``PreparedColumn`` once (decoding, truncating and sampling values,
splitting the column name into tokens, running NER in a batch) so that every detector works
on the same bounded, clean input and none of them has to defend against bad values.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

_T = TypeVar("_T")

MAX_VALUES_PER_COLUMN = 200
MAX_CHARS_PER_VALUE = 2000
PROBE_VALUES = 25  # a detector with no match among this many values gives up early

# Strength of the value evidence, before the match share and name hints are applied.
STRONG = 0.95  # checksum or unambiguous structure (Luhn + issuer, mod-97, stdnum, PEM)
CONTEXT = 0.9  # a shape confirmed by a sibling column of the same rows (see ``context``)
MEDIUM = 0.8  # distinctive shape without checksum (street + number, possible phone)
WEAK = 0.45  # shape shared with many harmless values: needs a name hint to reach 0.7
HINT_WEIGHT = 0.5  # a matching column name removes half of the remaining doubt
NEGATIVE_HINT_FACTOR = 0.4  # a name that contradicts the tag (``version`` for IPs)


@dataclass(frozen=True)
class ColumnSample:
    name: str
    data_type: str
    values: Sequence[object]
    table: str = ""


@dataclass(frozen=True)
class TagSuggestion:
    tag: str
    confidence: float
    evidence: dict


@dataclass
class PreparedColumn:
    """A column sample reduced to what detectors need; built once per column."""

    name: str
    table: str
    data_type: str
    type_family: str  # text | integer | numeric | date | timestamp | boolean | json | binary
    name_tokens: frozenset[str]
    name_text: str  # lowercased name with separators as spaces, e.g. "customer email"
    texts: list[str]  # non-null sampled values as stripped strings (bounded length)
    raw_values: list[object]  # the same values, unconverted (dates stay dates)
    sampled_non_null: int
    entity_labels: dict[int, set[str]] = field(default_factory=dict)  # value index -> labels
    entity_examples: dict[str, list[str]] = field(default_factory=dict)  # masked entity texts
    ner_ran: bool = False
    free_text: bool | None = None  # computed once by ``health.is_free_text``
    rows: list[int] = field(default_factory=list)  # sampled row of each text (table context)
    row_count: int = 0  # rows in the sample the column came from

    def entity_share(self, *labels: str) -> float:
        """Share of NER-read values holding an entity with one of ``labels``."""
        if not self.entity_labels:
            return 0.0
        hits = sum(1 for found in self.entity_labels.values() if found.intersection(labels))
        return hits / len(self.entity_labels)


@dataclass
class Finding:
    """Value evidence for one tag from one detector."""

    tag: str
    detector: str
    matched: int
    checked: int
    strength: float
    examples: list[str] = field(default_factory=list)
    name_hint: bool = False
    negative_hint: bool = False
    full_share: float = 0.8  # share at which value evidence counts as complete
    min_share: float = 0.2  # below this share the finding is dropped
    extra: dict = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.matched / self.checked if self.checked else 0.0


Detector = Callable[[PreparedColumn], list[Finding]]


def confidence(finding: Finding) -> float:
    """Combine match share, validator strength and name hints into a 0..1 confidence.

    ``value = strength * min(1, share / full_share)``; a share under ``min_share`` gives 0.
    A contradicting column name multiplies the value by 0.4; a matching column name removes
    half of the remaining doubt: ``1 - (1 - value) * 0.5``. The result is capped at 0.99.
    Name hints never create a suggestion on their own: no value evidence, no suggestion.
    So a checksum-validated column scores 0.95 on values alone, a weak shape (postal code,
    passport, bank account) scores at most 0.45 alone and 0.725 with a matching name.
    """
    share = finding.share
    if finding.matched == 0 or share < finding.min_share:
        return 0.0
    value = finding.strength * min(1.0, share / finding.full_share)
    if finding.negative_hint:
        value *= NEGATIVE_HINT_FACTOR
    if finding.name_hint:
        value = 1 - (1 - value) * (1 - HINT_WEIGHT)
    return round(min(value, 0.99), 3)


# --- column preparation -------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NAME_SPLIT = re.compile(r"[^a-z0-9]+")


def name_tokens(name: str) -> list[str]:
    """``customerEmail_2`` -> ``["customer", "email", "2"]``."""
    return [tok for tok in _NAME_SPLIT.split(_CAMEL.sub("_", name).lower()) if tok]


def type_family(data_type: str) -> str:
    kind = data_type.lower()
    families = (
        ("timestamp", ("timestamp", "datetime")),
        ("date", ("date",)),
        ("boolean", ("bool",)),
        ("json", ("json",)),
        ("binary", ("bytea", "blob", "binary", "varbinary")),
        ("integer", ("int", "serial")),
        ("numeric", ("numeric", "decimal", "float", "double", "real", "money")),
    )
    for family, markers in families:
        if any(marker in kind for marker in markers):
            return family
    return "text"


def value_to_text(value: object) -> str | None:
    """A compact, bounded string form of any sampled value; None for empty values."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value[: MAX_CHARS_PER_VALUE * 4]).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value[: MAX_CHARS_PER_VALUE * 2]
    elif isinstance(value, dict | list | tuple):
        try:
            text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = str(value)
    elif isinstance(value, float | int | Decimal | dt.date | dt.time):
        text = str(value)
    else:
        try:
            text = str(value)
        except Exception:  # a broken __str__ in a driver type must not stop a scan
            return None
    text = text.replace("\x00", "").strip()
    return text[:MAX_CHARS_PER_VALUE] or None


def even_sample(values: Sequence[_T], limit: int) -> list[_T]:
    """At most ``limit`` values spread evenly over the input (keeps head and tail)."""
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def prepare_column(sample: ColumnSample) -> PreparedColumn:
    non_null = [row for row, value in enumerate(sample.values) if value is not None]
    sampled = even_sample(non_null, MAX_VALUES_PER_COLUMN)
    raw_values: list[object] = []
    texts: list[str] = []
    rows: list[int] = []
    for row in sampled:
        value = sample.values[row]
        text = value_to_text(value)
        if text is not None:
            texts.append(text)
            raw_values.append(value)
            rows.append(row)
    tokens = name_tokens(sample.name)
    return PreparedColumn(
        name=sample.name,
        table=sample.table,
        data_type=sample.data_type.lower(),
        type_family=type_family(sample.data_type),
        name_tokens=frozenset(tokens),
        name_text=" ".join(tokens),
        texts=texts,
        raw_values=raw_values,
        sampled_non_null=len(texts),
        rows=rows,
        row_count=len(sample.values),
    )


# --- value shape --------------------------------------------------------------------


def _mark_class() -> str:
    """A regex class of every combining mark (Unicode category M) up to the SMP."""
    ranges: list[tuple[int, int]] = []
    for point in range(0x300, min(sys.maxunicode, 0x1FFFF) + 1):
        if unicodedata.category(chr(point))[0] == "M":
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    spans = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    return f"[{spans}\\u200c\\u200d]"


# Vowel signs and viramas (Devanagari, Bengali, Tamil, Thai, Sinhala) and the
# zero-width (non-)joiners of Persian and Sinhala are not letters to ``\w``: a shape
# regex of letters stops inside "यादव" or "ایمان‌شهر". Shape checks read a copy without them.
_MARKS = re.compile(_mark_class())


def without_marks(text: str) -> str:
    """``text`` without combining marks and zero-width joiners (for shape regexes only)."""
    return text if text.isascii() else _MARKS.sub("", text)


# "г. Сасово", "ul. Zaułek", "д. Ухта": a short lowercase type word with a dot before a name.
_TYPE_PREFIX = re.compile(r"[^\W\d_]{1,4}\. ?(?=\w)")


def starts_like_name(text: str) -> bool:
    """A proper noun's first letter: upper case, or a letter of a script without case.

    Chinese, Japanese, Korean, Hebrew or Arabic names have no capitals; a lowercase first
    letter ("euro", "open") is the one thing that tells ordinary words apart. Georgian is
    written in Mkhedruli, which Unicode files as lower case since it added the Mtavruli
    capitals (2018) that Georgian does not use for names: it counts as a script without case.
    """
    first = text[:1]
    return first.isupper() or (first.isalpha() and (not first.islower() or _caseless(first)))


def _caseless(letter: str) -> bool:
    return "\u10d0" <= letter <= "\u10ff"  # Georgian Mkhedruli


def without_type_prefix(text: str) -> str:
    """ "г. Сасово" -> "Сасово", "aleja Owocowa 850" -> "Owocowa 850": settlement and
    street types come first, in lower case, in many languages; the name after them
    carries the capital."""
    match = _TYPE_PREFIX.match(text)
    if match and match.end() < len(text):
        return text[match.end() :]
    first, _, rest = text.partition(" ")
    if first.isalpha() and first.islower() and len(first) <= 12 and rest[:1].isupper():
        return rest
    return text


# --- name hints ---------------------------------------------------------------------


def has_hint(
    column: PreparedColumn, tokens: Iterable[str] = (), phrases: Iterable[str] = ()
) -> bool:
    """True if the column name contains one of ``tokens`` or one of ``phrases``.

    Tokens match whole name parts (``ip`` matches ``client_ip`` but not ``zip``); phrases
    match inside the joined name (``"date of birth"``, ``"birth"`` inside ``birthdate``).
    """
    if column.name_tokens & frozenset(tokens):
        return True
    compact = column.name_text.replace(" ", "")
    return any(phrase.replace(" ", "") in compact for phrase in phrases)


# --- counting -----------------------------------------------------------------------


def count_matches(
    texts: Sequence[str],
    matcher: Callable[[str], bool],
    masker: Callable[[str], str],
    probe: int = PROBE_VALUES,
) -> tuple[int, int, list[str]]:
    """(matched, checked, masked examples); stops after ``probe`` values with no match."""
    matched = 0
    examples: list[str] = []
    for index, text in enumerate(texts):
        if index == probe and matched == 0:
            return 0, index, []
        if matcher(text):
            matched += 1
            if len(examples) < 3:
                examples.append(masker(text))
    return matched, len(texts), examples


def is_sequential(numbers: Sequence[int]) -> bool:
    """True for id-like runs: sorted values that mostly step by small amounts."""
    if len(numbers) < 5:
        return False
    ordered = sorted(set(numbers))
    if len(ordered) < 5:
        return False
    steps = [b - a for a, b in itertools.pairwise(ordered)]
    small = sum(1 for step in steps if step <= 1000)
    return small / len(steps) >= 0.8
