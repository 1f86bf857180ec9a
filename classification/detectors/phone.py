"""PII.Phone: libphonenumber over international format and a set of default regions."""

from __future__ import annotations

import re

import phonenumbers

from .base import MEDIUM, STRONG, Finding, PreparedColumn, has_hint
from .masking import mask_phone

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "CA", "AU", "BE", "CH", "AT")
_CANDIDATE = re.compile(r"\+?[\d\s().\-/]{6,24}")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension|#)\s*\d{1,6}$", re.IGNORECASE)
_NOT_PHONE = re.compile(
    r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{1,3}(?:\.\d{1,3}){3}|\d{3}-\d{2}-\d{4}"
    r"|-?\d+\.\d+"
    # ZIP+4 ("27513-1409"): a trunk prefix 0 starts the area codes written this way (03581-1234)
    r"|[1-9]\d{4}-\d{4}"
)
_HINT_TOKENS = ("phone", "tel", "telephone", "mobile", "cell", "fax", "msisdn", "contact")
_HINT_PHRASES = ("phone", "mobile", "telefon", "telefono", "telephone")


def _parse(text: str) -> tuple[int, int | None]:
    """(2 valid | 1 possible | 0 no, country code) for one candidate string."""
    regions: tuple[str | None, ...] = (None,) if text.startswith(("+", "00")) else DEFAULT_REGIONS
    if text.startswith("00"):
        text = "+" + text[2:]
    best, code = 0, None
    for region in regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return 2, number.country_code
        if best == 0 and phonenumbers.is_possible_number(number):
            best, code = 1, number.country_code
    if best == 0 and regions == (None,) and _E164.fullmatch(text):
        # "+351 29 3957 6462": a country's calling code, then digit groups up to E.164's 15
        # digits, is a number written the international way even where its national plan
        # says the length is wrong (generators and old data both do this)
        code = _calling_code(text)
        best = 1 if code else 0
    return best, code


_E164 = re.compile(r"\+\d{1,3}(?:[ .-]\d{1,5}){2,5}")


def _calling_code(text: str) -> int | None:
    """The country calling code of an international number of 7-13 national digits."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    code = number.country_code
    if code is None or phonenumbers.region_code_for_country_code(code) == "ZZ":
        return None
    return code if 7 <= len(str(number.national_number)) <= 13 else None


# "(+57)3249198307", "(+44) 20 7946 0958": the country prefix in brackets
_BRACKETED_PREFIX = re.compile(r"\(\+(\d{1,3})\) ?")


def _candidate(text: str) -> str:
    """The number without its extension, its bracketed country prefix written plainly."""
    return _BRACKETED_PREFIX.sub(r"+\1 ", _EXTENSION.sub("", text), count=1)


def national_phone_valid(text: str, region: str) -> bool:
    """A number written the way ``region`` writes its numbers, without a country prefix."""
    candidate = _candidate(text)
    if not _CANDIDATE.fullmatch(candidate) or _NOT_PHONE.fullmatch(candidate):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(candidate, region))
    except phonenumbers.NumberParseException:
        return False


def _phone_grade(text: str, hinted: bool) -> tuple[int, int | None]:
    candidate = _candidate(text)
    if not _CANDIDATE.fullmatch(candidate) or _NOT_PHONE.fullmatch(candidate):
        return 0, None
    digits = sum(char.isdigit() for char in candidate)
    if not 7 <= digits <= 15:
        return 0, None
    formatted = any(char in candidate for char in "+ ()-./") or (
        candidate.startswith("0") and 10 <= digits <= 11
    )
    if not formatted and not hinted:
        return 0, None  # a bare run of digits is an id until the column name says otherwise
    return _parse(candidate)


# ZIP+4 and other postal codes parse as phone numbers of some region: a postal name wins.
_NEGATIVE_TOKENS = ("zip", "zipcode", "postcode", "postal", "postalcode", "plz", "cep", "pincode")


def detect_phone(column: PreparedColumn) -> list[Finding]:
    hinted = has_hint(column, _HINT_TOKENS, _HINT_PHRASES)
    negative = not hinted and has_hint(column, _NEGATIVE_TOKENS, ("zipcode", "postcode"))
    if column.type_family not in ("text", "json") and not (
        hinted and column.type_family in ("integer", "numeric")
    ):
        return []
    valid = possible = 0
    examples: list[str] = []
    checked = 0
    for text in column.texts:
        if checked == 25 and valid + possible == 0:
            break
        checked += 1
        grade, code = _phone_grade(text, hinted)
        valid += grade == 2
        possible += grade == 1
        if grade and len(examples) < 3:
            examples.append(mask_phone(code, text))
    matched = valid + possible
    return [
        Finding(
            tag="PII.Phone",
            detector="phonenumbers",
            matched=matched,
            checked=checked,
            strength=STRONG if matched and valid / matched >= 0.5 else MEDIUM,
            examples=examples,
            name_hint=hinted,
            negative_hint=negative,
            extra={"valid_numbers": valid, "possible_numbers": possible},
        )
    ]
