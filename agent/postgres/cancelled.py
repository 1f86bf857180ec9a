"""What a cancelled statement's stream looks like on its way back: the agent reads on after
forwarding a CancelRequest and holds what comes until the statement's end says how it ended.

PostgreSQL acts on a cancel only between rows it can write: a backend blocked on a full
socket (its client, here the agent, reads slowly) never sees it.  So after a cancel the
relay keeps reading whatever the client's pace and holds the bytes; the first message that
is not a row (or a notice, a setting, a notification riding along) decides:

* an ErrorResponse: the statement failed (the cancel took), and the rows held before it
  are dropped, as if the server had stopped sooner, which it might have; the client gets
  the error as soon as it has read what was already on its way to it;
* anything else (CommandComplete, ReadyForQuery, a new RowDescription): the cancel came
  too late or hit nothing, and everything held goes on unchanged.

Holding is bounded (``HOLD_LIMIT`` bytes, ``HOLD_SECONDS``): past either, what is held goes
on as it would have and back-pressure applies again.
"""

from __future__ import annotations

import struct

from agent.postgres.messages import (
    COPY_DATA,
    DATA_ROW,
    ERROR_RESPONSE,
    NOTICE_RESPONSE,
    NOTIFICATION_RESPONSE,
    PARAMETER_STATUS,
)

HOLD_LIMIT = 32 << 20
HOLD_SECONDS = 3.0
_UNPACK_INT = struct.Struct("!i").unpack_from
_ROWS = frozenset({DATA_ROW, COPY_DATA})
_RIDING_ALONG = _ROWS | {NOTICE_RESPONSE, PARAMETER_STATUS, NOTIFICATION_RESPONSE}
UNDECIDED, FAILED, WENT_ON = 0, 1, 2


def scan(held: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(outcome, position): from ``pos`` (a message start) over the rows and riders held;
    ``FAILED`` when an ErrorResponse follows them, ``WENT_ON`` when another message does
    (or the bytes are not messages: the relay reports that), else ``UNDECIDED`` and where
    to go on scanning when more bytes come."""
    size = len(held)
    while size - pos >= 5:
        kind = held[pos]
        length = _UNPACK_INT(held, pos + 1)[0]
        if kind not in _RIDING_ALONG or length < 4:
            return (FAILED if kind == ERROR_RESPONSE and length >= 4 else WENT_ON), pos
        pos += 1 + length
    return UNDECIDED, pos


def without_rows(held: bytes | bytearray, end: int) -> bytes:
    """``held`` with the DataRow and CopyData messages before ``end`` (a message start,
    everything before it scanned) left out."""
    kept: list[memoryview] = []
    pos = span = 0
    view = memoryview(held)
    while pos < end:
        next_pos = pos + 1 + _UNPACK_INT(held, pos + 1)[0]
        if held[pos] in _ROWS:
            if span < pos:
                kept.append(view[span:pos])
            span = next_pos
        pos = next_pos
    kept.append(view[span:])
    return b"".join(kept)
