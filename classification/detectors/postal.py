"""PII.PostalCode: distinctive shapes (UK, NL, CA) count alone; digit runs need a name.

Without a name, digit runs become postal codes only through table context (``context``).
"""

from __future__ import annotations

import re

from .base import MEDIUM, WEAK, Finding, PreparedColumn, has_hint
from .masking import mask_generic

_DISTINCTIVE = re.compile(
    r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"  # UK
    r"|[1-9]\d{3} ?[A-Z]{2}"  # NL
    r"|[A-Z]\d[A-Z] ?\d[A-Z]\d"  # CA
)
# With a postal column name, any code shape of the world's formats counts: digit groups
# ("91417776", "39150-008", "137-9325", "763 17"), optionally with a letter prefix or suffix
# ("LV-1010", "ΤΚ 763 17", "B1636FDA"), at least three digits and at most a few letters.
_HINTED_SHAPE = re.compile(
    r"(?:[^\W\d_]{1,3}[ -]?)?\d(?:[\d]|[ -](?=\d)){2,9}(?:[ -]?[^\W\d_]{1,3})?"
)
_HINT_TOKENS = (
    "zip",
    "zipcode",
    "postcode",
    "postal",
    "plz",
    "cap",
    "cp",
    "postleitzahl",
    "postalcode",
    "pincode",
    "pin",
)
_HINT_PHRASES = ("zipcode", "postcode", "postalcode", "codepostal", "codigopostal")


def detect_postal_code(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "integer"):
        return []
    hinted = has_hint(column, _HINT_TOKENS, _HINT_PHRASES)
    distinctive = numeric = checked = 0
    examples: list[str] = []
    for text in column.texts:
        if checked == 25 and distinctive + numeric == 0:
            break
        checked += 1
        upper = text.upper()
        if _DISTINCTIVE.fullmatch(upper):
            distinctive += 1
        elif hinted and _HINTED_SHAPE.fullmatch(text):
            numeric += 1
        else:
            continue
        if len(examples) < 3:
            examples.append(mask_generic(text))
    matched = distinctive + numeric
    return [
        Finding(
            tag="PII.PostalCode",
            detector="postal_shape",
            matched=matched,
            checked=checked,
            strength=MEDIUM if matched and distinctive / matched >= 0.5 else WEAK,
            examples=examples,
            name_hint=hinted,
            extra={"distinctive_shapes": distinctive},
        )
    ]
