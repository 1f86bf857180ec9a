"""Masking methods: pure functions over PostgreSQL's text representation of a value.

The control plane imports this module to preview masks, so it must stay free of agent
state.  ``None`` as a result means SQL NULL.
"""

from __future__ import annotations

import hashlib
import hmac
import re

REDACTED = "****"
METHODS = ("redact", "last_n", "email", "hash", "null", "year", "partial")

# Type OIDs whose text form any method may replace with arbitrary text.
TEXT_TYPES = frozenset({25, 1043, 1042, 19, 705, 0})  # text, varchar, bpchar, name, unknown
DATE_TYPES = frozenset({1082, 1114, 1184})  # date, timestamp, timestamptz

_DATE_PREFIX = re.compile(r"^(\d{4,})-\d{2}-\d{2}")
_DIGIT = re.compile(r"\d")
_ALNUMERIC = re.compile(r"[^\W_]")


def redact(value: str) -> str:
    return REDACTED


def last_n(value: str, n: int = 4) -> str:
    n = max(int(n), 0)
    if len(value) <= n:
        return "*" * len(value)
    return "*" * (len(value) - n) + (value[-n:] if n else "")


def email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return REDACTED
    return "****@" + domain


def hash_token(value: str, key: bytes) -> str:
    """Deterministic keyed token: same input and key give the same token, joinable."""
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    return "h_" + digest[:24]


def year(value: str) -> str | None:
    """Truncate a date or timestamp to January 1st of its year."""
    match = _DATE_PREFIX.match(value)
    if match is None:
        return None
    truncated = match.group(1) + "-01-01"
    rest = value[match.end() :]
    if rest.startswith((" ", "T")):
        return truncated + " 00:00:00"
    return truncated


# ``_ALNUMERIC.sub("X", value)`` as one ``str.translate`` for ASCII text (a regex match per
# character made ``partial`` the costliest step of masking a row).
_ASCII_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ASCII_MASKED = {"X": dict.fromkeys(_ASCII_ALNUM, "X")}


def partial(value: str, keep: int = 4, mask_char: str = "X") -> str:
    """Format-preserving: keep separators and the last ``keep`` digits."""
    kept = [m.start() for m in _DIGIT.finditer(value)][-keep:] if keep > 0 else []
    table = _ASCII_MASKED.get(mask_char) if value.isascii() else None
    masked = value.translate(table) if table is not None else _ALNUMERIC.sub(mask_char, value)
    if not kept:
        return masked
    chars = list(masked)
    for index in kept:
        chars[index] = value[index]
    return "".join(chars)


def mask_text(method: str, value: str, param: int | None = None, key: bytes = b"") -> str | None:
    """Apply a named method to one text value.  Unknown methods redact (fail safe)."""
    if method == "null":
        return None
    if method == "last_n":
        return last_n(value, 4 if param is None else param)
    if method == "email":
        return email(value)
    if method == "hash":
        return hash_token(value, key)
    if method == "year":
        return year(value)
    if method == "partial":
        return partial(value, 4 if param is None else param)
    return redact(value)


def method_fits_type(method: str, type_oid: int) -> bool:
    """Whether the method's output is a valid value of the column's type."""
    if method == "null":
        return True
    if type_oid in TEXT_TYPES:
        return True
    return method == "year" and type_oid in DATE_TYPES


def mask_wire_value(
    method: str,
    raw: bytes,
    type_oid: int,
    param: int | None,
    key: bytes,
    binary: bool,
) -> bytes | None:
    """Mask one DataRow cell.  Binary cells and type mismatches become NULL."""
    if binary or not method_fits_type(method, type_oid):
        return None
    masked = mask_text(method, raw.decode(errors="replace"), param, key)
    return None if masked is None else masked.encode()
