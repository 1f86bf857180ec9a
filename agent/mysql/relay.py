"""One direction of a MySQL session after login (client → agent, or upstream → agent),
driven by transport callbacks (``agent.relay_core``): the bytes read go into a
``PacketBuffer`` and the session's ``drive`` takes what it can from it at once, with no
coroutine or future per packet.

A direction is ``busy`` while its packets must wait: the client's while one command is in
flight (MySQL answers commands one at a time; the next waits for the whole answer), the
upstream's while a slow step (a catalog lookup for a result's masks) runs in a task.  A
slow handler that reads upstream packets itself awaits ``PacketBuffer.payload``, which the
feed wakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent.mysql.packets import PacketBuffer
from agent.relay_core import HIGH_WATER, RelayCore


class PacketRelay(RelayCore):
    def __init__(
        self,
        source: asyncio.Transport,
        sink: asyncio.Transport,
        packets: PacketBuffer,
        drive: Callable[[], None],
        done: asyncio.Future[BaseException | None],
        *,
        drive_when_empty: bool = True,
    ) -> None:
        super().__init__(source, sink, packets, done)
        self.packets = packets
        self.drive = drive
        # False: ``drive`` only takes packets (the client's commands), so ``resume`` skips
        # it when none is buffered.  The answers' drive may have a header to send.
        self.drive_when_empty = drive_when_empty

    def backlog(self) -> int:
        return self.packets.size()

    def data_received(self, data: bytes) -> None:
        self.packets.feed(data)
        if self.busy:
            if self.reading and self.packets.size() > HIGH_WATER:
                self._update_reading()
            return
        try:
            self.drive()
        except BaseException as exc:
            self.finish(exc)

    def run_slow(self, work: Awaitable[bool]) -> None:
        """Hold this direction's packets while ``work`` runs, then go on with them if it
        returns True (False: something else calls ``resume`` later)."""
        self.busy = True
        self.task = asyncio.ensure_future(self._slow(work))

    async def _slow(self, work: Awaitable[bool]) -> None:
        try:
            finished = await work
        except BaseException as exc:
            self.finish(exc)
            return
        if finished:
            self.resume()

    def resume(self) -> None:
        """Go on with the buffered packets (the wait of ``busy`` is over)."""
        self.busy = False
        if self.drive_when_empty or self.packets.size():
            try:
                self.drive()
            except BaseException as exc:
                self.finish(exc)
                return
        if not self.busy and self.eof:
            self.finish()
        if self.busy or not self.reading:  # else no longer busy cannot stop the reading
            self._update_reading()
