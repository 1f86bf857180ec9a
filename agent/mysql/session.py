"""One MySQL client connection: login, then each command decided, relayed and audited.

The agent re-frames every packet it relays with its own sequence ids, so rewriting a row
(masking) or joining a split packet never desynchronises client and server.  Commands the
agent does not understand are refused (ER_UNKNOWN_COM_ERROR), never passed through.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
import time
from dataclasses import dataclass, field

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
from agent.mysql.rows import REDACT, ColumnDef, Mask, mask_binary_row, mask_text_row
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
SERVER_STATUS_CURSOR_EXISTS = 0x0040
_FLUSH_BYTES = 1 << 20  # rows are written on once this much is ready
_WITHHELD = (
    "Warden withheld the database's error message: the statement touches columns "
    "restricted for you and the message may quote their values"
)
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
        self.upstream_packets: p.PacketStream | None = None
        self.connection_id = agent.next_connection_id()
        self.prepared: dict[int, Prepared] = {}
        self.reply_seq = 1
        self._masks: dict[
            tuple[int, bytes], tuple[Decision, list[Mask | None] | None, list[int]]
        ] = {}
        # Audit fields per (decision, result index): JSON-encoded once, not per statement.
        self._fragments: dict[tuple[int, int], tuple[Decision, str]] = {}

    # ------------------------------------------------------------ login

    async def run(self) -> None:
        try:
            if await self._login():
                await self._commands()
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
            self.upstream_packets = p.PacketStream(self.upstream.reader)
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

    # ------------------------------------------------------------ commands

    async def _commands(self) -> None:
        handlers = {
            p.COM_QUERY: self._query,
            p.COM_STMT_PREPARE: self._prepare,
            p.COM_STMT_EXECUTE: self._execute,
            p.COM_STMT_FETCH: self._fetch,
            p.COM_STMT_CLOSE: self._close_statement,
            p.COM_STMT_SEND_LONG_DATA: self._long_data,
            p.COM_STMT_RESET: self._forward_simple,
            p.COM_PING: self._forward_simple,
            p.COM_STATISTICS: self._forward_simple,
            p.COM_SET_OPTION: self._forward_simple,
            p.COM_INIT_DB: self._init_db,
            p.COM_RESET_CONNECTION: self._reset_connection,
            p.COM_PROCESS_KILL: self._process_kill,
        }
        commands = p.PacketStream(self.reader)
        while True:
            payload = commands.ready()
            if payload is None:
                payload = await commands.payload()
            self.reply_seq = commands.seq + 1  # a split command takes several sequence ids
            if not payload or payload[0] == p.COM_QUIT:
                return
            command = payload[0]
            if command == p.COM_CHANGE_USER:
                await self._reply(
                    p.err_packet(
                        ER_ACCESS_DENIED,
                        "28000",
                        "Warden: COM_CHANGE_USER is not supported; open a new connection",
                    )
                )
                return
            handler = handlers.get(command)
            if handler is None:
                await self._reply(
                    p.err_packet(
                        ER_UNKNOWN_COM, "08S01", f"Warden: command {command:#04x} is not supported"
                    )
                )
                continue
            await handler(payload)

    async def _reply(self, *payloads: bytes) -> None:
        seq = self.reply_seq
        parts = []
        for payload in payloads:
            data, seq = p.frame(payload, seq)
            parts.append(data)
        self.writer.write(b"".join(parts))
        await self._drain()

    def _send_upstream(self, payload: bytes) -> None:
        assert self.upstream is not None
        data, _ = p.frame(payload, 0)
        self.upstream.writer.write(data)

    async def _upstream_payload(self) -> bytes:
        assert self.upstream_packets is not None
        payload = self.upstream_packets.ready()
        return await self.upstream_packets.payload() if payload is None else payload

    async def _forward_simple(self, payload: bytes) -> None:
        """A command answered by one packet (OK, ERR, or COM_STATISTICS's text)."""
        self._send_upstream(payload)
        await self._reply(await self._upstream_payload())

    async def _init_db(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if answer[:1] == b"\x00":
            self.database = payload[1:].decode(errors="replace")
        await self._reply(answer)

    async def _reset_connection(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if answer[:1] == b"\x00":
            self.prepared.clear()
            await self._pin_session()  # the session's sql_mode is the global one again
        await self._reply(answer)

    # ------------------------------------------------------------ decisions

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

    # ------------------------------------------------------------ COM_QUERY

    async def _query(self, payload: bytes) -> None:
        sql = payload[1:].decode(errors="surrogateescape")
        decided = await self._decide_to_run(sql)
        if isinstance(decided, bytes):
            await self._reply(decided)
            return
        killed = _KILL.match(sql)
        if killed is not None:
            query_only = (killed.group(1) or "").lower().startswith("query")
            await self._kill(int(killed.group(2)), query_only)
            return
        started = time.perf_counter()
        self._send_upstream(payload)
        ok = await self._relay_results(decided, started, binary=False)
        if ok and "use" in decided.kinds:
            match = _USE.match(sql)
            self.database = match.group(1) if match else self.database
        if ok and decided.invalidates_catalog:
            self.agent.invalidate_after_ddl()

    async def _relay_results(
        self, decision: Decision, started: float, *, binary: bool, prepared: Prepared | None = None
    ) -> bool:
        """Relay every result of one command (multi-statement, multi-result), masking rows.
        Returns whether the last one succeeded."""
        seq = self.reply_seq
        index = 0
        succeeded = True
        out: list[bytes] = []
        upstream = self.upstream_packets
        assert upstream is not None
        while True:
            first = upstream.ready()
            if first is None:
                first = await upstream.payload()
            if first[:1] in (b"\x00", b"\xff"):
                error = p.is_err(first)
                if error and decision.touches_restricted:
                    failure = p.ServerError.parse(first)
                    first = p.err_packet(failure.code, failure.sqlstate, _WITHHELD)
                data, seq = p.frame(first, seq)
                out.append(data)
                rows = None if error else p.read_lenenc_int(first, 1)[0]
                succeeded = not error
                self._audit_done(decision, index, rows, started, error)
                if error or not p.status_of(first) & p.SERVER_MORE_RESULTS_EXISTS:
                    break
                index += 1
                continue
            if first[:1] == b"\xfb":  # LOCAL INFILE request: never negotiated, fail closed
                raise p.ProtocolError("the database asked for a LOCAL INFILE transfer")
            count = p.read_lenenc_int(first, 0)[0] or 0
            # (column definitions and EOF packets are never empty: ``or`` is safe)
            definitions = [upstream.ready() or await upstream.payload() for _ in range(count)]
            eof = upstream.ready() or await upstream.payload()
            masks, types = await self._masks_for(decision, definitions)
            if prepared is not None:
                prepared.masks, prepared.types = masks, types
            for packet in (first, *definitions, eof):
                data, seq = p.frame(packet, seq)
                out.append(data)
            if binary and p.status_of(eof) & SERVER_STATUS_CURSOR_EXISTS:
                self._audit_done(decision, index, 0, started, False)
                break
            seq, rows, sent_bytes, last = await self._relay_rows(
                out, seq, masks, types, binary, decision
            )
            succeeded = not p.is_err(last)
            self._audit_done(decision, index, rows, started, p.is_err(last), sent_bytes)
            if p.is_err(last) or not p.status_of(last) & p.SERVER_MORE_RESULTS_EXISTS:
                break
            index += 1
        await self._flush(out)
        return succeeded

    async def _relay_rows(
        self,
        out: list[bytes],
        seq: int,
        masks: list[Mask | None] | None,
        types: list[int],
        binary: bool,
        decision: Decision,
    ) -> tuple[int, int, int, bytes]:
        """Relay one result's rows: (the next sequence id, rows sent, their payload bytes
        after masking, the packet that ended the result)."""
        key = self.agent.config.masking_key
        mask_row = mask_binary_row if binary else mask_text_row
        upstream = self.upstream_packets
        assert upstream is not None
        rows = sent_bytes = 0
        pending = sum(map(len, out))
        while True:
            if masks is None:  # unmasked rows numbered as the client's go out as they came
                verbatim, count = upstream.verbatim_rows(seq)
                if count:
                    out.append(verbatim)
                    pending += len(verbatim)
                    sent_bytes += len(verbatim) - 4 * count  # whole packets, one per row
                    rows += count
                    seq += count
                    if pending >= 1 << 16:
                        await self._flush(out)
                        pending = 0
            row = upstream.ready()
            if row is None:
                row = await upstream.payload()
            if p.is_eof(row) or p.is_err(row):
                if p.is_err(row) and decision.touches_restricted:
                    failure = p.ServerError.parse(row)
                    row = p.err_packet(failure.code, failure.sqlstate, _WITHHELD)
                data, seq = p.frame(row, seq)
                out.append(data)
                return seq, rows, sent_bytes, row
            rows += 1
            if masks is not None:
                row = mask_row(row, masks, types, key)
            sent_bytes += len(row)
            data, seq = p.frame(row, seq)
            out.append(data)
            pending += len(data)
            if len(out) > 256 or pending > _FLUSH_BYTES:  # stream, never hold, the result
                await self._flush(out)
                pending = 0

    async def _flush(self, out: list[bytes]) -> None:
        self.writer.write(b"".join(out))
        out.clear()
        await self._drain()

    async def _drain(self) -> None:
        """Wait while the client's socket is full.  A write that went out whole leaves
        nothing to wait for: most replies skip ``drain`` and its two coroutines."""
        if self.writer.transport.get_write_buffer_size():
            await self.writer.drain()

    def _audit_done(
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

    # ------------------------------------------------------------ masks per result shape

    async def _masks_for(
        self, decision: Decision, definitions: list[bytes]
    ) -> tuple[list[Mask | None] | None, list[int]]:
        key = (id(decision), b"\x00".join(definitions))
        cached = self._masks.get(key)
        if cached is not None and cached[0] is decision:
            return cached[1], cached[2]
        columns = [ColumnDef.parse(d) for d in definitions]
        types = [c.type for c in columns]
        masks = [
            await self._column_mask(decision, position, c) for position, c in enumerate(columns)
        ]
        found = masks if any(m is not None for m in masks) else None
        if len(self._masks) > 1000:
            self._masks.clear()
        self._masks[key] = (decision, found, types)
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
            await self._reply(decided)
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
        elif decided.touches_restricted:
            failure = p.ServerError.parse(first)
            packets = [p.err_packet(failure.code, failure.sqlstate, _WITHHELD)]
        await self._reply(*packets)

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
        decision = prepared.decision
        if decision.valid_until <= time.time() or prepared.generation != self.agent.generation:
            decided = await self._decide_to_run(prepared.sql)
            if isinstance(decided, bytes):
                return decided
            prepared.decision, prepared.generation = decided, self.agent.generation
        return prepared

    async def _execute(self, payload: bytes) -> None:
        prepared = await self._current(payload)
        if isinstance(prepared, bytes):
            await self._reply(prepared)
            return
        started = time.perf_counter()
        self._send_upstream(payload)
        await self._relay_results(prepared.decision, started, binary=True, prepared=prepared)

    async def _fetch(self, payload: bytes) -> None:
        prepared = await self._current(payload)
        if isinstance(prepared, bytes):
            await self._reply(prepared)
            return
        if not prepared.types:  # no cursor opened by an EXECUTE the agent relayed
            await self._reply(
                p.err_packet(ER_UNKNOWN_STMT, "HY000", "Warden: no open cursor for this statement")
            )
            return
        self._send_upstream(payload)
        out: list[bytes] = []
        await self._relay_rows(
            out, self.reply_seq, prepared.masks, prepared.types, True, prepared.decision
        )
        await self._flush(out)

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
            await self._reply(
                p.err_packet(ER_NO_SUCH_THREAD, "HY000", f"Unknown thread id: {connection_id}")
            )
            return
        holding = self.agent.holding.get(connection_id)
        if holding is not None:
            holding.set()
        verb = "KILL QUERY" if query_only else "KILL"
        self._send_upstream(bytes((p.COM_QUERY,)) + f"{verb} {target[1]}".encode())
        await self._reply(await self._upstream_payload())
