"""PII.NationalID: structure and checksum rules per scheme, mostly from python-stdnum.

Schemes: US SSN, UK NINO (structure rules; stdnum has no validator), German Steuer-IdNr,
French NIR, Spanish DNI and NIE, Italian codice fiscale, Dutch BSN, Indian Aadhaar.
A bare 9-digit run passes the SSN rules far too often, so it only counts under an
``ssn``-like column name; dashed SSNs count on their own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

from .base import STRONG, Finding, PreparedColumn, has_hint, is_sequential
from .masking import mask_generic

_SSN_DASHED = re.compile(r"\d{3}-\d{2}-\d{4}")
_NINO = re.compile(
    r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
)
_DIGITS = re.compile(r"\d[\d .-]{7,20}")
_DNI = re.compile(r"\d{8}-?[A-Z]")
_NIE = re.compile(r"[XYZ]-?\d{7}-?[A-Z]")
_CF = re.compile(r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]")
_ID_TOKENS = (
    "ssn",
    "sin",
    "nin",
    "nino",
    "bsn",
    "nir",
    "dni",
    "nie",
    "aadhaar",
    "taxid",
    "idnr",
    "national",
    "insee",
    "cf",
    "fiscal",
    "codice",
    "tin",
    "nif",
    "steuerid",
)
_ID_PHRASES = (
    "socialsecurity",
    "nationalid",
    "nationalinsurance",
    "taxid",
    "steuerid",
    "codicefiscale",
    "fiscalcode",
    "burgerservice",
    "personalid",
    "identitynumber",
)


def _checks(hinted: bool) -> tuple[tuple[str, Callable[[str], bool]], ...]:
    return (
        ("us_ssn", lambda t: _SSN_DASHED.fullmatch(t) is not None and ssn.is_valid(t)),
        ("us_ssn", lambda t: hinted and len(t) == 9 and t.isdigit() and ssn.is_valid(t)),
        ("gb_nino", lambda t: _NINO.fullmatch(t.upper()) is not None),
        ("es_dni", lambda t: _DNI.fullmatch(t.upper()) is not None and dni.is_valid(t)),
        ("es_nie", lambda t: _NIE.fullmatch(t.upper()) is not None and nie.is_valid(t)),
        (
            "it_codice_fiscale",
            lambda t: _CF.fullmatch(t.upper()) is not None and codicefiscale.is_valid(t),
        ),
        ("nl_bsn", lambda t: _digit_count(t) == 9 and bsn.is_valid(t)),
        ("de_idnr", lambda t: _digit_count(t) == 11 and idnr.is_valid(t)),
        ("fr_nir", lambda t: _digit_count(t) in (13, 15) and nir.is_valid(t)),
        ("in_aadhaar", lambda t: _digit_count(t) == 12 and aadhaar.is_valid(t)),
    )


def _digit_count(text: str) -> int:
    return sum(char.isdigit() for char in text) if _DIGITS.fullmatch(text) else 0


def _scheme(text: str, checks: tuple[tuple[str, Callable[[str], bool]], ...]) -> str | None:
    if len(text) > 24 or not any(char.isdigit() for char in text):
        return None
    for name, check in checks:
        if check(text):
            return name
    return None


def detect_national_id(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "integer", "numeric", "json"):
        return []
    hinted = has_hint(column, _ID_TOKENS, _ID_PHRASES)
    checks = _checks(hinted)
    schemes: Counter[str] = Counter()
    examples: list[str] = []
    numbers: list[int] = []
    checked = 0
    for text in column.texts:
        if checked == 25 and not schemes:
            break
        checked += 1
        scheme = _scheme(text, checks)
        if scheme:
            schemes[scheme] += 1
            if text.isdigit():
                numbers.append(int(text))
            if len(examples) < 3:
                examples.append(mask_generic(text))
    sequential = is_sequential(numbers) if len(numbers) > 10 else False
    return [
        Finding(
            tag="PII.NationalID",
            detector="national_id_stdnum",
            matched=0 if sequential else sum(schemes.values()),
            checked=checked,
            strength=STRONG,
            examples=examples,
            name_hint=hinted,
            extra={"schemes": dict(schemes.most_common(3)), "sequential_ids": sequential},
        )
    ]
