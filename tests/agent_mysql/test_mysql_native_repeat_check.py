"""The repeat check of a COM_QUERY in C (``mysql_repeat``, agent/fastpath/mysql_session.c,
which the native round trip runs) against the Python one (commands.py ``_repeat_now`` on
the pure-Python path): the same decision, or none, for every payload, over the template
key, fixed pieces, generation, database and expiry of the remembered repeats."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

from agent.mysql.commands import Commands
from agent.mysql.rows import native_whole_result
from agent.normalize import template_key
from agent.verdicts import ALLOW, Decision


class _Session(Commands):
    """Just what ``_repeat_now`` reads, and the query it would run."""

    def __init__(self, native: bool, repeats: dict[bytes, Any], generation: int, database: Any):
        self.native_results = native
        self._repeats = repeats
        self.agent = SimpleNamespace(generation=generation)
        self.database = database
        self.ran: list[Decision] = []

    def _run_query(self, payload: bytes, decision: Decision, after: Any = None) -> None:
        self.ran.append(decision)


def _payload(rng: random.Random) -> bytes:
    table = rng.choice(["t1", "t2", "t12"])
    value = rng.choice(["1", "7", "42", "'x'", "100"])
    return b"\x03" + f"SELECT a FROM {table} WHERE id = {value}".encode()


def _repeat(rng: random.Random, payload: bytes) -> Any:
    """A remembered repeat for ``payload``'s key: its whole text, or the digits left free."""
    now = time.time()
    decision = Decision(ALLOW, valid_until=rng.choice([now + 60, now - 1]))
    if rng.random() < 0.5:
        fixed: tuple[Any, ...] = ((0, len(payload), payload),)
    else:  # the template's fixed bytes: all up to the last space
        cut = payload.rindex(b" ") + 1
        fixed = ((0, cut, payload[:cut]),)
    if rng.random() < 0.1:  # a piece past the payload's end never matches
        fixed = (*fixed, (len(payload), len(payload) + 2, b"zz"))
    return (fixed, decision, rng.choice([1, 2]), rng.choice(["db", "other", None]))


def test_the_c_repeat_check_decides_as_the_python_one() -> None:
    assert native_whole_result is not None, "build the extension: setup.py build_ext --inplace"
    rng = random.Random(7)
    outcomes = set()
    for _ in range(3000):
        repeats = {}
        for _ in range(rng.randint(0, 4)):
            payload = _payload(rng)
            repeats[template_key(payload)] = _repeat(rng, payload)
        payload = _payload(rng)
        generation, database = rng.choice([1, 2]), rng.choice(["db", "other", None])
        python = _Session(False, repeats, generation, database)
        native = _Session(True, repeats, generation, database)
        assert python._repeat_now(payload) == native._repeat_now(payload)
        assert [id(d) for d in python.ran] == [id(d) for d in native.ran]
        outcomes.add(bool(python.ran))
    assert outcomes == {True, False}  # both outcomes were compared
