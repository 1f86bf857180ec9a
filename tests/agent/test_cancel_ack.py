"""A client's cancel returns only once it took effect where the statement runs.

libpq's PQcancel waits for the server to close the cancel connection (it has signalled the
backend by then), and client libraries rely on it: psycopg cancels a stream it leaves early
and runs the next statement straight after. If the agent answered before the upstream had
acted, the cancel could land on that next statement instead. These tests hold the upstream's
(or the owning worker's) answer back and show the agent waits for it, and no longer than
its bound.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time

import pytest

from agent.postgres import codec, upstream
from agent.upstream import UpstreamConfig
from agent.workers import WorkerGroup

HELD_BACK = 0.5


async def _slow_postmaster(received: list[bytes], close_after: float) -> asyncio.Server:
    async def on_cancel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(16))
        await asyncio.sleep(close_after)
        writer.close()

    return await asyncio.start_server(on_cancel, "127.0.0.1", 0)


async def _timed_cancel(received: list[bytes], close_after: float, key: tuple[int, int]) -> float:
    """Seconds ``send_cancel`` took against a server closing ``close_after`` s after the key."""
    server = await _slow_postmaster(received, close_after)
    port = server.sockets[0].getsockname()[1]
    config = UpstreamConfig(host="127.0.0.1", port=port, sslmode="disable")
    started = time.monotonic()
    await upstream.send_cancel(config, *key)
    took = time.monotonic() - started
    server.close()
    return took


def test_the_upstream_cancel_waits_for_the_server_to_close() -> None:
    received: list[bytes] = []
    took = asyncio.run(_timed_cancel(received, HELD_BACK, (4242, 77)))
    assert received == [codec.cancel_request(4242, 77)]
    assert HELD_BACK <= took < HELD_BACK + 2, took


def test_a_server_that_never_closes_holds_the_cancel_no_longer_than_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream, "CANCEL_ACK_SECONDS", 0.3)
    assert 0.3 <= asyncio.run(_timed_cancel([], 30, (1, 2))) < 2


def test_a_forwarded_cancel_waits_for_the_owning_worker() -> None:
    group = f"test{os.getpid()}-{time.monotonic_ns()}"
    owner, forwarder = WorkerGroup(1, 2, group), WorkerGroup(0, 2, group)

    async def main() -> tuple[bool, float, list[tuple[int, int]]]:
        seen: list[tuple[int, int]] = []

        async def cancel(pid: int, secret: int) -> None:
            await asyncio.sleep(HELD_BACK)  # the owner's own send_cancel upstream
            seen.append((pid, secret))

        server = await owner.serve_cancels(cancel)
        pid = owner.cancel_key_pid(12345 << 8)
        started = time.monotonic()
        forwarded = await forwarder.forward_cancel(pid, 99)
        took = time.monotonic() - started
        server.close()
        return forwarded, took, seen

    forwarded, took, seen = asyncio.run(main())
    assert forwarded and seen == [(owner.cancel_key_pid(12345 << 8), 99)]
    assert HELD_BACK <= took < HELD_BACK + 2, took


def test_a_cancel_request_is_sixteen_bytes_with_the_key() -> None:
    # The control for the first test's byte comparison: the key is really in the packet.
    packet = codec.cancel_request(4242, 77)
    assert struct.unpack("!iiii", packet) == (16, 80877102, 4242, 77)
