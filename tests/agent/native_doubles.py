"""Test doubles for the native-vs-Python differential tests: a scripted PostgreSQL server
that answers exactly what a session forwarded, random round trips and read splits, a client
on a real socket, and an agent with the test bundle and no control plane."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from pathlib import Path
from typing import Any

import psycopg

from agent.bundle import Bundle
from agent.postgres import codec
from agent.postgres.proxy import PostgresAgent
from agent.postgres.relay import Relay
from agent.server import AgentConfig
from agent.upstream import UpstreamConfig
from tests.agent import conftest
from tests.agent.conftest import MASKING_KEY, PG_HOST, PG_PORT

# statement → columns (name, attnum or 0 for an expression, type oid) and a row maker
STATEMENTS: dict[str, tuple[list[tuple[str, int, int]], Any]] = {
    "SELECT id, email FROM customers WHERE id = {n}": (
        [("id", 1, 23), ("email", 3, 25)],
        lambda n: [str(n).encode(), f"ada.{n}@example.com".encode()],
    ),
    "SELECT id, name FROM customers WHERE id = {n}": (
        [("id", 1, 23), ("name", 2, 25)],
        lambda n: [str(n).encode(), b"Ada Lovelace"],
    ),
    "SELECT phone, card, name FROM customers WHERE id = {n}": (
        [("phone", 4, 25), ("card", 5, 25), ("name", 2, 25)],
        lambda n: [b"+1 (555) 0101-1001", f"4111-1111-1111-{1000 + n}".encode(), None],
    ),
    "SELECT upper(email) FROM customers WHERE id = {n}": (
        [("upper", 0, 25)],
        lambda n: [f"ADA.{n}@EXAMPLE.COM".encode()],
    ),
}


class FakeServer:
    """Answers the frontend messages a session forwarded, like PostgreSQL would."""

    def __init__(self, table_oid: int, rng: random.Random) -> None:
        self.table_oid = table_oid
        self.rng = rng
        self.statements: dict[bytes, str] = {}
        self.portals: dict[bytes, tuple[str, tuple[int, ...]]] = {}
        self.failing = False  # skipping to Sync after an error

    def _shape(self, sql: str) -> tuple[list[tuple[str, int, int]], Any, int]:
        for template, (columns, make) in STATEMENTS.items():
            head, _, tail = template.partition("{n}")
            if sql.startswith(head) and sql.endswith(tail):
                value = sql[len(head) : len(sql) - len(tail)]
                return columns, make, int(value) if value.isdigit() else 7
        raise AssertionError(f"unexpected statement {sql!r}")

    def _row_description(self, sql: str, formats: tuple[int, ...] = ()) -> bytes:
        columns, _, _ = self._shape(sql)
        fields = b"".join(
            codec.cstring(name)
            + struct.pack(
                "!IhIhih",
                self.table_oid if attnum else 0,
                attnum,
                type_oid,
                -1,
                -1,
                formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0),
            )
            for i, (name, attnum, type_oid) in enumerate(columns)
        )
        return codec.message(b"T", struct.pack("!h", len(columns)) + fields)

    def _rows(self, sql: str) -> list[bytes]:
        if self.rng.random() < 0.1:
            self.failing = True
            return [codec.error_response("22012", "division by zero")]
        _, make, n = self._shape(sql)
        out = [codec.data_row(make(n))]
        if self.rng.random() < 0.2:
            out.append(codec.notice_response("a notice between rows"))
        return [*out, codec.message(b"C", codec.cstring("SELECT 1"))]

    def answer(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        while pos < len(data):
            kind, length = data[pos : pos + 1], struct.unpack_from("!i", data, pos + 1)[0]
            payload = data[pos + 5 : pos + 1 + length]
            pos += 1 + length
            if kind == b"Q":
                sql = codec.parse_query(payload)
                out.append(self._row_description(sql))
                out += self._rows(sql)
                self.failing = False
                out.append(codec.ready_for_query())
                continue
            if kind == b"S":
                self.failing = False
                out.append(codec.ready_for_query())
                continue
            if self.failing:
                continue
            if kind == b"P":
                name, sql = codec.parse_parse(payload)
                if self.rng.random() < 0.05:  # e.g. a relation dropped meanwhile
                    self.statements.pop(name.encode(), None)  # the unnamed one is gone
                    self.failing = True
                    out.append(codec.error_response("42P01", "relation does not exist"))
                    continue
                self.statements[name.encode()] = sql
                out.append(codec.message(b"1"))
            elif kind == b"B":
                portal, statement, formats = codec.parse_bind(payload)
                self.portals[portal.encode()] = (self.statements[statement.encode()], formats)
                out.append(codec.message(b"2"))
            elif kind == b"D":
                target, name = codec.parse_target(payload)
                if target == b"S":
                    out.append(codec.message(b"t", struct.pack("!hI", 1, 23)))
                    out.append(self._row_description(self.statements[name.encode()]))
                else:
                    sql, formats = self.portals[name.encode()]
                    out.append(self._row_description(sql, formats))
            elif kind == b"E":
                sql, _ = self.portals[codec.parse_execute(payload).encode()]
                out += self._rows(sql)
            if self.rng.random() < 0.05:
                out.append(codec.message(b"S", codec.cstring("TimeZone") + codec.cstring("UTC")))
        return b"".join(out)


def round_trip(rng: random.Random) -> bytes:
    template = rng.choice(list(STATEMENTS))
    n = rng.randrange(1, 40)
    if rng.random() < 0.4:
        return codec.query(template.format(n=n))
    sql = template.replace("{n}", "$1")
    value = str(n).encode()
    formats = rng.choice([b"\x00\x00", b"\x00\x01\x00\x00"])
    bind = b"\x00\x00" + b"\x00\x00" + struct.pack("!hi", 1, len(value)) + value + formats
    messages = [
        codec.message(b"P", b"\x00" + codec.cstring(sql) + b"\x00\x00"),
        codec.message(b"B", bind),
    ]
    if rng.random() < 0.7:
        messages.append(codec.message(b"D", b"P\x00"))
    messages += [codec.message(b"E", b"\x00" + struct.pack("!i", 0)), codec.SYNC]
    return b"".join(messages)


def split(data: bytes, rng: random.Random) -> list[bytes]:
    if len(data) < 2 or rng.random() < 0.6:
        return [data]
    cut = rng.randrange(1, len(data))
    return [data[:cut], data[cut:]]


def row_payload_bytes(stream: bytes) -> int:
    """The DataRow payload bytes (without the 5-byte headers) of a message stream."""
    total = pos = 0
    while pos < len(stream):
        length = struct.unpack_from("!i", stream, pos + 1)[0]
        total += length - 4 if stream[pos : pos + 1] == b"D" else 0
        pos += 1 + length
    return total


async def feed(relay: Relay, chunk: bytes) -> None:
    """Bytes arriving on one relay, and whatever slow handling they start, to the end."""
    relay.data_received(chunk)
    while relay.busy:
        assert relay.task is not None
        await relay.task
    assert not relay.done.done(), relay.done.result()


class SocketPeer:
    """The client's end of a real socket pair.  The agent writes the other end through a
    plain asyncio transport (one the native path sends on itself) whose kernel buffer holds
    a few small writes, and the test reads this end only now and then: the transport often
    holds bytes when the native path has more to write."""

    def __init__(self, transport: Any, peer: socket.socket) -> None:
        self.transport = transport
        self.peer = peer
        self.data = bytearray()

    @classmethod
    async def open(cls) -> SocketPeer:
        agent_end, peer = socket.socketpair()
        agent_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, agent_end)
        return cls(transport, peer)

    def read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := self.peer.recv(65536):
                self.data += chunk

    async def settle(self) -> None:
        """Read until the transport has written everything it held."""
        for _ in range(10000):
            self.read()
            if not self.transport.get_write_buffer_size():
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.read()

    def close(self) -> None:
        self.transport.close()
        self.peer.close()


def offline_postgres_agent(pg_database: str, tmp_path: Path) -> tuple[PostgresAgent, int]:
    """An agent with the test bundle and no control plane (its audit journal on), and the
    oid of ``customers``."""
    config = AgentConfig(
        control_plane="http://127.0.0.1:9",
        token="t",
        datasource="shop",
        upstream=UpstreamConfig(PG_HOST, PG_PORT, "postgres", "", pg_database),
        state_dir=tmp_path / "state",
        masking_key=MASKING_KEY,
    )
    agent = PostgresAgent(config)
    agent._bundle_installed(Bundle.from_document(conftest.bundle_document()))
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database) as conn:
        table_oid = conn.execute("SELECT 'customers'::regclass::oid").fetchone()[0]
    return agent, table_oid
