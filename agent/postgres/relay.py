"""One direction of a session after login (client → upstream or upstream → client), driven
by transport callbacks: splits the byte stream into messages and lets the session's handler
keep, replace or drop each one."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from agent.postgres import cancelled, codec
from agent.postgres.messages import COPY_DATA, DATA_ROW
from agent.postgres.state import SLOW, SessionState
from agent.relay_core import HIGH_WATER, RelayCore

_UNPACK_INT = struct.Struct("!i").unpack_from
__all__ = ["HIGH_WATER", "Relay"]

# A handler: (message type, the chunk, start of the message, its end) -> replacement bytes
# (b"" drops it), None (forward it as is), or SLOW (call the async handler instead).
Step = Callable[[int, bytes, int, int], Any]
SlowStep = Callable[[int, bytes, int, int], Awaitable[bytes | None]]


class Relay(RelayCore):
    """One direction of a session after login, driven by transport callbacks.

    ``data_received`` splits messages and runs ``step`` synchronously (no coroutine or
    future per read).  When ``step`` returns ``SLOW`` that message continues in a task that
    awaits ``slow``; bytes arriving meanwhile are buffered (reading is paused above
    ``HIGH_WATER``) and processed afterwards, so order is preserved.  Back-pressure and the
    session's end are the core's (``agent.relay_core``).
    """

    def __init__(
        self,
        step: Step,
        slow: SlowStep,
        source: asyncio.Transport,
        sink: asyncio.Transport,
        stop_kind: int,
        session: SessionState,
        reader: asyncio.StreamReader,
        done: asyncio.Future[BaseException | None],
    ) -> None:
        super().__init__(source, sink, reader, done)
        self.step = step
        self.slow = slow
        self.stop_kind = stop_kind
        self.session = session
        # The native data path for this direction (FastPath.client or .backend), if any.
        self.fast: Any = None
        # Upstream → client: a run of DataRows (or CopyData) from a position, in one call
        # (session.masked_run: the rows masked, or None to pass them as they are, and where
        # the run ends), so a large result costs no Python work per row.
        self.rows: Callable[[bytes, int], tuple[bytes | None, int]] | None = None
        # Upstream → client after a cancel was forwarded (agent.postgres.cancelled): bytes
        # read on and held until the statement's end says whether its rows still go out.
        self.held: bytearray | None = None
        self.held_scanned = 0
        self.hold_timer: asyncio.TimerHandle | None = None

    def wants_data(self) -> bool:
        if self.held is not None:  # a cancelled statement: read on whatever the client's pace
            return not self.done.done()
        return super().wants_data()

    def eof_received(self) -> bool:
        self._release_held(False)
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release_held(False)
        super().connection_lost(exc)

    def hold_for_cancel(self) -> None:
        """A cancel for this session goes upstream: read on and hold what comes until the
        statement's end shows whether the cancel took (``agent.postgres.cancelled``).  Not
        while a slow handler runs (then no rows are flowing: they wait for it)."""
        if self.busy or self.held is not None or self.done.done():
            return
        self.held = bytearray(self.buffer)  # a message start: the rest went out already
        self.buffer = b""
        self.held_scanned = 0
        self.busy = True  # the native path hands every chunk to data_received below
        loop = asyncio.get_running_loop()
        self.hold_timer = loop.call_later(cancelled.HOLD_SECONDS, self._release_held, False)
        self._hold(b"")
        self._update_reading()

    def _hold(self, data: bytes) -> None:
        held = self.held
        assert held is not None
        held += data
        outcome, self.held_scanned = cancelled.scan(held, self.held_scanned)
        if outcome != cancelled.UNDECIDED:
            self._release_held(outcome == cancelled.FAILED)
        elif len(held) > cancelled.HOLD_LIMIT:
            self._release_held(False)

    def _release_held(self, drop_rows: bool) -> None:
        """Stop holding: what was held goes on (without its rows when the statement
        failed), through the data path in use, and back-pressure applies again."""
        held, self.held = self.held, None
        if held is None:
            return
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        self.busy = False
        data = cancelled.without_rows(held, self.held_scanned) if drop_rows else bytes(held)
        self._update_reading()
        if data and not self.done.done():
            self.data_received(data)  # the native path's when it is attached

    def data_received(self, data: bytes) -> None:
        if self.held is not None:
            self._hold(data)
            return
        if self.buffer:
            data = self.buffer + data
        if self.busy:
            self.buffer = data
            if len(data) > HIGH_WATER:
                self._update_reading()
            return
        self.buffer = b""
        try:
            fast = self.fast
            if fast is not None:
                consumed = fast(data)
                if consumed:
                    if consumed == len(data):
                        return
                    data = data[consumed:]
            self._process(data)
        except BaseException as exc:
            self.finish(exc)

    def process_safely(self, data: bytes) -> None:
        """``_process`` for the native path's leftovers; an error ends the session."""
        try:
            self._process(data)
        except BaseException as exc:
            self.finish(exc)

    def _process(self, data: bytes) -> None:
        """Split ``data`` into messages and run ``step`` on each; the one place messages are
        framed after login.  A trailing partial message waits in ``buffer``."""
        step = self.step
        stop_kind = self.stop_kind
        rows = self.rows
        size = len(data)
        pos = 0
        span = 0
        out: list[bytes] = []
        while size - pos >= 5:
            if rows is not None and (data[pos] == DATA_ROW or data[pos] == COPY_DATA):
                masked, run_end = rows(data, pos)
                if run_end > pos:
                    if masked is not None:
                        out.append(data[span:pos])
                        out.append(masked)
                        span = run_end
                    pos = run_end
                    continue
            length = _UNPACK_INT(data, pos + 1)[0]
            if length < 4:
                raise codec.ProtocolError(f"invalid message length {length}")
            end = pos + 1 + length
            if end > size:
                break
            kind = data[pos]
            stop = kind == stop_kind and not self.session.discarding
            replacement = step(kind, data, pos, end)
            if replacement is not None:
                if replacement is SLOW:
                    out.append(data[span:pos])
                    self.sink.write(b"".join(out))
                    self.busy = True
                    self.task = asyncio.ensure_future(self._continue(data, pos, end, stop))
                    return
                out.append(data[span:pos])
                out.append(replacement)
                span = end
            if stop:
                out.append(data[span:end])
                self.sink.write(b"".join(out))
                self.finish()
                return
            pos = end
        if out:
            out.append(data[span:pos])
            self.sink.write(b"".join(out))
        elif pos:
            self.sink.write(data[:pos] if pos < size else data)
        if pos < size:
            self.buffer = data[pos:]

    async def _continue(self, data: bytes, pos: int, end: int, stop: bool) -> None:
        """The message at ``pos`` went slow: await its handler, then go on with the rest of
        the chunk and what arrived meanwhile."""
        try:
            replacement = await self.slow(data[pos], data, pos, end)
            self.sink.write(data[pos:end] if replacement is None else replacement)
            if stop:
                self.finish()
                return
            rest = data[end:] + self.buffer
            self.buffer = b""
            self.busy = False
            if rest:
                self._process(rest)  # may go slow again
            if not self.busy and self.eof:
                self.finish()
            self._update_reading()
        except BaseException as exc:
            self.busy = False
            self.finish(exc)
