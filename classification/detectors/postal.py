"""PII.PostalCode: distinctive shapes (UK, NL, CA) count alone; digit runs need a name."""

from __future__ import annotations

import re

from .base import MEDIUM, WEAK, Finding, PreparedColumn, has_hint
from .masking import mask_generic

_DISTINCTIVE = re.compile(
    r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"  # UK
    r"|[1-9]\d{3} ?[A-Z]{2}"  # NL
    r"|[A-Z]\d[A-Z] ?\d[A-Z]\d"  # CA
)
_NUMERIC = re.compile(r"\d{5}(?:-\d{4})?|\d{4}|\d{6}|\d{2}-\d{3}|\d{3} ?\d{2}")
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
        elif hinted and _NUMERIC.fullmatch(text):
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
