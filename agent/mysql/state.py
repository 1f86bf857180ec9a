"""What one MySQL client connection knows (identity, database, upstream link, prepared
statements, the answer in flight) and the packet I/O every phase uses.  ``SessionState``
holds it; the phases (``login``, ``commands``, ``statements``, ``decisions``, ``masks``)
are built on it and ``agent.mysql.session.MySqlSession`` combines them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from agent.logins import ReportedLogin
from agent.mysql import packets as p
from agent.mysql.auth import UpstreamLink
from agent.mysql.relay import PacketRelay
from agent.mysql.rows import Mask, NativeMask, native_whole_result
from agent.mysql.vocabulary import UNSAFE_SQL_MODES
from agent.verdicts import Decision, Identity

if TYPE_CHECKING:
    from agent.mysql.results import Results, Shape
    from agent.mysql.server import MySqlAgent


def _pin_sql_mode() -> str:
    """``SET SESSION sql_mode`` to the server's mode without any flag the analyser refuses
    (the combination modes too: a global ``ORACLE`` would otherwise bring ANSI_QUOTES back)."""
    mode = "CONCAT(',', @@sql_mode, ',')"
    for flag in sorted(UNSAFE_SQL_MODES):
        mode = f"REPLACE({mode}, ',{flag},', ',')"
    return f"SET SESSION sql_mode = TRIM(BOTH ',' FROM {mode})"


PIN_SQL_MODE = _pin_sql_mode()


# A COM_QUERY text a session may run again without deciding it: the (start, end, bytes)
# its payload must hold, the decision, the agent's generation and the database then.
Repeat = tuple[tuple[tuple[int, int, bytes], ...], Decision, int, str | None]


@dataclass
class OpenCursor:
    """A cursor an EXECUTE opened: its statement's audit event waits for the rows and
    bytes the FETCHes send, until the cursor ends."""

    decision: Decision
    index: int
    started: float
    rows: int = 0
    sent_bytes: int = 0


@dataclass
class Prepared:
    """A prepared statement the client holds, with the decision it runs under."""

    sql: str
    decision: Decision
    generation: int  # MySqlAgent.generation when decided: a new bundle or DDL decides again
    masks: list[Mask | None] | None = None
    types: list[int] = field(default_factory=list)
    native: NativeMask | None = None  # the masks for the native path (rows.native_row_mask)
    cursor: OpenCursor | None = None


class SessionState:
    def __init__(
        self, agent: MySqlAgent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.agent = agent
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.client_address = str(peer[0]) if isinstance(peer, tuple) else ""
        self.identity: Identity | None = None
        self.database: str | None = None
        self.upstream: UpstreamLink | None = None
        # After login: the packets read from each side, their relays, the client transport
        # and the answer in flight.
        self.commands = p.PacketBuffer()
        self.upstream_packets = p.PacketBuffer()
        self.to_upstream: PacketRelay | None = None
        self.to_client: PacketRelay = cast(PacketRelay, None)
        self.client: asyncio.Transport = cast(asyncio.Transport, None)
        self.results: Results | None = None
        self.native_path: Any = None  # agent.mysql.native's C object, when in use
        self.native_results = agent.config.native and native_whole_result is not None
        self.connection_id = agent.next_connection_id()
        self.prepared: dict[int, Prepared] = {}
        self.reply_seq = 1
        # A login the control plane audited as accepted, until the session starts (if it
        # never does, the login is followed up as abandoned, agent/logins.py), and why not.
        self.reported_login: ReportedLogin | None = None
        self.refusal = ""
        self._masks: dict[tuple[int, bytes], tuple[Decision, Shape]] = {}
        # COM_QUERY texts run under a cached decision, by template key (commands.py): the
        # template's fixed pieces, the decision, the agent's generation and the database.
        self._repeats: dict[bytes, Repeat] = {}
        # Audit fields per (decision, result index): JSON-encoded once, not per statement.
        self._fragments: dict[tuple[int, int], tuple[Decision, str]] = {}

    def _reply(self, *payloads: bytes) -> None:
        """Packets to the client, numbered after the command they answer."""
        seq = self.reply_seq
        parts = []
        for payload in payloads:
            data, seq = p.frame(payload, seq)
            parts.append(data)
        self.writer.write(b"".join(parts))

    def _send_upstream(self, payload: bytes) -> None:
        assert self.upstream is not None
        data, _ = p.frame(payload, 0)
        self.upstream.writer.write(data)

    async def _upstream_payload(self) -> bytes:
        assert self.upstream is not None
        if self.to_upstream is None:  # logging in: the stream is still the upstream's reader
            return (await p.read_payload(self.upstream.reader))[1]
        return await self.upstream_packets.payload()

    async def _forward_simple(self, payload: bytes) -> None:
        """A command answered by one packet (OK, ERR, or COM_STATISTICS's text)."""
        self._send_upstream(payload)
        self._reply(await self._upstream_payload())

    async def _upstream_command(self, payload: bytes) -> bytes:
        """A command of the agent's own on the upstream connection; its one-packet answer."""
        assert self.upstream is not None
        self._send_upstream(payload)
        await self.upstream.writer.drain()
        return await self._upstream_payload()

    async def _pin_session(self) -> None:
        """At login and after COM_RESET_CONNECTION (which restores the global sql_mode)."""
        answer = await self._upstream_command(bytes((p.COM_QUERY,)) + PIN_SQL_MODE.encode())
        if p.is_err(answer):
            raise p.ProtocolError(f"cannot pin sql_mode: {p.ServerError.parse(answer).message}")

    def _expect(self, results: Results) -> None:
        """``results`` relays the answer to the command just sent upstream."""
        self.results = results
        assert self.to_upstream is not None
        self.to_upstream.busy = True  # the next command waits for this answer

    def results_done(self, succeeded: bool, after: Callable[[bool], None] | None) -> None:
        """The answer went out whole: its command is done, the next may start."""
        self.results = None
        if after is not None:
            after(succeeded)
        assert self.to_upstream is not None
        self.to_upstream.resume()
