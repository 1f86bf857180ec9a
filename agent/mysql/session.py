"""One MySQL client connection: login, then each command decided, relayed and audited.

Login reads and writes streams; after it, both sockets are driven by transport callbacks
(``agent.mysql.relay``): a command whose decision is cached is decided, sent upstream and
its answer relayed (``agent.mysql.results``) without a coroutine; the rest (a decision to
make, a hold, prepared statements, KILL, ...) run as the client relay's slow handlers.
The agent re-frames every packet it relays with its own sequence ids, so rewriting a row
(masking) or joining a split packet never desynchronises client and server.  Commands the
agent does not understand are refused (ER_UNKNOWN_COM_ERROR), never passed through.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from agent import relay_core
from agent.audit import statement_fragment
from agent.controlplane import ControlPlaneUnavailable
from agent.mysql import packets as p
from agent.mysql.auth import (
    CACHING_SHA2,
    NATIVE,
    SAFE_COLLATIONS,
    AuthRefused,
    ClientAuthPolicy,
    ClientLogin,
    UpstreamLink,
    accept_client,
    connect_upstream,
    new_nonce,
)
from agent.mysql.hold import hold_statement
from agent.mysql.relay import PacketRelay
from agent.mysql.results import Results, Shape, withheld
from agent.mysql.rows import REDACT, ColumnDef, Mask
from agent.mysql.server import MySqlAgent
from agent.verdicts import ALLOW, DENY, HOLD, MASK, Decision, Identity

log = logging.getLogger("agent.mysql.session")

ER_ACCESS_DENIED = 1045
ER_TABLEACCESS_DENIED = 1142
ER_PARSE = 1064
ER_UNKNOWN_COM = 1047
ER_UNKNOWN_STMT = 1243
ER_NO_SUCH_THREAD = 1094
ER_UNKNOWN = 1105
# Removes the sql_mode flags that change tokenization from whatever the server's default is.
PIN_SQL_MODE = (
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(REPLACE(REPLACE(CONCAT(',', "
    "@@sql_mode, ','), ',ANSI_QUOTES,', ','), ',NO_BACKSLASH_ESCAPES,', ','), ',ANSI,', ','))"
)
_USE = re.compile(r"^\s*use\s+`?([^`;\s]+)`?", re.IGNORECASE)
_KILL = re.compile(r"^\s*kill\s+(query\s+|connection\s+)?(\d+)\s*;?\s*$", re.IGNORECASE)


@dataclass
class Prepared:
    sql: str
    decision: Decision
    generation: int
    masks: list[Mask | None] | None = None
    types: list[int] = field(default_factory=list)


class Refused(Exception):
    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload


def refusal(decision: Decision) -> bytes:
    """The ERR packet for a decision that does not run: MySQL code + SQLSTATE, naming the rule."""
    message = f"Warden: {decision.message or 'statement denied by policy'}"
    if decision.rule:
        message += f" (rule: {decision.rule})"
    if decision.rule == "unparseable":
        return p.err_packet(ER_PARSE, "42000", message)
    if decision.rule in ("no_bundle", "catalog_unavailable"):
        return p.err_packet(ER_UNKNOWN, "HY000", message)
    return p.err_packet(ER_TABLEACCESS_DENIED, "42000", message)


class MySqlSession:
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
        self.connection_id = agent.next_connection_id()
        self.prepared: dict[int, Prepared] = {}
        self.reply_seq = 1
        self._masks: dict[tuple[int, bytes], tuple[Decision, Shape]] = {}
        # Audit fields per (decision, result index): JSON-encoded once, not per statement.
        self._fragments: dict[tuple[int, int], tuple[Decision, str]] = {}

    # ------------------------------------------------------------ login

    async def run(self) -> None:
        try:
            if await self._login():
                await self._relay()
        except (asyncio.IncompleteReadError, ConnectionError, p.ProtocolError) as exc:
            log.debug("session ended: %r", exc)
        finally:
            self.agent.connections.pop(self.connection_id, None)
            for stream in (self.upstream.writer if self.upstream else None, self.writer):
                if stream is not None:
                    stream.close()

    async def _login(self) -> bool:
        agent = self.agent
        if not agent.server_version:
            agent.server_version = await self._probe_version()
        config = agent.config
        handshake = p.ServerHandshake(
            server_version=agent.server_version,
            connection_id=self.connection_id,
            nonce=new_nonce(),
            capabilities=p.AGENT_CAPABILITIES | (p.CLIENT_SSL if agent.ssl_context else 0),
            charset=p.UTF8MB4_GENERAL_CI,
            status=p.SERVER_STATUS_AUTOCOMMIT,
            plugin=NATIVE if config.client_auth == "scram" else CACHING_SHA2,
        )
        policy = ClientAuthPolicy(
            config.client_auth, config.allow_insecure_listen, agent.cleartext_loopback
        )
        try:
            login = await accept_client(
                self.reader,
                self.writer,
                handshake=handshake,
                ssl_context=agent.ssl_context,
                policy=policy,
                logins=agent.logins,
            )
        except AuthRefused as exc:
            await self._send_login_error(str(exc), seq=exc.seq)
            return False
        self.reader, self.writer = login.reader, login.writer
        error = await self._check_login(login)
        if error is None:
            error = await self._open_upstream(login.handshake)
        if error is not None:
            await self._send_login_error(error, seq=login.seq)
            return False
        for stream in (self.writer, self.upstream.writer if self.upstream else None):
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data, _ = p.frame(p.ok_packet(), login.seq)
        self.writer.write(data)
        await self.writer.drain()
        return True

    async def _probe_version(self) -> str:
        """The upstream's version string, offered to clients as the agent's own (clients
        pick MariaDB or MySQL behaviour from it)."""
        reader, writer = await asyncio.open_connection(
            self.agent.config.upstream.host, self.agent.config.upstream.port
        )
        try:
            _, payload = await p.read_payload(reader)
            return p.ServerHandshake.parse(payload).server_version
        finally:
            writer.close()

    async def _check_login(self, login: ClientLogin) -> str | None:
        """The token (sent over TLS) checked, or the matched verifier reported, with the
        control plane; an error message for the client, or None with ``identity`` set."""
        user = login.handshake.user
        peer = self.writer.get_extra_info("peername")
        try:
            if login.token is not None:
                result = await self.agent.authenticate(user, login.token)
            else:
                assert login.verifiers is not None
                result = await self.agent.logins.record(
                    login.verifiers,
                    login.matched,
                    mechanism=NATIVE,
                    source_address=str(peer[0]) if isinstance(peer, tuple) else "",
                )
        except ControlPlaneUnavailable:
            return "Warden: the control plane is unreachable and the token is not cached"
        if not result.ok:
            return f"Warden: access denied for {user!r}: unknown or revoked token"
        if self.agent.engine is None:
            return "Warden: no valid policy bundle loaded; connections are refused"
        self.identity = Identity(result.identity, result.kind, frozenset(result.groups))
        return None

    async def _open_upstream(self, client: p.ClientHandshake) -> str | None:
        config = self.agent.config.upstream
        charset = client.charset if client.charset in SAFE_COLLATIONS else p.UTF8MB4_GENERAL_CI
        database = client.database or config.database or None
        try:
            self.upstream = await connect_upstream(
                config, capabilities=client.capabilities, charset=charset, database=database
            )
            await self._pin_session()
        except (OSError, p.ProtocolError, asyncio.IncompleteReadError) as exc:
            log.warning("upstream login failed: %s", exc)
            return f"Warden: cannot log in to the database: {exc}"
        self.database = database
        assert self.identity is not None
        self.agent.connections[self.connection_id] = (
            self.identity.name,
            self.upstream.handshake.connection_id,
        )
        return None

    async def _pin_session(self) -> None:
        answer = await self._upstream_command(bytes((p.COM_QUERY,)) + PIN_SQL_MODE.encode())
        if p.is_err(answer):
            raise p.ProtocolError(f"cannot pin sql_mode: {p.ServerError.parse(answer).message}")

    async def _upstream_command(self, payload: bytes) -> bytes:
        """A command of the agent's own on the upstream connection; its one-packet answer."""
        assert self.upstream is not None
        data, _ = p.frame(payload, 0)
        self.upstream.writer.write(data)
        await self.upstream.writer.drain()
        return await self._upstream_payload()

    async def _send_login_error(self, message: str, *, seq: int) -> None:
        data, _ = p.frame(p.err_packet(ER_ACCESS_DENIED, "28000", message), seq)
        self.writer.write(data)
        await self.writer.drain()

    # ------------------------------------------------------------ relaying

    async def _relay(self) -> None:
        """Both sockets on transport callbacks until either side ends."""
        assert self.upstream is not None
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        client = self.client = cast(asyncio.Transport, self.writer.transport)
        upstream = cast(asyncio.Transport, self.upstream.writer.transport)
        self.to_upstream = PacketRelay(client, upstream, self.commands, self._next_commands, done)
        self.to_client = PacketRelay(
            upstream, client, self.upstream_packets, self._next_results, done
        )
        self.to_upstream.peer, self.to_client.peer = self.to_client, self.to_upstream
        relays = (self.to_upstream, self.to_client)
        try:
            relay_core.attach(self.to_upstream, self.reader)
            relay_core.attach(self.to_client, self.upstream.reader)
            error = await done
            expected = asyncio.IncompleteReadError | ConnectionError | p.ProtocolError
            if error is not None and not isinstance(error, expected):
                log.error("session ended by %r", error, exc_info=error)
            elif error is not None:
                log.debug("session ended: %r", error)
        finally:
            await relay_core.stop(relays)

    def _next_commands(self) -> None:
        """The client's buffered commands, one at a time: each waits for the answer to the
        one before (``busy``)."""
        relay = self.to_upstream
        assert relay is not None
        commands = self.commands
        while not relay.busy:
            payload = commands.take()
            if payload is None:
                return
            self.reply_seq = commands.seq + 1  # a split command takes several sequence ids
            self._command(payload)

    def _next_results(self) -> None:
        """The answer in flight, on the upstream packets buffered; then the next one's."""
        while not self.to_client.busy:
            results = self.results
            if results is None or not results.advance(self.upstream_packets):
                return

    def results_done(self, succeeded: bool, after: Callable[[bool], None] | None) -> None:
        """The answer went out whole: its command is done, the next may start."""
        self.results = None
        if after is not None:
            after(succeeded)
        assert self.to_upstream is not None
        self.to_upstream.resume()

    def _expect(self, results: Results) -> None:
        self.results = results
        assert self.to_upstream is not None
        self.to_upstream.busy = True  # the next command waits for this answer

    def _slow(self, handler: Coroutine[Any, Any, None]) -> None:
        assert self.to_upstream is not None
        self.to_upstream.run_slow(self._handled(handler))

    async def _handled(self, handler: Coroutine[Any, Any, None]) -> bool:
        await handler
        return self.results is None  # else the answer's end lets the next command start

    _HANDLERS: dict[int, Callable[[MySqlSession, bytes], Coroutine[Any, Any, None]]] = {}

    def _command(self, payload: bytes) -> None:
        relay = self.to_upstream
        assert relay is not None
        if not payload or payload[0] == p.COM_QUIT:
            relay.finish()
            return
        command = payload[0]
        if command == p.COM_QUERY:
            if not self._query_now(payload):
                self._slow(self._query(payload))
            return
        if command == p.COM_STMT_EXECUTE:
            prepared = self._current_now(payload)
            if prepared is not None:
                self._run_execute(payload, prepared)
            else:
                self._slow(self._execute(payload))
            return
        if command == p.COM_CHANGE_USER:
            self._reply(
                p.err_packet(
                    ER_ACCESS_DENIED,
                    "28000",
                    "Warden: COM_CHANGE_USER is not supported; open a new connection",
                )
            )
            relay.finish()
            return
        handler = self._HANDLERS.get(command)
        if handler is None:
            self._reply(
                p.err_packet(
                    ER_UNKNOWN_COM, "08S01", f"Warden: command {command:#04x} is not supported"
                )
            )
            return
        self._slow(handler(self, payload))

    def _reply(self, *payloads: bytes) -> None:
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

    async def _init_db(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if answer[:1] == b"\x00":
            self.database = payload[1:].decode(errors="replace")
        self._reply(answer)

    async def _reset_connection(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if answer[:1] == b"\x00":
            self.prepared.clear()
            await self._pin_session()  # the session's sql_mode is the global one again
        self._reply(answer)

    # ------------------------------------------------------------ decisions

    def _decided_now(self, sql: str) -> Decision | None:
        """The decision to run ``sql`` under when it is cached and needs nothing awaited
        (no estimate, no hold, not refused); else None: then ``_decide_to_run``."""
        decision = self.agent.decide_cached(self.identity, sql, self.database)
        if decision is None or decision.row_limits or decision.action not in (ALLOW, MASK):
            return None
        return decision

    async def _decide(self, sql: str) -> Decision:
        assert self.identity is not None
        agent = self.agent
        cached = agent.decide_cached(self.identity, sql, self.database)
        decision = (
            cached if cached is not None else await agent.decide(self.identity, sql, self.database)
        )
        if not decision.row_limits:  # nothing for the planner to estimate
            return decision
        return await agent.row_limits_checked(decision, sql, self.database)

    async def _decide_to_run(self, sql: str) -> Decision | bytes:
        """The decision to run ``sql`` under, or the ERR packet refusing it (holds included)."""
        decision = await self._decide(sql)
        if decision.action == HOLD:
            assert self.identity is not None
            held = await hold_statement(self, sql, decision)
            if isinstance(held, bytes):
                return held
            decision = held
        if decision.action in (ALLOW, MASK):
            return decision
        self._audit(decision, 0, rows=None, duration_ms=0.0, error=False)
        return refusal(decision)

    def _audit(
        self,
        decision: Decision,
        index: int,
        *,
        rows: int | None,
        sent_bytes: int = 0,  # the rows' payload bytes, after masking
        duration_ms: float,
        error: bool,
    ) -> None:
        assert self.identity is not None
        cached = self._fragments.get((id(decision), index))
        if cached is None or cached[0] is not decision:
            fragment = statement_fragment(
                identity=self.identity.name,
                datasource=self.agent.config.datasource,
                client_address=self.client_address,
                decision=decision,
                index=index,
                action=decision.action,
            )
            if len(self._fragments) > 1000:
                self._fragments.clear()
            cached = self._fragments[(id(decision), index)] = (decision, fragment)
        self.agent.audit.record_statement(cached[1], rows, duration_ms, error, sent_bytes)
        self.agent.metrics.statements.observe(decision.action, duration_ms / 1000.0)

    def audit_done(
        self,
        decision: Decision,
        index: int,
        rows: int | None,
        started: float,
        error: bool,
        sent_bytes: int = 0,
    ) -> None:
        self._audit(
            decision,
            index,
            rows=rows,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            error=error,
            sent_bytes=sent_bytes,
        )

    # ------------------------------------------------------------ COM_QUERY

    def _query_now(self, payload: bytes) -> bool:
        """Run a query whose decision is cached, without a coroutine; False if it needs
        the slow path (``_query``)."""
        sql = payload[1:].decode(errors="surrogateescape")
        decision = self._decided_now(sql)
        if decision is None or _KILL.match(sql) is not None:
            return False
        self._run_query(payload, sql, decision)
        return True

    async def _query(self, payload: bytes) -> None:
        sql = payload[1:].decode(errors="surrogateescape")
        decided = await self._decide_to_run(sql)
        if isinstance(decided, bytes):
            self._reply(decided)
            return
        killed = _KILL.match(sql)
        if killed is not None:
            query_only = (killed.group(1) or "").lower().startswith("query")
            await self._kill(int(killed.group(2)), query_only)
            return
        self._run_query(payload, sql, decided)

    def _run_query(self, payload: bytes, sql: str, decision: Decision) -> None:
        started = time.perf_counter()
        self._send_upstream(payload)
        after = None
        if "use" in decision.kinds or decision.invalidates_catalog:
            after = functools.partial(self._query_done, sql, decision)
        self._expect(Results(self, decision, started, binary=False, after=after))

    def _query_done(self, sql: str, decision: Decision, ok: bool) -> None:
        if ok and "use" in decision.kinds:
            match = _USE.match(sql)
            self.database = match.group(1) if match else self.database
        if ok and decision.invalidates_catalog:
            self.agent.invalidate_after_ddl()

    # ------------------------------------------------------------ masks per result shape

    def cached_shape(self, decision: Decision, definitions: list[bytes]) -> Shape | None:
        """The masks and types of a result shape seen before under this decision."""
        cached = self._masks.get((id(decision), b"\x00".join(definitions)))
        if cached is not None and cached[0] is decision:
            return cached[1]
        return None

    async def masks_for(self, decision: Decision, definitions: list[bytes]) -> Shape:
        key = (id(decision), b"\x00".join(definitions))
        columns = [ColumnDef.parse(d) for d in definitions]
        types = [c.type for c in columns]
        masks = [
            await self._column_mask(decision, position, c) for position, c in enumerate(columns)
        ]
        found = masks if any(m is not None for m in masks) else None
        if len(self._masks) > 1000:
            self._masks.clear()
        self._masks[key] = (decision, (found, types))
        return found, types

    async def _column_mask(
        self, decision: Decision, position: int, column: ColumnDef
    ) -> Mask | None:
        """Origin first (the column definition names schema, table and column), then the
        static flow analysis for outputs without a base-table origin."""
        engine = self.agent.engine
        assert engine is not None and self.identity is not None
        base = (
            bool(column.org_table and column.org_name and column.schema)
            and f"{column.schema}.{column.org_table}" in decision.tables_read
            and not await self.agent.mysql_catalog.is_view(column.schema, column.org_table)
        )
        origin: Mask | None = None
        if base:
            verdict = engine.column_verdict(
                self.identity,
                column.schema,
                column.org_table,
                column.org_name,
                decision.fingerprint,
            )
            if verdict.action == MASK:
                origin = Mask(verdict.method, verdict.param)
            elif verdict.action in (DENY, HOLD):
                origin = REDACT  # the analysis should have refused; fail closed
        derived = decision.derived_positions
        direct = decision.direct_masked_positions
        if derived is None or position in derived:
            return REDACT if origin is None or derived is not None else origin
        if not base and (direct is None or position in direct):
            return REDACT
        return origin

    # ------------------------------------------------------------ prepared statements

    async def _prepare(self, payload: bytes) -> None:
        sql = payload[1:].decode(errors="surrogateescape")
        decided = await self._decide_to_run(sql)
        if isinstance(decided, bytes):
            self._reply(decided)
            return
        self._send_upstream(payload)
        first = await self._upstream_payload()
        packets = [first]
        if first[:1] == b"\x00":
            statement_id, columns, params = struct.unpack_from("<IHH", first, 1)
            for count in (params, columns):
                if count:
                    packets += [await self._upstream_payload() for _ in range(count + 1)]
            self.prepared[statement_id] = Prepared(sql, decided, self.agent.generation)
        else:
            packets = [withheld(first, decided)]
        self._reply(*packets)

    def _current_now(self, payload: bytes) -> Prepared | None:
        """The prepared statement a command names when its decision still holds, else None
        (then ``_current``)."""
        prepared = self.prepared.get(struct.unpack_from("<I", payload, 1)[0])
        if (
            prepared is None
            or prepared.decision.valid_until <= time.time()
            or prepared.generation != self.agent.generation
        ):
            return None
        return prepared

    async def _current(self, payload: bytes) -> Prepared | bytes:
        """The prepared statement a command names, decided again when its decision expired
        or the bundle changed; or the ERR packet refusing the command."""
        statement_id = struct.unpack_from("<I", payload, 1)[0]
        prepared = self.prepared.get(statement_id)
        if prepared is None:
            return p.err_packet(
                ER_UNKNOWN_STMT,
                "HY000",
                f"Warden: unknown prepared statement handler ({statement_id})",
            )
        if self._current_now(payload) is None:
            decided = await self._decide_to_run(prepared.sql)
            if isinstance(decided, bytes):
                return decided
            prepared.decision, prepared.generation = decided, self.agent.generation
        return prepared

    async def _execute(self, payload: bytes) -> None:
        prepared = await self._current(payload)
        if isinstance(prepared, bytes):
            self._reply(prepared)
            return
        self._run_execute(payload, prepared)

    def _run_execute(self, payload: bytes, prepared: Prepared) -> None:
        started = time.perf_counter()
        self._send_upstream(payload)
        self._expect(Results(self, prepared.decision, started, binary=True, prepared=prepared))

    async def _fetch(self, payload: bytes) -> None:
        prepared = await self._current(payload)
        if isinstance(prepared, bytes):
            self._reply(prepared)
            return
        if not prepared.types:  # no cursor opened by an EXECUTE the agent relayed
            self._reply(
                p.err_packet(ER_UNKNOWN_STMT, "HY000", "Warden: no open cursor for this statement")
            )
            return
        self._send_upstream(payload)
        self._expect(
            Results(
                self,
                prepared.decision,
                time.perf_counter(),
                binary=True,
                prepared=prepared,
                rows_only=True,
            )
        )

    async def _close_statement(self, payload: bytes) -> None:
        statement_id = struct.unpack_from("<I", payload, 1)[0]
        if self.prepared.pop(statement_id, None) is not None:
            self._send_upstream(payload)  # no answer

    async def _long_data(self, payload: bytes) -> None:
        statement_id = struct.unpack_from("<I", payload, 1)[0]
        if statement_id in self.prepared:
            self._send_upstream(payload)  # no answer

    # ------------------------------------------------------------ KILL

    async def _process_kill(self, payload: bytes) -> None:
        await self._kill(struct.unpack_from("<I", payload, 1)[0], query_only=False)

    async def _kill(self, connection_id: int, query_only: bool) -> None:
        """KILL names the agent's connection id: map it to that session's upstream thread,
        for the same identity only; a statement held for review is cancelled too."""
        assert self.identity is not None
        target = self.agent.connections.get(connection_id)
        if target is None or target[0] != self.identity.name:
            self._reply(
                p.err_packet(ER_NO_SUCH_THREAD, "HY000", f"Unknown thread id: {connection_id}")
            )
            return
        holding = self.agent.holding.get(connection_id)
        if holding is not None:
            holding.set()
        verb = "KILL QUERY" if query_only else "KILL"
        self._send_upstream(bytes((p.COM_QUERY,)) + f"{verb} {target[1]}".encode())
        self._reply(await self._upstream_payload())


MySqlSession._HANDLERS.update(
    {
        p.COM_STMT_PREPARE: MySqlSession._prepare,
        p.COM_STMT_FETCH: MySqlSession._fetch,
        p.COM_STMT_CLOSE: MySqlSession._close_statement,
        p.COM_STMT_SEND_LONG_DATA: MySqlSession._long_data,
        p.COM_STMT_RESET: MySqlSession._forward_simple,
        p.COM_PING: MySqlSession._forward_simple,
        p.COM_STATISTICS: MySqlSession._forward_simple,
        p.COM_SET_OPTION: MySqlSession._forward_simple,
        p.COM_INIT_DB: MySqlSession._init_db,
        p.COM_RESET_CONNECTION: MySqlSession._reset_connection,
        p.COM_PROCESS_KILL: MySqlSession._process_kill,
    }
)
