"""PCI.CardNumber: issuer prefix and length tables, then Luhn; sequential ids rejected."""

from __future__ import annotations

import re

from stdnum import luhn

from .base import STRONG, Finding, PreparedColumn, count_matches, has_hint, is_sequential
from .masking import mask_last_digits

_CANDIDATE = re.compile(r"\d(?:[ -]?\d){12,18}")
_HINT_TOKENS = ("card", "cc", "pan", "cardnumber", "ccnum", "creditcard")
_HINT_PHRASES = ("cardnumber", "creditcard", "cardno")

# (prefix range low, high, allowed lengths): Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro. Order numbers rarely fall in these ranges with these lengths.
_ISSUERS: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (4, 4, (13, 16, 19)),
    (51, 55, (16,)),
    (2221, 2720, (16,)),
    (34, 34, (15,)),
    (37, 37, (15,)),
    (6011, 6011, (16, 17, 18, 19)),
    (644, 649, (16, 17, 18, 19)),
    (65, 65, (16, 17, 18, 19)),
    (3528, 3589, (16, 17, 18, 19)),
    (300, 305, (14, 16, 19)),
    (36, 36, (14, 16, 19)),
    (38, 39, (14, 16, 19)),
    (62, 62, (16, 17, 18, 19)),
    (50, 50, (12, 13, 14, 15, 16, 17, 18, 19)),
    (56, 58, (12, 13, 14, 15, 16, 17, 18, 19)),
    (67, 67, (12, 13, 14, 15, 16, 17, 18, 19)),
)


def issuer_matches(digits: str) -> bool:
    for low, high, lengths in _ISSUERS:
        width = len(str(low))
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def _is_card(text: str) -> bool:
    if not _CANDIDATE.fullmatch(text):
        return False
    digits = text.replace(" ", "").replace("-", "")
    return issuer_matches(digits) and luhn.is_valid(digits) and len(set(digits)) > 1


def detect_card_number(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "integer", "numeric", "json"):
        return []
    matched, checked, examples = count_matches(column.texts, _is_card, mask_last_digits)
    sequential = False
    if matched:
        numbers = [int(t.replace(" ", "").replace("-", "")) for t in column.texts if _is_card(t)]
        sequential = is_sequential(numbers)
    return [
        Finding(
            tag="PCI.CardNumber",
            detector="card_luhn",
            matched=0 if sequential else matched,
            checked=checked,
            strength=STRONG,
            examples=examples,
            name_hint=has_hint(column, _HINT_TOKENS, _HINT_PHRASES),
            extra={"sequential_ids": sequential},
        )
    ]
