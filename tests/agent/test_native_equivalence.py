"""Differential test: random conversations through a native-path session and a pure-Python
one must produce the same bytes to the client, the same bytes to the server and the same
audit events.  The server is a small scripted stand-in that answers exactly what each
session forwarded (the agent's own Describe included), with notices, errors and reads
split at random places; the policy engine and the catalog lookups are the real ones.  The
red-team statement corpus (tests/agent/corpus.py) goes through both as well, as simple and
extended round trips with text and binary results, answered by the real server."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from agent.extension import native_path_available
from agent.postgres import codec
from agent.postgres.messages import READY_FOR_QUERY
from agent.postgres.proxy import PostgresAgent
from agent.postgres.relay import Relay
from agent.relay_core import socket_fd
from agent.testing import MemoryTransport, detached_relays
from agent.verdicts import Identity
from tests.agent import corpus
from tests.agent.native_doubles import (
    FakeServer,
    SocketPeer,
    feed,
    offline_postgres_agent,
    round_trip,
    row_payload_bytes,
    split,
)


async def _conversation(
    agent: PostgresAgent, table_oid: int, seed: int, native: bool, client: SocketPeer | None = None
) -> Any:
    """60 random round trips through one session (``client``: to a real socket, read at
    random moments): the bytes to the client, to the server, the audit events and the
    native path's stats."""
    rng = random.Random(seed)
    reads = random.Random(seed + 2)  # when a socket client reads (not part of the script)
    server = FakeServer(table_oid, random.Random(seed + 1))
    client_sink: Any = MemoryTransport() if client is None else client.transport
    upstream_sink = MemoryTransport()
    identity = Identity("alice", "user", frozenset())
    to_upstream, to_client = detached_relays(
        agent, identity, client_sink, upstream_sink, native=native
    )
    session = to_upstream.session
    assert (session.fast is not None) == native
    first_event = len(agent.audit.queued)  # the shipper's (and journal's) list: read only

    sent_upstream = 0
    for _ in range(60):
        trips = [round_trip(rng) for _ in range(2 if rng.random() < 0.15 else 1)]
        for trip in trips:  # a pipelining client sends the second before any answer
            for chunk in split(trip, rng):
                await feed(to_upstream, chunk)
        forwarded = bytes(upstream_sink.data[sent_upstream:])
        sent_upstream = len(upstream_sink.data)
        for chunk in split(server.answer(forwarded), rng):
            await feed(to_client, chunk)
        if client is not None and reads.random() < 0.3:
            client.read()
            await asyncio.sleep(0)  # the transport writes what it held, as far as it can
    events = [(e[0], e[2], e[4], e[5]) for e in agent.audit.queued[first_event:]]
    stats = session.fast.stats if session.fast is not None else None
    if client is not None:
        await client.settle()
    to_client_bytes = client_sink.data if client is None else client.data
    return bytes(to_client_bytes), bytes(upstream_sink.data), events, stats


@pytest.fixture
def offline_agent(pg_database: str, tmp_path: Path) -> Any:
    return offline_postgres_agent(pg_database, tmp_path)


@pytest.mark.parametrize("seed", range(24))
async def test_native_and_python_sessions_agree_byte_for_byte(
    offline_agent: Any, seed: int
) -> None:
    assert native_path_available()
    agent, table_oid = offline_agent
    native = await _conversation(agent, table_oid, seed, native=True)
    python = await _conversation(agent, table_oid, seed, native=False)
    assert native[1] == python[1], "different bytes reached the server"
    assert native[0] == python[0], "different bytes reached the client"
    assert native[2] == python[2], "different audit events"
    # Every DataRow that went out is counted, as it went out (masked), in its statement's event.
    assert sum(event[3] for event in native[2]) == row_payload_bytes(native[0]) > 0
    assert not re.search(rb"ada\.\d+@example\.com", native[0], re.IGNORECASE)
    assert b"****" in native[0]  # masked values went out, raw ones did not
    stats = native[3]
    assert stats["client"] > 20, stats  # the native path really carried most round trips
    assert stats["resumed"] > 0, stats  # and handed some back (errors, pipelining)
    await agent.catalog.close()


@pytest.mark.parametrize("seed", range(6))
async def test_native_writes_on_a_socket_keep_their_place_behind_what_its_transport_holds(
    offline_agent: Any, seed: int
) -> None:
    """The native path sends on a plain socket itself only while the transport holds
    nothing: a client that reads slowly gets the very bytes a memory sink gets."""
    agent, table_oid = offline_agent
    expected = await _conversation(agent, table_oid, seed, native=True)
    client = await SocketPeer.open()
    assert socket_fd(client.transport) >= 0  # a transport the native path sends on itself
    try:
        through_socket = await _conversation(agent, table_oid, seed, True, client)
    finally:
        client.close()
    assert through_socket[0] == expected[0], "the client got other bytes, or out of order"
    assert through_socket[1] == expected[1]
    # the same events, but for the client's address (a socket pair's has no address)
    assert [event[1:] for event in through_socket[2]] == [event[1:] for event in expected[2]]
    stats = through_socket[3]
    assert stats["sent_client"] > 0, stats  # written on the socket here
    assert stats["queued_client"] > 0, stats  # and behind bytes the transport held
    await agent.catalog.close()


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Bit flips, a rewritten length field, a cut or a duplicated slice."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        choice = rng.random()
        if choice < 0.4 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif choice < 0.7 and len(out) >= 5:
            at = rng.randrange(len(out) - 4)
            out[at : at + 4] = struct.pack("!i", rng.choice([-1, 0, 3, 4, 5, 2**31 - 1, len(out)]))
        elif choice < 0.85:
            out = out[: rng.randrange(len(out) + 1)]
        else:
            at = rng.randrange(len(out) + 1)
            out[at:at] = out[rng.randrange(len(out) + 1) :][:16]
    return bytes(out)


def _waiting(relays: tuple[Relay, Relay]) -> bool:
    """A mangled length made a relay wait for bytes that will never come."""
    return any(len(relay.buffer) > 4096 for relay in relays)


@pytest.mark.parametrize("seed", range(4))
async def test_the_native_path_survives_malformed_bytes_from_both_sides(
    offline_agent: Any, seed: int
) -> None:
    """Memory safety: mangled client and server bytes either go through, or end the
    session with an error; the process never crashes and the agent keeps working."""
    agent, table_oid = offline_agent
    rng = random.Random(1000 + seed)
    ended = fed = 0
    while fed < 400:
        server = FakeServer(table_oid, random.Random(seed))
        client_sink, upstream_sink = MemoryTransport(), MemoryTransport()
        identity = Identity("alice", "user", frozenset())
        to_upstream, to_client = detached_relays(
            agent, identity, client_sink, upstream_sink, native=True
        )
        done = to_upstream.done

        relays = (to_upstream, to_client)
        clean = 0  # the first round trips of a session are whole: they fill the caches
        while not done.done() and not _waiting(relays) and fed < 400:
            trip = round_trip(rng)
            fed += 1
            clean += 1
            mangle = clean > 12 and rng.random() < 0.3
            to_upstream.data_received(_mutate(trip, rng) if mangle else trip)
            for relay in (to_upstream, to_client):
                while relay.busy and not done.done():
                    assert relay.task is not None
                    with contextlib.suppress(Exception):
                        await relay.task
            if done.done():
                break
            forwarded = bytes(upstream_sink.data)
            upstream_sink.data.clear()
            try:
                answer = server.answer(forwarded)
            except (AssertionError, KeyError, struct.error, UnicodeDecodeError, ValueError):
                answer = codec.ready_for_query()  # the scripted server did not follow
            mangle = clean > 12 and rng.random() < 0.3
            to_client.data_received(_mutate(answer, rng) if mangle else answer)
            while to_client.busy and not done.done():
                assert to_client.task is not None
                with contextlib.suppress(Exception):
                    await to_client.task
        ended += done.done() or _waiting(relays)
    assert ended > 3  # mangled bytes ended sessions (or stalled them), and nothing crashed
    stats = agent.metrics.statements
    assert stats.native_statements > 15 and stats.native_handbacks > 0  # C saw part of it
    # The agent still relays and masks a well-formed conversation afterwards.
    client_sink, upstream_sink = MemoryTransport(), MemoryTransport()
    to_upstream, to_client = detached_relays(
        agent, Identity("alice", "user", frozenset()), client_sink, upstream_sink, native=True
    )
    to_upstream.data_received(codec.query("SELECT id, email FROM customers WHERE id = 3"))
    while to_upstream.busy:
        await to_upstream.task  # type: ignore[misc]
    answer = FakeServer(table_oid, random.Random(5)).answer(bytes(upstream_sink.data))
    to_client.data_received(answer)
    while to_client.busy:
        await to_client.task  # type: ignore[misc]
    assert b"ada.3@example.com" not in client_sink.data and b"Z" in client_sink.data
    await agent.catalog.close()


# ---------------------------------------------------------------- the red-team corpus

CORPUS = sorted(
    {
        probe if isinstance(probe, str) else probe[0]
        for name, probes in vars(corpus).items()
        if name.isupper() and name != "EVERY_ROW"  # conditions: GUARDRAIL_PROBES holds them
        for probe in probes
    }
)
_ALICE = Identity("alice", "user", frozenset({"analyst"}))
_TEXT, _BINARY = b"\x00\x00", b"\x00\x01\x00\x01"  # result formats: default, all binary


def _extended(sql: str, result_formats: bytes) -> bytes:
    """Parse, Bind (no parameters), Describe portal, Execute, Sync of the unnamed statement."""
    return b"".join(
        [
            codec.message(b"P", b"\x00" + codec.cstring(sql) + b"\x00\x00"),
            codec.message(b"B", b"\x00\x00" + b"\x00\x00" + b"\x00\x00" + result_formats),
            codec.message(b"D", b"P\x00"),
            codec.message(b"E", b"\x00" + struct.pack("!i", 0)),
            codec.SYNC,
        ]
    )


def _corpus_round_trips(sql: str) -> list[bytes]:
    """The statement as a simple Query and in the extended protocol with text and with
    binary results, each twice: the second run is the one the native path may carry."""
    forms = [codec.query(sql), _extended(sql, _TEXT), _extended(sql, _BINARY)]
    return [form for form in forms for _ in range(2)]


def _answers_expected(forwarded: bytes) -> int:
    """How many ReadyForQuery the server owes for these bytes (one per Query and Sync)."""
    count = pos = 0
    while pos < len(forwarded):
        count += forwarded[pos : pos + 1] in (b"Q", b"S")
        pos += 1 + struct.unpack_from("!i", forwarded, pos + 1)[0]
    return count


async def _corpus_conversation(agent: PostgresAgent, statements: list[str], native: bool) -> Any:
    """Every statement's round trips through one session, answered by the real server."""
    from agent.postgres import upstream
    from agent.postgres.sql import PINNED_SETTINGS

    server = await upstream.connect(agent.config.upstream, dict(PINNED_SETTINGS))
    client_sink, upstream_sink = MemoryTransport(), MemoryTransport()
    to_upstream, to_client = detached_relays(
        agent, _ALICE, client_sink, upstream_sink, native=native
    )
    session = to_upstream.session
    first_event = len(agent.audit.queued)  # the shipper's (and journal's) list: read only

    async def answer(forwarded: bytes) -> bytes:
        server.writer.write(forwarded)
        owed, answer = _answers_expected(forwarded), bytearray()
        while owed:
            kind, payload = await upstream.read_message(server.reader)
            answer += codec.message(kind, payload)
            owed -= kind == READY_FOR_QUERY
        return bytes(answer)

    try:
        # Straight to the server: every round trip runs in a savepoint rolled back after it,
        # so both sessions see the same rows in the same order (some probes write).
        await answer(codec.query("BEGIN"))
        for sql in statements:
            for trip in _corpus_round_trips(sql):
                await answer(codec.query("SAVEPOINT probe"))
                sent = len(upstream_sink.data)
                await feed(to_upstream, trip)
                await feed(to_client, await answer(bytes(upstream_sink.data[sent:])))
                await answer(codec.query("ROLLBACK TO SAVEPOINT probe"))
    finally:
        server.close()
    events = [(e[0], e[2], e[4], e[5]) for e in agent.audit.queued[first_event:]]
    stats = session.fast.stats if session.fast is not None else None
    return bytes(client_sink.data), bytes(upstream_sink.data), events, stats


@pytest.mark.parametrize("part", range(4))
async def test_native_and_python_sessions_agree_on_the_red_team_corpus(
    offline_agent: Any, part: int
) -> None:
    """Each red-team probe, as a simple Query and as extended round trips with text and
    binary results, answered by the real server: the native path's session sends the same
    bytes to the server and the client, and queues the same audit events."""
    agent, _ = offline_agent
    statements = CORPUS[part::4]
    native = await _corpus_conversation(agent, statements, native=True)
    python = await _corpus_conversation(agent, statements, native=False)
    assert native[1] == python[1], "different bytes reached the server"
    assert native[0] == python[0], "different bytes reached the client"
    assert native[2] == python[2], "different audit events"
    assert sum(event[3] for event in native[2]) == row_payload_bytes(native[0]) > 0
    raw_value = rb"[a-z]+\.\d+@example\.com|\d{3}-45-\d{4}"  # as the red-team suites look
    assert not re.search(raw_value, native[0], re.IGNORECASE)
    # The native path carried repeats of the statements the agent let run (refused ones,
    # inference through masked columns included, stay on the Python side).
    let_run = {e[0] for e in python[2] if '"decision":"deny"' not in e[0]}
    stats = native[3]
    assert let_run and stats["client"] > len(let_run), (stats, len(let_run))
    await agent.catalog.close()


@pytest.mark.parametrize("end", ["close", "abort"])
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_closed_clients_socket_number_taken_by_another_connection_gets_nothing(
    pg_database: str, tmp_path: Path, end: str, loop_kind: str
) -> None:
    """The native path sends on a client's socket number itself.  Once Python code closed
    the client's transport, the loop closes that number and the next connection may get
    it: the answer still arriving from the server must not be sent on it (the transport
    is closing: it goes to the transport, which drops it)."""
    import socket

    import uvloop

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        agent, table_oid = offline_postgres_agent(pg_database, tmp_path)
        listener = socket.create_server(("127.0.0.1", 0))
        peer = socket.create_connection(listener.getsockname())
        agent_end, _ = listener.accept()
        client, _ = await loop.connect_accepted_socket(asyncio.Protocol, agent_end)
        number = socket_fd(client)
        assert number >= 0  # a plain socket: the native path sends on it itself
        rng, server, upstream = random.Random(1), FakeServer(table_oid, random.Random(2)), None
        upstream = MemoryTransport()
        to_upstream, to_client = detached_relays(
            agent, Identity("alice", "user", frozenset()), client, upstream, native=True
        )
        for _ in range(20):
            mark = len(upstream.data)
            for chunk in split(round_trip(rng), rng):
                await feed(to_upstream, chunk)
            for chunk in split(server.answer(bytes(upstream.data[mark:])), rng):
                await feed(to_client, chunk)
        assert to_upstream.session.fast.stats["sent_client"] > 0
        mark = len(upstream.data)
        await feed(to_upstream, codec.query("SELECT id, email FROM customers WHERE id = 7"))
        answer = server.answer(bytes(upstream.data[mark:]))
        getattr(client, end)()
        for _ in range(3):
            await asyncio.sleep(0)  # the loop closes the socket
        # New connections until one gets the number (a lower one freed meanwhile, by another
        # test's threads in this process, is taken first).
        others: list[socket.socket] = []
        while number not in [sock.fileno() for sock in others] and len(others) < 64:
            others.append(socket.create_connection(listener.getsockname()))
            others.append(listener.accept()[0])
        assert number in [sock.fileno() for sock in others]  # the number is someone else's
        with contextlib.suppress(Exception):
            to_client.data_received(answer)
        await asyncio.sleep(0.1)
        leaked = b""
        for sock in others:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                leaked += sock.recv(65536)
        for sock in (listener, peer, *others):
            sock.close()
        return leaked

    leaked = (uvloop.run if loop_kind == "uvloop" else asyncio.run)(scenario())
    assert leaked == b"", "another connection got the closed session's answer"
