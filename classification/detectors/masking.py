"""Masked examples for evidence: enough shape for a reviewer, never the raw value."""

from __future__ import annotations

import re

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_DIGIT = re.compile(r"\d")
MAX_EXAMPLE_CHARS = 40


def mask_generic(text: str) -> str:
    """Keep the first and last letter or digit and the punctuation; star everything else."""
    text = text[:MAX_EXAMPLE_CHARS]
    positions = [m.start() for m in _ALNUM.finditer(text)]
    if len(positions) <= 2:
        return _ALNUM.sub("*", text)
    keep = {positions[0], positions[-1]}
    return "".join(
        char if index in keep or not _ALNUM.match(char) else "*" for index, char in enumerate(text)
    )


def mask_words(text: str) -> str:
    """``John Smith`` -> ``J*** S****``: initials only, for names and places."""
    words = text[:MAX_EXAMPLE_CHARS].split()
    return " ".join(word[0] + "*" * (len(word) - 1) for word in words)


def mask_email(text: str) -> str:
    local, _, domain = text.strip().rpartition("@")
    return f"{local[:1]}***@{domain}" if local else mask_generic(text)


def mask_last_digits(text: str, keep: int = 4) -> str:
    """``4242 4242 4242 4242`` -> ``**** **** **** 4242`` (grouped in fours)."""
    digits = _DIGIT.findall(text)
    if len(digits) <= keep:
        return "*" * len(digits)
    hidden = "*" * (len(digits) - keep) + "".join(digits[-keep:])
    return " ".join(hidden[i : i + 4] for i in range(0, len(hidden), 4))


def mask_phone(country_code: int | None, text: str) -> str:
    """``+44 20 7946 0123`` -> ``+44 ****** 123``."""
    digits = "".join(_DIGIT.findall(text))
    prefix = f"+{country_code} " if country_code else ""
    return f"{prefix}{'*' * 6} {digits[-3:]}"


def mask_prefix(text: str, prefix_chars: int) -> str:
    """Show a non-secret type prefix (``AKIA``, ``$2b$``) and nothing else."""
    return text[:prefix_chars] + "*" * 8


def mask_keep_ends(text: str, head: int, tail: int) -> str:
    """``DE89370400440532013000`` -> ``DE** **** 3000`` style for account numbers."""
    compact = re.sub(r"\s", "", text)
    if len(compact) <= head + tail:
        return "*" * len(compact)
    return compact[:head] + "*" * (len(compact) - head - tail) + compact[-tail:]
