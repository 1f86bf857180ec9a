"""PII.PostalCode: distinctive shapes (UK, NL, CA) count alone; digit runs need a name.

Without a name, digit runs become postal codes only through table context (``context``).
"""

from __future__ import annotations

import functools
import re

from postal_codes_tools.formats_constants import POSTAL_CODES_REGEX

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


# --- postal formats per country -----------------------------------------------------

_CODE_LABEL = re.compile(r"[^\W\d_]{1,3}\.? ")


def without_code_label(code: str) -> str:
    """ "ΤΚ 686 47" -> "686 47": a postal code's abbreviated label, when it has one."""
    label = _CODE_LABEL.match(code)
    return code[label.end() :] if label else code


_DIGIT_RANGE = re.compile(r"\[(?:\d-\d)+\]")
# Where the resource says nothing or is out of date: Ireland's Eircodes (a routing key, a
# letter and two digits or D6W, then four characters of a restricted set; the resource
# gives any text) and Viet Nam's five-digit codes of 2018 (it keeps the old six digits).
_CORRECTED_FORMATS = {
    "IE": r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W) ?[0-9AC-FHKNPRTV-Y]{4}",
    "VN": r"\d{5}|\d{6}",
}


@functools.cache
def postal_format(country: str, *, relaxed: bool = False) -> re.Pattern[str] | None:
    """``country``'s postal-code format as a pattern for whole values, or None.

    The resource writes its patterns for ``re.match`` and leaves some alternatives open at
    one end: "^(\\d{3} \\d{2})|\\d{5}$" (Slovakia) took any value that starts with three
    digits, a space and two more, and Armenia's "^(\\d{4})|(\\d{6})$" any value that starts
    with four digits. Matched whole, each alternative must fit alone. A pattern that
    accepts any text (Ireland's ".{1,255}") says nothing, so it gives None. ``relaxed``
    reads digit ranges as any digit ("[1-5]\\d{4}" -> five digits): the layout of the
    country's codes without the ranges it gives out, which generators and old codes miss."""
    pattern = _CORRECTED_FORMATS.get(country) or POSTAL_CODES_REGEX.get(country)
    if pattern is None:
        return None
    if relaxed:
        pattern = _DIGIT_RANGE.sub(r"\\d", pattern)
    compiled = re.compile(f"(?:{pattern})")
    if compiled.fullmatch("x") or compiled.fullmatch("Postcode"):
        return None
    return compiled


def postal_fits(
    code: str, country: str, *, relaxed: bool = False, stored_bare: bool = True
) -> bool:
    """The code fits ``country``'s format, also written with its prefix ("H-1021", "D-10115",
    "LV1010") or, unless ``stored_bare`` is False, stored without its separator ("11455"
    for "114 55", "13570747" for "13570-747")."""
    pattern = postal_format(country, relaxed=relaxed)
    if pattern is None:
        return False
    if pattern.fullmatch(code):
        return True
    prefix, _, rest = code.partition("-")
    if prefix in (country, country[0]) and pattern.fullmatch(rest):
        return True
    # "LV1010", "SE 123 45": the country's code written before the code without a dash
    if code[:2] == country and pattern.fullmatch(code[2:].lstrip(" ")):
        return True
    # "ΤΚ 686 47", "CP 1000", "PLZ 8001": a postal code's abbreviated label before it
    bare = without_code_label(code)
    if bare != code and pattern.fullmatch(bare):
        return True
    return (
        stored_bare
        and code.isdigit()
        and any(
            pattern.fullmatch(f"{code[:cut]}{separator}{code[cut:]}")
            for cut in range(2, len(code) - 1)
            for separator in " -"
        )
    )
