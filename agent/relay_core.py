"""What every protocol's relay shares after login: one direction of a session driven by
transport callbacks (``asyncio.Protocol``), with back-pressure both ways and one end.

Why callbacks, not streams: a StreamReader costs a future and a coroutine chain per read;
``data_received`` runs the protocol's framing synchronously on each chunk the event loop
read.  The protocols frame and decide (``agent.postgres.relay``, ``agent.mysql.relay``);
this module only moves bytes, pauses and ends:

- reading from the source pauses while the sink's write buffer is above ``HIGH_WATER``
  (the sink transport's protocol is the peer relay: its ``pause_writing`` says so), or
  while the relay is ``busy`` (a slow handler runs) and more than ``HIGH_WATER`` waits;
- an end of input while busy waits for the handler; otherwise it ends the session
  (``done`` is resolved with the error, or None);
- a native path may read a plain socket itself (``read_itself``): the transport's reading
  stays paused and the pauses above add and remove the loop's reader instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from agent.extension import extension

HIGH_WATER = 1 << 20

# Each event loop's Readers (agent/fastpath/readers.c): the sockets native paths read
# themselves, in one epoll set that is one reader of the loop, so a wake-up that finds
# several sessions ready costs the loop one callback, not one per socket.
_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def loop_readers() -> Any:
    """Where the running loop's native readers are added and removed (``add_reader`` and
    ``remove_reader``, as the loop's own): its Readers, or the loop without the extension."""
    loop = asyncio.get_running_loop()
    if extension is None:
        return loop
    readers = _readers.get(loop)
    if readers is None:
        readers = _readers[loop] = extension.Readers()
        loop.add_reader(readers.fileno(), readers.ready)
    return readers


class EndOfInput(Protocol):
    """Told when the source ends (a StreamReader, or a protocol's own packet buffer)."""

    def feed_eof(self) -> None: ...


class RelayCore(asyncio.Protocol):
    """One direction of a session after login; subclasses implement ``data_received``."""

    # buffer and busy are read by the native data path every round trip: as slots it reads
    # them straight from the instance (fastpath field_get); other attributes as usual.
    __slots__ = ("__dict__", "__weakref__", "buffer", "busy")

    def __init__(
        self,
        source: asyncio.Transport,
        sink: asyncio.Transport,
        reader: EndOfInput,
        done: asyncio.Future[BaseException | None],
    ) -> None:
        self.source = source
        self.sink = sink
        self.reader = reader
        self.done = done
        self.peer: RelayCore | None = None
        self.buffer = b""
        self.busy = False
        self.sink_full = False
        self.reading = True
        self.eof = False
        self.task: asyncio.Task[None] | None = None
        # A dup of the source's socket the native path reads (read_itself), else -1.
        self.read_fd = -1
        self.readable: Callable[[], None] | None = None
        self.read_from: Callable[[int, Callable[[int], None] | None], None] | None = None

    def backlog(self) -> int:
        """Bytes read and not yet processed."""
        return len(self.buffer)

    def wants_data(self) -> bool:
        # While a slow handler runs, incoming bytes are only buffered: bound that buffer.
        backlog = self.busy and self.backlog() > HIGH_WATER
        return not (self.sink_full or self.done.done() or backlog)

    def _update_reading(self) -> None:
        want = self.wants_data()
        if want != self.reading:
            self.reading = want
            with contextlib.suppress(Exception):
                if self.read_fd >= 0:  # the native path reads the socket: its reader
                    readers = loop_readers()
                    if want:
                        assert self.readable is not None
                        readers.add_reader(self.read_fd, self.readable)
                    else:
                        readers.remove_reader(self.read_fd)
                elif want:
                    self.source.resume_reading()
                else:
                    self.source.pause_reading()

    def read_itself(
        self,
        readable: Callable[[], None],
        read_from: Callable[[int, Callable[[int], None] | None], None],
    ) -> None:
        """Let a native path read the source's socket (a plain transport's: ``socket_fd``)
        itself: ``read_from(fd, ended)`` tells it which, ``readable`` is the loop's reader
        and the transport's own reading stays paused until ``stop_reading_itself``.  The
        loop's reader is on a dup of the socket (uvloop refuses one on a transport's)."""
        fd = socket_fd(self.source)
        if fd < 0 or self.read_fd >= 0 or self.done.done() or self.source.is_closing():
            return
        self.source.pause_reading()
        self.read_fd = os.dup(fd)
        self.readable, self.read_from = readable, read_from
        read_from(self.read_fd, self.read_ended)
        if self.reading:
            loop_readers().add_reader(self.read_fd, readable)

    def read_ended(self, error: int) -> None:
        """The native path's recv() met the end of input (0) or an error: the transport
        reads again, and sees the end itself (an error is this relay's end first)."""
        if error:
            self.finish(OSError(error, os.strerror(error)))
        self.stop_reading_itself()

    def stop_reading_itself(self) -> None:
        """Reading goes back to the transport (idempotent; also at the session's end)."""
        fd, self.read_fd = self.read_fd, -1
        if fd < 0:
            return
        assert self.read_from is not None
        self.read_from(-1, None)
        with contextlib.suppress(Exception):
            loop_readers().remove_reader(fd)
        os.close(fd)
        if self.reading:
            with contextlib.suppress(Exception):
                self.source.resume_reading()

    def pause_writing(self) -> None:  # our source transport (the peer's sink) is full
        if self.peer is not None:
            self.peer.sink_full = True
            self.peer._update_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.sink_full = False
            self.peer._update_reading()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.done():
            self.done.set_result(error)

    def eof_received(self) -> bool:
        self.reader.feed_eof()  # seen by a handler waiting on this direction
        self.eof = True
        if not self.busy:
            self.finish()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_reading_itself()
        self.reader.feed_eof()
        self.eof = True
        if exc is not None or not self.busy:
            self.finish(exc)


def attach(relay: RelayCore, reader: asyncio.StreamReader) -> None:
    """Make ``relay`` the protocol of its source transport, which a StreamReader served
    until now: the bytes that reader already holds are processed first, in order."""
    relay.sink.set_write_buffer_limits(high=HIGH_WATER)
    held: bytearray = getattr(reader, "_buffer", bytearray())
    buffered = bytes(held)
    held.clear()
    at_eof = bool(getattr(reader, "_eof", False))
    relay.source.set_protocol(relay)
    with contextlib.suppress(Exception):
        relay.source.resume_reading()
    if buffered:
        relay.data_received(buffered)
    if at_eof:
        relay.eof_received()


async def stop(relays: Iterable[Any]) -> None:
    """Cancel the relays' slow handlers and wait until they have ended."""
    relays = list(relays)
    for relay in relays:
        relay.stop_reading_itself()
        if relay.task is not None:
            relay.task.cancel()
    for relay in relays:
        if relay.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay.task


def _plain_transports() -> tuple[type, ...]:
    """Transport classes that write a plain TCP socket, straight from write() when their
    buffer is empty: uvloop's and asyncio's selector transport (a private class, named here
    only to recognise it).  A TLS transport (asyncio's or uvloop's SSL protocol transport)
    is none of them."""
    plain: list[type] = []
    selector = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
    if isinstance(selector, type):
        plain.append(selector)
    try:
        from uvloop.loop import TCPTransport  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        plain.append(TCPTransport)
    return tuple(plain)


_PLAIN_TRANSPORTS = _plain_transports()


def socket_fd(transport: Any) -> int:
    """The socket a native path (PostgreSQL's or MySQL's Bridge ``*_fd``) may send on
    itself while the transport holds nothing: a plain TCP transport's, else -1 (TLS, or a
    transport not known to write its socket straight through)."""
    if type(transport) not in _PLAIN_TRANSPORTS:
        return -1
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())
