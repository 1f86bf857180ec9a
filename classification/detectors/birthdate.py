"""PII.DateOfBirth: dates whose implied ages are plausible, plus the column name.

A date column counts as birth dates when nearly every value implies an age of 0-110 years.
Without a ``dob``/``birth`` name, the dates must also look like adults' birthdays (most ages
18-90, spread over at least a decade, no time of day); ``created_at``-style names contradict.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics

from .base import MEDIUM, WEAK, Finding, PreparedColumn, has_hint
from .masking import mask_generic

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?.*)?")
_DMY = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})")
_HINT_TOKENS = (
    "dob",
    "birth",
    "birthday",
    "birthdate",
    "born",
    "bday",
    "nascita",
    "nacimiento",
    "naissance",
    "geburtsdatum",
    "geboortedatum",
)
_HINT_PHRASES = ("birth", "dateofbirth", "geburt", "nascita", "nacimiento", "naissance")
# Unnamed dates that look like adults' birthdays clear the 0.7 threshold, but only just.
UNNAMED_ADULT_BIRTHDAYS = 0.72
_NEGATIVE_TOKENS = (
    "created",
    "updated",
    "modified",
    "deleted",
    "at",
    "ts",
    "timestamp",
    "expires",
    "expiry",
    "expiration",
    "issued",
    "start",
    "end",
    "since",
    "last",
    "order",
    "hired",
    "hire",
    "joined",
    "login",
    "seen",
    "paid",
    "shipped",
    "due",
    "valid",
    "effective",
    "posted",
    "published",
)


def as_date(value: object, text: str) -> tuple[dt.date | None, bool]:
    """(date, has time of day) for date objects and date-like strings."""
    if isinstance(value, dt.datetime):
        return value.date(), value.time() != dt.time(0, 0)
    if isinstance(value, dt.date):
        return value, False
    if not isinstance(value, str) or len(text) > 32:
        return None, False
    try:
        if match := _ISO.fullmatch(text):
            year, month, day = (int(g) for g in match.groups()[:3])
            has_time = bool(match.group(4)) and match.group(4, 5) != ("00", "00")
            return dt.date(year, month, day), has_time
        if match := _DMY.fullmatch(text):
            first, second, year = (int(g) for g in match.groups())
            day, month = (first, second) if second <= 12 else (second, first)
            return dt.date(year, month, day), False
    except ValueError:
        return None, False
    return None, False


def _ages(column: PreparedColumn, today: dt.date) -> tuple[list[float], int, list[str]]:
    """(ages in years, values with a time of day, masked examples); gives up after 25 misses."""
    ages: list[float] = []
    timed = 0
    examples: list[str] = []
    for index, (value, text) in enumerate(zip(column.raw_values, column.texts, strict=True)):
        if index == 25 and not ages:
            break
        day, has_time = as_date(value, text)
        if day is None:
            continue
        ages.append((today - day).days / 365.25)
        timed += has_time
        if len(examples) < 3:
            examples.append(mask_generic(text[:10]))
    return ages, timed, examples


def detect_date_of_birth(column: PreparedColumn, today: dt.date | None = None) -> list[Finding]:
    if column.type_family not in ("date", "timestamp", "text"):
        return []
    ages, timed, examples = _ages(column, today or dt.date.today())
    if not ages:
        return []
    checked = column.sampled_non_null
    plausible = sum(1 for age in ages if 0 <= age <= 110)
    adults = sum(1 for age in ages if 18 <= age <= 90)
    spread = statistics.pstdev(ages) if len(ages) > 1 else 0.0
    hinted = has_hint(column, _HINT_TOKENS, _HINT_PHRASES)
    if hinted:
        strength = MEDIUM if plausible / len(ages) >= 0.95 else WEAK / 2
    elif adults / checked >= 0.8 and spread >= 8 and timed / len(ages) < 0.2:
        strength = UNNAMED_ADULT_BIRTHDAYS
    else:
        strength = WEAK / 2
    if timed / len(ages) >= 0.5:
        strength = min(strength, WEAK)  # birthdays have no time of day
    return [
        Finding(
            tag="PII.DateOfBirth",
            detector="birth_date_ages",
            matched=plausible,
            checked=checked,
            strength=strength,
            examples=examples,
            name_hint=hinted,
            negative_hint=has_hint(column, _NEGATIVE_TOKENS) and not hinted,
            extra={
                "adult_age_share": round(adults / checked, 3),
                "age_spread_years": round(spread, 1),
            },
        )
    ]
