"""agent/starttls.py: a TLS upgrade whose client is gone leaves nothing running."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time

import pytest
import uvloop

from agent.starttls import start_tls_keeping_early_bytes


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_peer_reset_before_the_upgrade_leaves_no_callback_spinning(run: object) -> None:
    """Bytes behind the request for TLS, then a reset: start_tls fails before it puts its
    protocol in place, and the hand-over of those bytes must stop, not re-schedule itself
    for ever (a loop at 100 % CPU per such connection, before anyone logged in)."""

    async def scenario() -> tuple[str, float]:
        failed = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)  # the "request"; the rest stays in the buffer
            await asyncio.sleep(0.2)  # the reset arrives meanwhile
            try:
                await start_tls_keeping_early_bytes(
                    reader, writer, ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                )
            except OSError as exc:  # the reset, as the session sees it
                failed.set_result(type(exc).__name__)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname()[:2])
        client.sendall(b"abcd" + b"\x16\x03\x01 a hello")
        await asyncio.sleep(0.05)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset, not a FIN
        error = await asyncio.wait_for(failed, 10)
        started = time.process_time()
        await asyncio.sleep(1.0)
        server.close()
        return error, time.process_time() - started

    error, busy = run(scenario())  # type: ignore[operator]
    assert error in {"ConnectionResetError", "ConnectionError", "BrokenPipeError"}, error
    assert busy < 0.3, f"the idle loop used {busy:.2f} s of CPU in 1 s"
