"""PII.Email: address syntax (local part, dotted domain, alphabetic TLD)."""

from __future__ import annotations

import re

from .base import STRONG, Finding, PreparedColumn, count_matches, has_hint
from .masking import mask_email

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
)
_HINT_TOKENS = ("email", "mail", "emailaddress")


def _is_email(text: str) -> bool:
    return "@" in text and len(text) <= 254 and _EMAIL.fullmatch(text) is not None


def detect_email(column: PreparedColumn) -> list[Finding]:
    matched, checked, examples = count_matches(column.texts, _is_email, mask_email)
    return [
        Finding(
            tag="PII.Email",
            detector="email_regex",
            matched=matched,
            checked=checked,
            strength=STRONG,
            examples=examples,
            name_hint=has_hint(column, _HINT_TOKENS, ("email",)),
        )
    ]
