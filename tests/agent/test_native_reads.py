"""The native path reads plain sockets itself (``RelayCore.read_itself``: a dup of the
socket on the loop's reader, the transport's own reading paused): back-pressure still holds
the upstream back, every end of a session (end of input, a reset, the server's end) tears
it down and closes the dups, a cancel mid-result takes, and pipelined statements keep their
order.  On asyncio's loop and uvloop (production's)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import uuid
from typing import Any

import pytest
import uvloop

from agent import relay_core
from agent.postgres import codec
from agent.relay_core import HIGH_WATER
from tests.agent.conftest import wait_for
from tests.agent.wire import WireClient, bind, execute, parse, rows

# What one wake-up may add to a full transport before reading stops (reader.c READ_SIZE).
READ_SIZE = 256000


@pytest.fixture(params=["asyncio", "uvloop"])
def reading_agent(request: Any, agent_factory: Any) -> Any:
    new_loop = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop
    return agent_factory(native=True, new_loop=new_loop)


def _session(running: Any) -> Any:
    """The upstream → client relay of the one session open on a running agent."""
    (relay,) = running.agent.results.values()
    return relay


def _dups(running: Any) -> list[tuple[int, int]]:
    """The sockets the native path reads, as (fd, inode) of their dups."""
    relay = _session(running)
    dups = [(r.read_fd, os.fstat(r.read_fd).st_ino) for r in (relay.peer, relay)]
    assert all(fd >= 0 for fd, _ in dups), dups
    return dups


def _closed(dups: list[tuple[int, int]]) -> bool:
    for fd, inode in dups:
        try:
            if os.fstat(fd).st_ino == inode:
                return False
        except OSError:
            pass  # closed
    return True


def _marker(name: str) -> str:
    """A column name only this test's statement carries: the asyncio and uvloop runs of a
    test may run at once on two workers against one server."""
    return f"{name}_{uuid.uuid4().hex[:12]}"


def _upstream_backends(admin: Any, marker: str, wait_event: str | None = None) -> int:
    found = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()"
        " AND coalesce(%s, wait_event) IS NOT DISTINCT FROM wait_event",
        (f"%{marker}%", wait_event),
    ).fetchone()
    return int(found[0])


def test_round_trips_are_read_from_the_sockets_natively(reading_agent: Any) -> None:
    with reading_agent.connect("alice") as conn:
        for i in range(12):
            found = conn.execute("SELECT id, email FROM customers WHERE id = %s", (i % 3 + 1,))
            assert found.fetchall() == [(i % 3 + 1, "****@example.com")]
        dups = _dups(reading_agent)
        stats = dict(_session(reading_agent).session.fast.stats)
        # both sockets' readers sit in the loop's one set (relay_core.loop_readers)
        readers = relay_core._readers[reading_agent.loop]
        assert readers.stats["readers"] >= len(dups) and readers.stats["ready"] >= 24
    assert stats["read_client"] >= 12 and stats["read_upstream"] >= 12, stats
    assert stats["client"] >= 6, stats  # native round trips


def test_a_slow_client_holds_the_upstream_back_and_gets_every_row(
    reading_agent: Any, admin: Any
) -> None:
    marker = _marker("slow_client_probe")
    total = 600_000
    query = f"SELECT g, md5(g::text) AS {marker} FROM generate_series(1, {total}) g"
    with reading_agent.connect("root") as conn:
        stream = conn.cursor().stream(query)
        try:
            seen = [next(stream)[0] for _ in range(1000)]
            # The client stops reading: the agent stops reading the server (its reader is
            # removed), which ends up blocked writing, and what the agent holds stays bounded.
            wait_for(lambda: _upstream_backends(admin, marker, "ClientWrite") == 1, timeout=20)
            relay = _session(reading_agent)
            held = relay.sink.get_write_buffer_size()
            assert relay.sink_full and not relay.reading, vars(relay)
            assert held <= HIGH_WATER + 2 * READ_SIZE, held
            seen += [row[0] for row in stream]
        finally:
            # a failure mid-stream must not leave the generator holding the connection's
            # lock: the rollback on leaving the block would wait for it for ever
            stream.close()
        assert seen == list(range(1, total + 1))
        assert relay.session.fast.stats["read_upstream"] > 0
        assert conn.execute("SELECT 1").fetchone() == (1,)  # reading resumed in full


@pytest.mark.parametrize("end", ["client eof", "client reset", "server ends"])
def test_every_end_of_a_session_tears_it_down_and_closes_the_dups(
    reading_agent: Any, admin: Any, end: str
) -> None:
    marker = _marker(f"end_probe_{end.replace(' ', '_')}")
    client = WireClient(reading_agent.port, "root")
    client.send(codec.query(f"SELECT 1 AS {marker}"))
    assert rows(client.until(b"Z")) == [[b"1"]]
    dups = _dups(reading_agent)
    if end == "server ends":
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE"
            " %s AND pid <> pg_backend_pid()",
            (f"%{marker}%",),
        )
        with pytest.raises((AssertionError, OSError)):  # an error, then the end
            client.until(b"Z")
        client.sock.close()
    else:
        if end == "client reset":  # close with SO_LINGER 0: a RST
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.send(codec.query(f"SELECT pg_sleep(0.2) AS {marker}"))  # mid-statement
        client.sock.close()
    wait_for(lambda: not reading_agent.agent.results)
    wait_for(lambda: _upstream_backends(admin, marker) == 0)
    wait_for(lambda: _closed(dups))
    with reading_agent.connect("root") as conn:  # the agent serves on
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_cancel_mid_result_takes_and_the_session_goes_on(reading_agent: Any) -> None:
    client = WireClient(reading_agent.port, "root")
    ((pid, secret),) = [
        struct.unpack("!ii", payload) for kind, payload in client.startup if kind == b"K"
    ]
    client.send(codec.query("SELECT g, md5(g::text) FROM generate_series(1, 5000000) g"))
    for _ in range(1000):
        assert client.read()[0] in b"TD"
    with socket.create_connection(("127.0.0.1", reading_agent.port), timeout=10) as cancel:
        cancel.sendall(codec.cancel_request(pid, secret))
    messages = client.until(b"Z")
    errors = [codec.parse_error_fields(p) for k, p in messages if k == b"E"]
    assert [e["C"] for e in errors] == ["57014"], errors
    assert len(messages) < 5_000_000
    client.send(codec.query("SELECT 3"))
    assert rows(client.until(b"Z")) == [[b"3"]]
    assert _session(reading_agent).session.fast.stats["read_upstream"] > 0
    client.close()


def test_pipelined_statements_keep_their_order(reading_agent: Any) -> None:
    client = WireClient(reading_agent.port, "alice")
    for _ in range(3):  # decided, then with tickets: the native path meets a pipeline
        client.send(
            codec.query("SELECT id, email FROM customers WHERE id = 1"),
            codec.query("SELECT id, email FROM customers WHERE id = 2"),
            parse("", "SELECT id, email FROM customers WHERE id = $1"),
            bind("", "", (b"3",)),
            execute(""),
            codec.message(b"S"),
        )
        answers = [rows(client.until(b"Z")) for _ in range(3)]
        assert answers == [
            [[b"1", b"****@example.com"]],
            [[b"2", b"****@example.com"]],
            [[b"3", b"****@example.com"]],
        ]
        client.send(codec.query("SELECT id, email FROM customers WHERE id = 2"))
        assert rows(client.until(b"Z")) == [[b"2", b"****@example.com"]]
    stats = _session(reading_agent).session.fast.stats
    assert stats["read_client"] > 0 and stats["client"] > 0, stats
    client.close()
