"""How the MySQL agent reads statement text as the server does: sqlglot's MySQL tokenizer,
the normalized text (literals replaced by ``$n``, the decision-cache key), and the
spellings the server reads differently (a number glued to a name)."""

from __future__ import annotations

import itertools

from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from agent.analysis import SqlError

_DIALECT = MySQL()
_LITERALS = frozenset(
    {
        TokenType.NUMBER,
        TokenType.STRING,
        TokenType.HEX_STRING,
        TokenType.BIT_STRING,
        TokenType.NATIONAL_STRING,
        TokenType.BYTE_STRING,
    }
)
_NAMES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})


def tokenize(sql: str) -> list[Token]:
    try:
        return list(_DIALECT.tokenize(sql))
    except TokenError as exc:
        raise SqlError(str(exc)) from exc


def normalize(sql: str) -> str:
    """The text with every literal replaced by ``$n`` (the decision-cache key).  Everything
    but literals stays byte for byte, so equal normalized texts have equal token streams."""
    tokens = tokenize(sql)
    pieces: list[str] = []
    position = 0
    number = 0
    for token in tokens:
        if token.token_type in _LITERALS:
            number += 1
            start = token.start
            # The tokenizer's span of a quoted literal excludes an introducer, includes quotes.
            pieces.append(sql[position:start])
            pieces.append(f"${number}")
            position = token.end + 1
    pieces.append(sql[position:])
    return "".join(pieces)


def check_glued_numbers(tokens: list[Token]) -> None:
    for before, after in itertools.pairwise(tokens):
        if (
            before.token_type == TokenType.NUMBER
            and after.token_type in _NAMES
            and after.start == before.end + 1
        ):
            raise SqlError(
                f"{before.text}{after.text} is read differently by the server and by Warden; "
                "quote the name with backticks"
            )
