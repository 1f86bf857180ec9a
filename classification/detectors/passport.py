"""PII.Passport: passport-number shapes are shared with SKUs, so a name hint is required."""

from __future__ import annotations

import re

from .base import MEDIUM, Finding, PreparedColumn, count_matches, has_hint
from .masking import mask_generic

# US/UK/IN digits with optional letter, DE, FR, ES, IT and NL shapes, in one pattern.
_PASSPORT = re.compile(
    r"[A-Z]?\d{8,9}|[A-Z]\d{7}|[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}|\d{2}[A-Z]{2}\d{5}"
    r"|[A-Z]{2,3}\d{6,7}|[A-NP-Z]{2}[A-NP-Z0-9]{6}\d"
)
_HINT_TOKENS = ("passport", "passeport", "pasaporte", "passaporto", "reisepass", "paspoort")


def _is_passport(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    return _PASSPORT.fullmatch(compact) is not None and any(c.isdigit() for c in compact)


def detect_passport(column: PreparedColumn) -> list[Finding]:
    if not has_hint(column, _HINT_TOKENS, _HINT_TOKENS) or column.type_family != "text":
        return []
    matched, checked, examples = count_matches(column.texts, _is_passport, mask_generic)
    return [
        Finding(
            tag="PII.Passport",
            detector="passport_shape",
            matched=matched,
            checked=checked,
            strength=MEDIUM,
            examples=examples,
            name_hint=True,
        )
    ]
