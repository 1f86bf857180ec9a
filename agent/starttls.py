"""Upgrading a client's stream to TLS (the server side of both protocols' STARTTLS)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


def buffered_bytes(reader: asyncio.StreamReader) -> bytes:
    """What ``reader`` holds that nobody read yet, taken out of it (StreamReader has no
    public way to take it without waiting)."""
    buffered: bytearray = getattr(reader, "_buffer")  # noqa: B009
    data = bytes(buffered)
    buffered.clear()
    return data


async def start_tls_keeping_early_bytes(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ssl_context: ssl.SSLContext,
    already_read: bytes = b"",
) -> None:
    """``writer.start_tls`` on the server side, for bytes the client sent after its request
    for TLS that the login's reader already holds: a MySQL client sends its TLS ClientHello
    right behind its SSLRequest (the protocol has no answer to wait for), and when both
    arrive in one read the hello sits in ``reader``'s buffer, where the TLS layer never
    looks: the handshake waited for it until its timeout.  Those bytes are handed to the TLS
    protocol ``start_tls`` puts on the transport, before it reads from the socket (as TLS
    bytes: anything else fails the handshake, it is never read as the plaintext stream).
    ``already_read``: the stream's bytes the caller took from ``reader`` before it knew they
    were TLS (the start of a PostgreSQL direct-TLS ClientHello), handed over first."""
    early = already_read + buffered_bytes(reader)
    upgrading = True
    if early:
        loop = asyncio.get_running_loop()
        transport, plain = writer.transport, writer.transport.get_protocol()

        def hand_over() -> None:
            if not upgrading or transport.is_closing():  # start_tls failed (a reset peer)
                return
            tls: Any = transport.get_protocol()  # asyncio's or uvloop's SSLProtocol: buffered
            if tls is plain:  # start_tls has not put its protocol in place yet
                loop.call_soon(hand_over)
                return
            view = memoryview(early)
            while view:
                room = tls.get_buffer(len(view))
                size = min(len(room), len(view))
                room[:size] = view[:size]
                tls.buffer_updated(size)
                view = view[size:]

        loop.call_soon(hand_over)
    try:
        await writer.start_tls(ssl_context)
    finally:
        upgrading = False
