"""Statement and portal names, and how to undo them.

A Parse or Bind maps its name when the agent forwards it (later messages refer to it), but
the server may refuse it, or skip it after an earlier error in the same round trip: then
the old mapping comes back.  A name bound again (the server refuses that with 42P05/42P03
unless the older one is gone) is unknown past its Sync until the server answers.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from agent.postgres.state import ABSENT, Pending


def bind_name(names: dict[str, Any], name: str, value: Any) -> tuple[dict[str, Any], str, Any]:
    """Map a statement or portal name now and return how to undo that if the server does
    not accept the message."""
    previous = names.get(name, ABSENT)
    names[name] = value
    return (names, name, previous)


def unsettle_rebinds(expect: deque[Pending]) -> None:
    """At Sync: names bound again in this segment are unknown until the server answers
    (inside the segment a refusal skips everything after it, past it nothing does)."""
    for entry in reversed(expect):
        if entry.kind == "S":
            return
        undo = entry.undo
        if undo is None or undo[2] is ABSENT or undo[1] == "":
            continue
        names, name, _previous = undo
        if name in names:
            entry.confirm = names.pop(name)


def settle_accepted(entry: Pending) -> None:
    """The server took a message whose name was unknown since Sync: it holds the new one."""
    if entry.confirm is not None and entry.undo is not None:
        names, name, _previous = entry.undo
        names.setdefault(name, entry.confirm)


def undo_refused(refused: list[Pending]) -> None:
    """The failed message and the ones the server skipped after it changed nothing there."""
    for entry in reversed(refused):
        if entry.undo is not None:
            names, name, previous = entry.undo
            if previous is ABSENT or name == "":  # the server dropped its unnamed one
                names.pop(name, None)
            elif entry.confirm is not None:  # unknown since Sync: the older one stayed
                names.setdefault(name, previous)
            else:
                names[name] = previous
