"""The agent's remembered normalize must give exactly pglast's answer for every text."""

from __future__ import annotations

import random

import pglast
import pytest

from agent.normalize import template
from agent.postgres.normalize import postgres_normalizer

FIRST_TEXTS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
    "select a from t1 where b = 5 and c in (1, 22, 333)",
    "select a from t1 where b = -1",
    "UPDATE pgbench_accounts SET abalance = abalance + -4699 WHERE aid = 302;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (2, 1, 3, -47, now());",
    "select a - -5, b-3, c+-7, -8::int from t where d = - 9 and e = -(10)",
    "select x--5\n",
    "select a, 'x' from t where b = 1.5",
    "select 123456789 from t",
    "select 1234567890 from t",
    "update t2 set a = 4 where id = 9",
    "select * from t where name = 'O''Brien' and id = 3",
    "select * from t where id = $1 and v = 3",
    "select col2 from tab3 where x = 7 limit 10 offset 20",
    "SELECT 1",
    "select now()",
    "select cast(x as varchar(10)) from t where y = 4",
]


def variants(text: str, rng: random.Random) -> list[str]:
    """Texts that differ from ``text`` in random digits, anywhere (identifiers too)."""
    found = []
    for _ in range(40):
        chars = list(text)
        for index, char in enumerate(chars):
            if char.isdigit() and rng.random() < 0.5:
                chars[index] = rng.choice("0123456789")
        found.append("".join(chars))
    return found


@pytest.mark.parametrize("first", FIRST_TEXTS)
def test_every_digit_variant_normalizes_exactly_as_pglast(first: str) -> None:
    normalizer = postgres_normalizer()
    assert normalizer.normalize(first) == pglast.parser.normalize(first)
    for text in variants(first, random.Random(first)):
        assert normalizer.normalize(text) == pglast.parser.normalize(text), text


def test_a_different_identifier_is_not_taken_for_a_constant() -> None:
    normalizer = postgres_normalizer()
    normalizer.normalize("select a from t1 where b = 8")
    assert normalizer.normalize("select a from t2 where b = 9") == ("select a from t2 where b = $1")


def test_only_short_unsigned_integers_make_a_template() -> None:
    def made(text: str) -> bool:
        raw = text.encode()
        return template(raw, pglast.parser.normalize(text).encode()) is not None

    assert made("select a from t where b = 123456789")
    assert made("select a from t where b in (1, 2) limit 3")
    assert not made("select a from t where b = 1234567890")  # may lex as numeric
    # pglast folds the minus into the constant; it is a fixed byte of every matching text
    assert made("select a from t where b = -1")
    assert made("update t set a = a + -4699 where id = 302")
    assert not made("select a from t where b = - 1")  # the constant spans a blank
    assert not made("select a from t where b = -(1)")
    assert not made("select a from t where b = 1.5")
    assert not made("select a from t where b = 'x'")
    # pglast keeps a type modifier, so its digits are bytes the template fixes.
    kept = "select cast(x as varchar(10)) from t"
    assert template(kept.encode(), pglast.parser.normalize(kept).encode()) == (
        (0, len(kept), kept.encode()),
    )


def test_unparseable_text_still_raises_after_a_template_exists() -> None:
    normalizer = postgres_normalizer()
    normalizer.normalize("select a from t where b = 1")
    with pytest.raises(pglast.parser.ParseError):
        normalizer.normalize("select a from t where b = 1 and")


def test_the_template_table_is_bounded() -> None:
    normalizer = postgres_normalizer(max_entries=10)
    for width in range(1, 30):
        normalizer.normalize("select a from t where b = " + "1" * min(width, 9) + " " * width)
    assert 0 < len(normalizer) <= 10


def test_a_negative_constant_matches_only_texts_with_the_minus_in_the_same_place() -> None:
    normalizer = postgres_normalizer()
    first = "update t set a = a + -4699 where id = 302"
    assert normalizer.normalize(first) == "update t set a = a + $1 where id = $2"
    key = first.encode().translate(bytes.maketrans(b"123456789", b"000000000"))
    assert normalizer.fixed_pieces(b"update t set a = a + -1234 where id = 999", key)
    assert normalizer.fixed_pieces(b"update t set a = a + 12345 where id = 999", key) is None
    texts = ("update t set a = a + 1234 where id = 302", "update t set a = a - 4699 where id = 1")
    for text in texts:
        assert normalizer.normalize(text) == pglast.parser.normalize(text)
