"""Normalized statement text, without parsing every variant of a statement's numbers.

Decisions are cached by normalized text (constants replaced by ``$n``; the dialect's parser
is injected: pglast for PostgreSQL, ``agent.mysql.analysis.normalize`` for MySQL).  Clients
that send numbers inline (simple protocol: ``... WHERE aid = 4711``) produce a new text
per statement, and parsing each one cost a tenth of the agent's CPU.  ``Normalizer``
recognizes such a variant of a text it has already parsed, with byte operations only:

* The first text is parsed.  Where the parser replaced only integer constants of at most 9
  digits, unsigned or with the minus sign it folds into the constant (``x + -42``: pgbench's
  TPC-B-like script sends such deltas), the text becomes a template: the bytes around
  those constants.  A minus sign is not a digit, so it stands at the same place in every
  text matching the template; it is one of the template's fixed bytes.
* A later text matches the template when its bytes, with every digit read as ``0``, are
  the same as the first text's (same length, digits in the same places) and the bytes
  around the constants are identical.  Such a text differs from the first one only in
  the digits of those constants, so the server's lexer yields the same tokens (9 digits
  always lex as one integer constant, in PostgreSQL an int4) and its grammar the same tree
  with other values; its normalized text is the first one's.
* Anything else (string literals, ``- 1``, ``-(1)``, ``1.5``, identifiers like ``t1`` that differ, a
  ``$`` in the text) is parsed, exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.analysis import SqlError

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_PARAMETER = re.compile(rb"\$[0-9]+")
_MAX_CONSTANT_DIGITS = 9  # below 2**31: always lexed as an int4 constant

# The bytes that must be identical around the constants, as (start, end, bytes).
Template = tuple[tuple[int, int, bytes], ...]


def template(raw: bytes, normalized: bytes) -> Template | None:
    """The bytes of ``raw`` around its constants when the parser replaced only short integers
    (``normalized`` is ``raw`` normalized), else None."""
    pieces = _PARAMETER.split(normalized)
    fixed: list[tuple[int, int, bytes]] = []
    position = 0
    for index, piece in enumerate(pieces):
        if not raw.startswith(piece, position):
            return None
        fixed.append((position, position + len(piece), piece))
        position += len(piece)
        if index == len(pieces) - 1:
            break
        digits = position
        if raw[position : position + 1] == b"-":  # fixed too, not only through the key
            fixed.append((position, position + 1, b"-"))
            digits += 1
        end = digits
        while end < len(raw) and 48 <= raw[end] <= 57:
            end += 1
        if not 0 < end - digits <= _MAX_CONSTANT_DIGITS:
            return None
        position = end
    if position != len(raw):
        return None
    return tuple(piece for piece in fixed if piece[2])


def template_key(raw: bytes) -> bytes:
    """``raw`` with every digit read as 0: texts sharing a template share this key."""
    return raw.translate(_DIGITS_AS_ZERO)


def _fits(raw: bytes, fixed: Template) -> bool:
    return all(raw[start:end] == piece for start, end, piece in fixed)


class Normalizer:
    """A dialect's normalize, remembered per template (see the module docstring)."""

    def __init__(self, parse: Callable[[str], str], *, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        # The dialect's normalizer (literals -> $n): pglast's, or agent.mysql.analysis's.
        self._parse = parse
        self._templates: dict[bytes, tuple[Template, str]] = {}

    def __len__(self) -> int:
        return len(self._templates)

    def fixed_pieces(self, raw: bytes, key: bytes) -> Template | None:
        """The template ``raw`` matches (``key`` is ``raw`` with digits read as 0), or None:
        every text matching it normalizes as ``raw`` does."""
        known = self._templates.get(key)
        return known[0] if known is not None and _fits(raw, known[0]) else None

    def normalize(self, text: str) -> str:
        """Normalized text; raises what the dialect's parser raises when unparseable, and
        SqlError for text that is not UTF-8 (bytes a client sent, kept as surrogates)."""
        try:
            raw = text.encode()
        except UnicodeEncodeError as exc:
            raise SqlError(f"the statement is not valid UTF-8 (at character {exc.start})") from exc
        key = template_key(raw)
        known = self._templates.get(key)
        if known is not None and _fits(raw, known[0]):
            return known[1]
        normalized = self._parse(text)
        # A string constant always fails the template (only integers may be replaced), so
        # texts with a quote skip building one; so do texts with $n parameters.
        if known is None and b"$" not in raw and b"'" not in raw:
            found = template(raw, normalized.encode())
            if found is not None:
                if len(self._templates) >= self.max_entries:
                    self._templates.clear()
                self._templates[key] = (found, normalized)
        return normalized
