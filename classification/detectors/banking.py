"""Financial.IBAN (mod-97 via stdnum) and Financial.BankAccount (name hint + digit shape)."""

from __future__ import annotations

import re

from stdnum import iban
from stdnum.us import rtn

from .base import (
    MEDIUM,
    STRONG,
    WEAK,
    Finding,
    PreparedColumn,
    count_matches,
    has_hint,
    is_sequential,
)
from .masking import mask_keep_ends

_IBAN_CANDIDATE = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_ACCOUNT = re.compile(r"[A-Z]{0,4}\d[\d -]{4,32}\d")
_IBAN_HINTS = ("iban",)
_ACCOUNT_TOKENS = ("account", "acct", "acc", "bban", "iban", "routing", "aba", "sortcode")
_ACCOUNT_PHRASES = (
    "accountnumber",
    "accountno",
    "bankaccount",
    "acctno",
    "kontonummer",
    "routingnumber",
    "sortcode",
    "bban",
)
_ACCOUNT_NEGATIVE = ("id", "uuid", "type", "status", "name", "manager", "owner", "email")


def _is_iban(text: str) -> bool:
    return _IBAN_CANDIDATE.fullmatch(text.upper()) is not None and iban.is_valid(text)


def detect_iban(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json"):
        return []
    matched, checked, examples = count_matches(
        column.texts, _is_iban, lambda t: mask_keep_ends(t, 2, 4)
    )
    return [
        Finding(
            tag="Financial.IBAN",
            detector="iban_mod97",
            matched=matched,
            checked=checked,
            strength=STRONG,
            examples=examples,
            name_hint=has_hint(column, _IBAN_HINTS, ("iban",)),
        )
    ]


def _is_account(text: str) -> bool:
    return _ACCOUNT.fullmatch(text) is not None and 6 <= sum(c.isdigit() for c in text) <= 30


def detect_bank_account(column: PreparedColumn) -> list[Finding]:
    """Account numbers have no shared checksum: only a bank-account column name counts."""
    hinted = has_hint(column, _ACCOUNT_TOKENS, _ACCOUNT_PHRASES)
    if not hinted or column.type_family not in ("text", "integer", "numeric"):
        return []
    if column.name_tokens & frozenset(_ACCOUNT_NEGATIVE) and "bank" not in column.name_tokens:
        return []
    matched, checked, examples = count_matches(
        column.texts, _is_account, lambda t: mask_keep_ends(t, 0, 4)
    )
    routing = sum(1 for t in column.texts if len(t) == 9 and t.isdigit() and rtn.is_valid(t))
    digits_only = [int(t) for t in column.texts if t.isdigit()]
    sequential = is_sequential(digits_only) if len(digits_only) > len(column.texts) // 2 else False
    return [
        Finding(
            tag="Financial.BankAccount",
            detector="bank_account_hint",
            matched=0 if sequential else matched,
            checked=checked,
            strength=MEDIUM if matched and routing / matched >= 0.8 else WEAK,
            examples=examples,
            name_hint=True,
            extra={"sequential_ids": sequential, "aba_routing_numbers": routing},
        )
    ]
