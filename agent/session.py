"""One client connection: startup and authentication, then two relays (asyncio.Protocol
callbacks on the client and upstream transports; see ``_Relay``).

Client → upstream: only message headers are read; Query/Parse/Bind/Execute get a policy
decision (cached), everything else is forwarded as bytes.  Denied work never reaches the
upstream: the agent sends a Sync in its place and puts its ErrorResponse in front of the
ReadyForQuery that Sync produces, so errors stay in order with pipelined results.

Upstream → client: an ordered queue of expected responses (one entry per forwarded
message that the server answers) tells which result a DataRow belongs to, so rows are
rewritten only for result sets that contain masked columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from agent import codec, masking, upstream
from agent.audit import BATCH_SIZE
from agent.catalog import BASE_RELKINDS
from agent.controlplane import AccessRequestRefused, ControlPlaneUnavailable, HeldRequest
from agent.decision import ALLOW, DENY, HOLD, MASK, Decision, Identity
from agent.metrics import LATENCY_BUCKETS
from agent.normalize import template_key
from agent.sql import PINNED_SETTINGS, is_pinned_value
from agent.upstream import UpstreamConnection, UpstreamError

log = logging.getLogger("agent.session")

try:  # the native data path (agent/_fastpath.c), built by scripts/bootstrap.sh
    from agent import _fastpath
except ImportError:  # pragma: no cover - exercised where the extension is not built
    _fastpath = None  # type: ignore[assignment]

_UNPACK_INT = struct.Struct("!i").unpack_from
_UNPACK_SHORT = struct.Struct("!h").unpack_from
_PACK_INT = struct.Struct("!i").pack
_NULL_VALUE = b"\xff\xff\xff\xff"
_MAX_TICKETS = 1000
_MAX_PASSWORD_MESSAGE = 65535 + 4  # PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, plus the length
_PASSWORD_TIMEOUT = 60.0  # PostgreSQL's authentication_timeout default
_READ_SIZE = 1 << 18
_HIGH_WATER = 1 << 20

# Per-column mask spec: (method, param, type oid, binary format)
MaskSpec = tuple[str, int | None, int, bool]


class ClientGone(Exception):
    pass


class SessionRefused(Exception):
    """The session cannot go on safely; the client gets this FATAL error."""

    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate, self.text = sqlstate, text


class HoldCancelled(Exception):
    """The client sent a CancelRequest while its statement waited for approval."""


# Sessions waiting for an approval, by the cancel key the agent gave their client.
_HOLDS: dict[tuple[int, int], asyncio.Event] = {}


@dataclass(slots=True)
class Prepared:
    """A protocol-level prepared statement (Parse)."""

    sql: str
    decision: Decision
    fields: list[codec.FieldDescription] | None = None
    # The RowDescription bytes ``fields`` came from (the agent's own Describe).
    described: bytes | None = None
    # Agent.generation when ``decision`` was made: a new bundle or DDL decides again.
    generation: int = -1
    masks: dict[tuple[int, ...], list[MaskSpec | None] | None] = field(default_factory=dict)


@dataclass(slots=True)
class Pending:
    """One expected response (or response group) from upstream."""

    kind: str  # P B D DS E C S Q
    prepared: Prepared | None = None
    decision: Decision | None = None
    formats: tuple[int, ...] = ()
    started: float = 0.0
    inject: list[bytes] | tuple[()] = ()
    error_seen: bool = False
    statement_index: int = 0
    rows: int | None = None
    # Parse/Bind: (statements or portals, name, the entry it replaced or _ABSENT), undone
    # when the server refuses the message or skips it after an earlier error.
    undo: tuple[dict[str, Any], str, Any] | None = None
    # A named statement or portal bound again while the agent knows an older one: the
    # server refuses that (42P05/42P03) unless the older one is gone.  Past this message's
    # Sync, until the answer comes, the agent cannot tell which one the server holds, so
    # the name stays unknown (refused) until then; this is the new value to install.
    confirm: Any = None
    # A Sync sent after a COPY ... FROM STDIN (this entry) and before the client's CopyDone or
    # CopyFail: the server ignores it if it did enter copy-in mode (CopyInResponse).
    copy_of: Any = None


_ABSENT: Any = object()


class Session:
    def __init__(
        self,
        agent: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.agent = agent
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.identity: Identity | None = None
        self.upstream: UpstreamConnection | None = None
        # expect, statements, portals, _origin_masks and _audit_fragments are changed in
        # place, never rebound: the native data path holds on to them.
        self.expect: deque[Pending] = deque()
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, tuple[Prepared | None, tuple[int, ...]]] = {}
        self.discarding = False
        self.discard_error: list[bytes] = []
        self.row_mask: list[tuple[int, MaskSpec]] | None = None
        self.search_path: tuple[str, ...] | None = None
        self.cancel_key: tuple[int, int] | None = None
        self._audit_fragments: dict[tuple[int, int, str], tuple[Decision, str]] = {}
        self._origin_masks: dict[
            tuple[int, bytes], tuple[Decision, list[tuple[int, MaskSpec]] | None]
        ] = {}
        self._origin_engine: Any = None
        self._described: dict[bytes, list[codec.FieldDescription]] = {}
        self.fast: Any = None  # the native data path, when built and enabled
        # COPY FROM STDIN: the entry whose copy-in a Sync may fall into, and whether the
        # server is in copy-in mode now (it ignores Sync and Flush there).
        self._copy_owner: Pending | None = None
        self._copy_in_active = False
        # SQL PREPAREs made through the agent: name -> (the text that prepared it, its
        # decision, the engine that made it). EXECUTE re-runs a plan the agent checked only
        # then: that decision must still hold.
        self._sql_prepared: dict[str, tuple[str, Decision, Any]] = {}
        self._sql_cursors: dict[str, tuple[str, Decision, Any]] = {}  # DECLAREd, likewise

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        metrics = self.agent.metrics
        try:
            accepted = await self._startup()
        except (ConnectionError, asyncio.IncompleteReadError, codec.ProtocolError, ClientGone):
            accepted = False
        if not accepted:
            metrics.connections_total.labels("rejected").inc()
            await self._close_client()
            return
        metrics.connections_total.labels("accepted").inc()
        metrics.connections_open.inc()
        try:
            await self._relay()
        finally:
            metrics.connections_open.dec()
            if self.cancel_key is not None:
                self.agent.cancel_keys.pop(self.cancel_key, None)
            if self.upstream is not None:
                self.upstream.close()
            await self._close_client()

    async def _close_client(self) -> None:
        with contextlib.suppress(Exception):
            await self.writer.drain()
        with contextlib.suppress(Exception):
            self.writer.close()

    async def _relay(self) -> None:
        assert self.upstream is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        client_t = cast(asyncio.Transport, self.writer.transport)
        up_t = cast(asyncio.Transport, self.upstream.writer.transport)
        up_reader = self.upstream.reader
        relays = to_upstream, to_client = self._relay_pair(client_t, up_t, up_reader, done)
        self.attach_fast_path(to_upstream, to_client)
        for relay, reader in ((to_upstream, self.reader), (to_client, up_reader)):
            relay.sink.set_write_buffer_limits(high=_HIGH_WATER)
            # Bytes the StreamReader already holds are processed first, in order.
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
        try:
            error = await done
            if isinstance(error, codec.ProtocolError):
                log.warning("session %s: protocol violation: %s", self.client_address, error)
                with contextlib.suppress(Exception):
                    self._fatal("08P01", f"protocol violation: {error}")
            elif isinstance(error, SessionRefused):
                log.warning("session %s ended: %s", self.client_address, error.text)
                with contextlib.suppress(Exception):
                    self._fatal(error.sqlstate, error.text)
            elif error is not None and not isinstance(
                error, ConnectionError | asyncio.IncompleteReadError
            ):
                log.error("session %s ended by %r", self.client_address, error, exc_info=error)
        finally:
            for relay in relays:
                if relay.task is not None:
                    relay.task.cancel()
            for relay in relays:
                if relay.task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await relay.task

    def _relay_pair(
        self,
        client: Any,
        upstream: Any,
        upstream_reader: asyncio.StreamReader,
        done: asyncio.Future[BaseException | None],
    ) -> tuple[_Relay, _Relay]:
        """(client → upstream, upstream → client) relays over these transports."""
        to_upstream = _Relay(
            self._client_step, self._client_slow, client, upstream, 88, self, self.reader, done
        )
        to_client = _Relay(
            self._backend_step,
            self._backend_slow,
            upstream,
            client,
            -1,
            self,
            upstream_reader,
            done,
        )
        to_upstream.peer, to_client.peer = to_client, to_upstream
        return to_upstream, to_client

    def attach_fast_path(self, to_upstream: _Relay, to_client: _Relay) -> None:
        """Let the native data path handle round trips whose decisions are all cached."""
        if _fastpath is None or not self.agent.config.native:
            return
        self.fast = _fastpath.FastPath(
            self,
            self.agent,
            to_upstream,
            to_client,
            masking.mask_wire_value,
            self.agent.config.masking_key,
            self._fast_resume,
            self.agent.metrics.statements,
            LATENCY_BUCKETS,
            self.agent.audit._wakeup.set,
            BATCH_SIZE,
            _Relay.data_received,
        )
        to_upstream.fast = self.fast.client
        to_client.fast = self.fast.backend
        # The transports call these directly: no Python frame per chunk.
        to_upstream.data_received = self.fast.client_received  # type: ignore[method-assign]
        to_client.data_received = self.fast.backend_received  # type: ignore[method-assign]

    def _fast_resume(self, state: tuple[Any, ...]) -> None:
        """The native path hands back the rest of a round trip: the Pending entries the
        Python path would hold at this point, and the armed row masks."""
        if state[0] == "Q":
            _, decision, started, stage, row_mask = state
            entry = Pending("Q", decision=decision, started=started)
            entry.statement_index = 1 if stage == 2 else 0
            self.expect.append(entry)
            self.row_mask = row_mask
            return
        _, remaining, prepared, decision, formats, started, row_mask, portal = state
        if "d" in remaining:
            # The agent's own Describe answered with a new shape (or not yet): a fresh
            # statement learns it, so the shared one's cached masks are never applied to it.
            fresh = Prepared(prepared.sql, decision, generation=prepared.generation)
            for name, known in list(self.statements.items()):
                if known is prepared:
                    self.statements[name] = fresh
            self.portals[portal] = (fresh, formats)
            tickets = self.fast.p_tickets
            for key in [k for k, t in tickets.items() if t[1] is prepared]:
                del tickets[key]
            prepared = fresh
        for kind in remaining:
            if kind == "E":
                entry = Pending("E", prepared, decision, formats, started)
            elif kind == "d":
                entry = Pending("DS", prepared)
            elif kind == "P":  # the native path handles the unnamed statement only
                entry = Pending("P", undo=(self.statements, "", _ABSENT))
            elif kind == "B":  # and the unnamed portal
                entry = Pending("B", undo=(self.portals, "", _ABSENT))
            else:
                entry = Pending(kind)
            self.expect.append(entry)
        self.row_mask = row_mask

    def _fast_ticket_query(self, text: str, decision: Decision) -> None:
        """Let the native path replay this simple-protocol decision for texts that
        normalize the same way (the Normalizer's template), or for this exact text."""
        if len(decision.statements) > 1 or decision.counted_grants:
            return
        raw = text.encode()
        key = template_key(raw)
        fixed = self.agent.normalizer.fixed_pieces(raw, key)
        tickets = self.fast.q_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[key] = (fixed or ((0, len(raw), raw),), decision, self.agent.generation)

    def _fast_ticket_parse(self, payload: bytes, name: str, prepared: Prepared) -> None:
        """Let the native path replay this Parse (same bytes) with the same statement.
        Only the unnamed statement: a named Parse can fail (the name exists) and leave
        the server's statement in place, which Python undoes (see ``_on_error``)."""
        decision = prepared.decision
        if name or len(decision.statements) > 1 or decision.counted_grants:
            return
        tickets = self.fast.p_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[payload] = (
            name,
            prepared,
            decision,
            self.agent.generation,
            decision.action == MASK,
        )

    def _client_step(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        if self.discarding and kind != 83 and kind != 88:  # 'S' and 'X' still count
            return b""
        if kind == 99 or kind == 102:  # 'c' CopyDone, 'f' CopyFail: copy-in ends
            self._copy_owner, self._copy_in_active = None, False
            return None
        if kind == 69 and not self.expect:  # 'E' answered first: nothing ahead arms its masks
            armed = self._portal_mask_if_head(data[pos + 5 : end])
            if armed is _SLOW:
                return _SLOW
            result = self._on_client_sync(kind, data[pos + 5 : end])
            self.row_mask = armed
            return result
        if kind in _SYNC_FRONTEND:
            return self._on_client_sync(kind, data[pos + 5 : end])
        if kind in _HANDLED_FRONTEND:
            return self._on_client_fast(kind, data[pos + 5 : end])
        return None

    async def _client_slow(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        return await self._on_client_message(kind, data[pos + 5 : end])

    def _backend_step(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        if kind == 68:  # 'D' DataRow — the hot path
            if self.row_mask is not None:
                return self._mask_row(data[pos + 5 : end], self.row_mask)
            return None
        if kind in _HANDLED_BACKEND:
            return self._on_backend_fast(kind, data, pos, end)
        if kind == 83:  # 'S' ParameterStatus
            _check_pinned_setting(data[pos + 5 : end])
        elif kind == 78 and self.expect:  # 'N' NoticeResponse: warnings quote values too
            return _withheld_notice(self.expect[0].decision, data[pos + 5 : end])
        elif kind == 71:  # 'G' CopyInResponse
            self._on_copy_in()
        return None

    def _on_copy_in(self) -> None:
        """The server entered copy-in mode: the Syncs the client sent into it are ignored."""
        expect = self.expect
        if not expect:
            return
        head = expect[0]
        kept = [entry for entry in expect if entry.copy_of is not head]
        if len(kept) != len(expect):
            expect.clear()
            expect.extend(kept)
        if self._copy_owner is head:
            self._copy_in_active = True

    async def _backend_slow(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        return await self._on_backend_message(kind, data, pos, end)

    def _fatal(self, code: str, text: str) -> None:
        self.writer.write(codec.error_response(code, text, severity="FATAL"))

    # ------------------------------------------------------------ startup

    async def _read_startup(self) -> tuple[int, bytes]:
        length = _UNPACK_INT(await self.reader.readexactly(4))[0]
        if length < 8 or length > 10_000:
            raise codec.ProtocolError("bad startup packet length")
        body = await self.reader.readexactly(length - 4)
        return _UNPACK_INT(body)[0], body[4:]

    async def _startup(self) -> bool:
        while True:
            code, body = await self._read_startup()
            if code == codec.SSL_REQUEST:
                if self.agent.ssl_context is not None:
                    self.writer.write(b"S")
                    await self.writer.drain()
                    await self.writer.start_tls(self.agent.ssl_context)
                else:
                    self.writer.write(b"N")
                continue
            if code == codec.GSSENC_REQUEST:
                self.writer.write(b"N")
                continue
            if code == codec.CANCEL_REQUEST:
                await self._cancel(body)
                return False
            if code != codec.PROTOCOL_3_0:
                self._fatal("0A000", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
                return False
            return await self._login(codec.parse_startup_params(body))

    async def _cancel(self, body: bytes) -> None:
        if len(body) < 8:  # a truncated CancelRequest: nothing to cancel
            self.writer.close()
            return
        pid, secret = struct.unpack("!ii", body[:8])
        waiting = _HOLDS.get((pid, secret))
        if waiting is not None:  # a held statement: stop waiting for its review
            waiting.set()
        target = self.agent.cancel_keys.get((pid, secret))
        if target is not None:
            with contextlib.suppress(OSError):
                await upstream.send_cancel(self.agent.config.upstream, *target)
        self.writer.close()

    async def _login(self, params: dict[str, str]) -> bool:
        user = params.get("user", "")
        if params.get("replication"):
            self._fatal("28000", "replication connections are not supported by the agent")
            return False
        if self.agent.store.current is None:
            self._fatal(
                "08004",
                "warden agent has no valid policy bundle; refusing connections "
                "until one is loaded (fail closed)",
            )
            return False
        unpinned = _unpinned_startup_setting(params)
        if unpinned is not None:
            self._fatal("0A000", unpinned)
            return False
        self.writer.write(codec.auth_request(codec.AUTH_CLEARTEXT))
        await self.writer.drain()
        try:
            header = await asyncio.wait_for(self.reader.readexactly(5), _PASSWORD_TIMEOUT)
        except TimeoutError:
            self._fatal("08P01", "no password message within the authentication timeout")
            return False
        length = _UNPACK_INT(header, 1)[0]
        if header[:1] != b"p":
            raise ClientGone()
        if not 4 <= length <= _MAX_PASSWORD_MESSAGE:  # PostgreSQL's own bound on auth packets
            self._fatal("08P01", "invalid password message length")
            return False
        token = (await self.reader.readexactly(length - 4)).rstrip(b"\x00")
        try:
            auth = await self.agent.authenticate(user, token.decode(errors="replace"))
        except ControlPlaneUnavailable:
            self._fatal(
                "28000", "cannot verify the access token: Warden control plane is unreachable"
            )
            return False
        if not auth.ok:
            self._fatal(
                "28P01",
                f'Warden authentication failed for "{user}": '
                f"{auth.detail or 'unknown or revoked access token'}",
            )
            return False
        self.identity = Identity(auth.identity or user, auth.kind, frozenset(auth.groups))
        forwarded = {k: v for k, v in params.items() if k not in ("user", "database")}
        forwarded.update(PINNED_SETTINGS)  # the agent parses statements as the server will
        try:
            self.upstream = await upstream.connect(self.agent.config.upstream, forwarded)
        except (UpstreamError, OSError) as exc:
            self._fatal("08006", f"warden agent could not connect to the upstream database: {exc}")
            return False
        return await self._finish_login()

    async def _finish_login(self) -> bool:
        assert self.upstream is not None
        self.cancel_key = self.agent.issue_cancel_key(
            self.upstream.backend_pid, self.upstream.backend_secret
        )
        out = [
            codec.auth_request(codec.AUTH_OK),
            *self.upstream.parameter_messages,
            codec.backend_key_data(*self.cancel_key),
            codec.ready_for_query(self.upstream.transaction_status),
        ]
        self.writer.write(b"".join(out))
        await self.writer.drain()
        return True

    # ------------------------------------------------------------ client → upstream

    def _on_client_fast(self, kind: int, payload: bytes) -> Any:
        """The common cases without a coroutine: a cached, allowed decision.  Returns
        ``_SLOW`` (before changing any state) when the full async handler is needed."""
        if kind == 81:  # 'Q'
            decision = self.agent.decide_cached(
                self.identity, codec.parse_query(payload), self.search_path
            )
            if (
                decision is None
                or decision.action not in _PASS
                or decision.has_side_effects
                or decision.copies_in
            ):
                return _SLOW
            self.expect.append(Pending("Q", decision=decision, started=time.perf_counter()))
            if self.fast is not None:
                self._fast_ticket_query(codec.parse_query(payload), decision)
            return None
        if kind == 66:  # 'B'
            portal, statement, formats = codec.parse_bind(payload)
            prepared = self.statements.get(statement)
            if (
                prepared is None
                or prepared.decision.valid_until <= time.time()
                or prepared.generation != self.agent.generation
            ):
                return _SLOW
            undo = self._bind_name(self.portals, portal, (prepared, formats))
            self.expect.append(Pending("B", undo=undo))
            return None
        if kind == 80:  # 'P'
            name, sql = codec.parse_parse(payload)
            decision = self.agent.decide_cached(self.identity, sql, self.search_path)
            if (
                decision is None
                or decision.action not in _PASS
                or decision.has_side_effects
                or decision.copies_in
            ):
                return _SLOW
            prepared = Prepared(sql, decision, generation=self.agent.generation)
            self.expect.append(Pending("P", undo=self._bind_name(self.statements, name, prepared)))
            if self.fast is not None:
                self._fast_ticket_parse(payload, name, prepared)
            if decision.action == MASK:
                return self._describe_after_parse(prepared, payload, name)
            return None
        return _SLOW

    @staticmethod
    def _bind_name(names: dict[str, Any], name: str, value: Any) -> tuple[dict[str, Any], str, Any]:
        """Map a statement or portal name now (later messages refer to it) and return
        how to undo that if the server does not accept the message."""
        previous = names.get(name, _ABSENT)
        names[name] = value
        return (names, name, previous)

    def _portal_mask_if_head(self, payload: bytes) -> Any:
        """Row masks for an Execute that will be the head entry (a portal run in a later
        round trip of a transaction block, or after a suspension): from caches only, else
        ``_SLOW``; None when it needs none."""
        prepared, formats = self.portals.get(codec.parse_execute(payload), (None, ()))
        if prepared is None or prepared.decision.action != MASK:
            return None
        return self._cached_portal_mask(Pending("E", prepared, prepared.decision, formats))

    async def _on_client_message(self, kind: int, payload: bytes) -> bytes | None:
        """Handle one frontend message; return replacement bytes (b"" drops it)."""
        if kind == 69 and not self.expect:  # see _client_step
            result = self._on_client_sync(kind, payload)
            await self._advance()
            return result
        if kind == 81:  # 'Q'
            return await self._on_query(payload)
        if kind == 80:  # 'P'
            return await self._on_parse(payload)
        if kind == 66:  # 'B'
            return await self._on_bind(payload)
        return self._on_client_sync(kind, payload)

    def _on_client_sync(self, kind: int, payload: bytes) -> bytes | None:
        """Frontend messages whose handling never waits (Execute, Sync, Describe, ...)."""
        expect = self.expect
        if kind == 69:  # 'E'
            portal = codec.parse_execute(payload)
            prepared, formats = self.portals.get(portal, (None, ()))
            if prepared is None:
                # Never bound through the agent, or no longer known for sure (a refused
                # Bind, a Close the server may have skipped): what it runs is unknown.
                self._discard_with(
                    [
                        codec.error_response(
                            "34000",
                            f'Warden: portal "{portal}" is not known to the agent; bind it again',
                        )
                    ]
                )
                return b""
            entry = Pending("E", prepared, prepared.decision, formats, time.perf_counter())
            expect.append(entry)
            if prepared.decision.copies_in:
                self._copy_owner = entry
            return None
        if kind == 83:  # 'S'
            if self._copy_in_active:  # the server ignores it in copy-in mode
                return None
            self._unsettle_rebinds()
            entry = Pending("S", copy_of=self._copy_owner)
            if self.discarding:
                self.discarding = False
                entry.inject, self.discard_error = self.discard_error, []
                expect.append(entry)
                return codec.SYNC
            expect.append(entry)
            return None
        if kind == 68:  # 'D'
            expect.append(Pending("D"))
            return None
        if kind == 67:  # 'C'
            target, name = codec.parse_target(payload)
            if target == b"S":
                self.statements.pop(name, None)
            else:
                self.portals.pop(name, None)
            expect.append(Pending("C"))
            return None
        if kind == 70:  # 'F' FunctionCall: fast-path calls can reach any function; refuse.
            entry = Pending(
                "Q",
                inject=[
                    codec.error_response(
                        "42501",
                        "function calls over the fast-path protocol are not allowed by Warden",
                    )
                ],
            )
            expect.append(entry)
            return codec.SYNC
        return None

    def _unsettle_rebinds(self) -> None:
        """At Sync: names bound again in this segment are unknown until the server answers
        (inside the segment a refusal skips everything after it, past it nothing does)."""
        for entry in reversed(self.expect):
            if entry.kind == "S":
                return
            undo = entry.undo
            if undo is None or undo[2] is _ABSENT or undo[1] == "":
                continue
            names, name, _previous = undo
            if name in names:
                entry.confirm = names.pop(name)

    async def _decide(self, sql: str) -> Decision:
        assert self.identity is not None
        return await self.agent.decide(self.identity, sql, self.search_path)  # type: ignore[no-any-return]

    async def _on_query(self, payload: bytes) -> bytes | None:
        sql = codec.parse_query(payload)
        decision = await self._decide(sql)
        if decision.action == HOLD:
            outcome = await self.hold(sql, decision)
            if isinstance(outcome, list):
                self.expect.append(Pending("Q", decision=decision, inject=outcome))
                return codec.SYNC
            decision = outcome
        decision = await self._sql_prepared_check(decision, sql)
        if decision.action in (DENY, HOLD):
            messages = await self._refusal(decision)
            self.expect.append(Pending("Q", decision=decision, inject=messages))
            return codec.SYNC
        self._note_side_effects(decision)
        entry = Pending("Q", decision=decision, started=time.perf_counter())
        self.expect.append(entry)
        if decision.copies_in:
            self._copy_owner = entry
        return None

    async def _sql_prepared_check(self, decision: Decision, sql: str) -> Decision:
        """EXECUTE of a SQL PREPARE, FETCH/MOVE in a SQL cursor, only while the decision made
        at PREPARE/DECLARE still holds (its grants, this bundle), else decided again; records
        PREPAREs, DECLAREs and their ends.  Errors of the run are withheld like the
        original's would be."""
        if decision.action not in _PASS:
            return decision
        for names, made_by, kind in (
            (decision.sql_executes, self._sql_prepared, "prepared statement"),
            (decision.sql_fetches, self._sql_cursors, "cursor"),
        ):
            for name in names:
                made = await self._still_allowed(made_by, name)
                if made is None:
                    return Decision(
                        DENY,
                        rule="stale_prepared_statement",
                        message=f'{kind} "{name}" was not made through the agent or is no '
                        "longer allowed by the policy in force (a grant ended or the policy "
                        "changed); make it again",
                    )
                decision.touches_restricted |= made[1].touches_restricted
        for name in decision.sql_deallocates:  # one namespace with protocol statements
            if name:
                self._sql_prepared.pop(name, None)
                self.statements.pop(name, None)
            else:
                self._sql_prepared.clear()
                self.statements.clear()
        for name in decision.sql_closes:
            if name:
                self._sql_cursors.pop(name, None)
            else:
                self._sql_cursors.clear()
        for name in decision.sql_prepares:
            self._sql_prepared[name] = (sql, decision, self.agent.engine)
        for name in decision.sql_declares:
            self._sql_cursors[name] = (sql, decision, self.agent.engine)
        return decision

    async def _still_allowed(
        self, made_by: dict[str, tuple[str, Decision, Any]], name: str
    ) -> tuple[str, Decision, Any] | None:
        made = made_by.get(name)
        if made is not None and (
            made[1].valid_until <= time.time() or made[2] is not self.agent.engine
        ):
            again = await self._decide(made[0])
            made = (made[0], again, self.agent.engine) if again.action in _PASS else None
            if made is None:
                made_by.pop(name, None)
            else:
                made_by[name] = made
        return made

    def _note_side_effects(self, decision: Decision) -> None:
        if decision.search_path is not None:
            self.search_path = tuple(decision.search_path)
            if self.fast is not None:  # tickets hold decisions made under the old path
                self.fast.forget()
        if decision.invalidates_catalog:
            self.agent.invalidate_after_ddl()

    async def _on_parse(self, payload: bytes) -> bytes | None:
        name, sql = codec.parse_parse(payload)
        decision = await self._decide(sql)
        if decision.action == HOLD:
            outcome = await self.hold(sql, decision)
            if isinstance(outcome, list):
                self._discard_with(outcome)
                return b""
            decision = outcome
        decision = await self._sql_prepared_check(decision, sql)
        if decision.action in (DENY, HOLD):
            await self._start_discard(decision)
            return b""
        self._note_side_effects(decision)
        prepared = Prepared(sql, decision, generation=self.agent.generation)
        self.expect.append(Pending("P", undo=self._bind_name(self.statements, name, prepared)))
        if decision.action == MASK:
            return self._describe_after_parse(prepared, payload, name)
        return None

    def _describe_after_parse(self, prepared: Prepared, payload: bytes, name: str) -> bytes:
        """Learn the result shape now: Execute does not repeat RowDescription.  The
        agent's own Describe is answered before anything the client sent next."""
        self.expect.append(Pending("DS", prepared))
        return codec.message(b"P", payload) + codec.describe(b"S", name)

    async def _on_bind(self, payload: bytes) -> bytes | None:
        portal, statement, formats = codec.parse_bind(payload)
        prepared = self.statements.get(statement)
        if prepared is None:
            # e.g. a statement made with SQL PREPARE: the agent never saw it bound to
            # this bundle, so it cannot vouch for it.
            await self._start_discard(
                Decision(
                    DENY,
                    rule="unknown_statement",
                    message=f'prepared statement "{statement}" '
                    "was not prepared through the Warden agent; use Parse or EXECUTE",
                )
            )
            return b""
        if (
            prepared.decision.valid_until <= time.time()
            or prepared.generation != self.agent.generation
        ):
            # The bundle changed or a grant expired since Parse: decide again.
            decision = await self._decide(prepared.sql)
            if decision.action == HOLD:
                outcome = await self.hold(prepared.sql, decision)
                if isinstance(outcome, list):
                    self._discard_with(outcome)
                    return b""
                decision = outcome
            if decision.action in (DENY, HOLD):
                await self._start_discard(decision)
                return b""
            if (
                decision.action == MASK
                and prepared.fields is None
                and (prepared.decision.action != MASK)
            ):
                await self._start_discard(
                    Decision(
                        DENY,
                        rule="policy_changed",
                        message="policy changed since this statement "
                        "was prepared; prepare it again",
                    )
                )
                return b""
            prepared.decision = decision
            prepared.generation = self.agent.generation
            prepared.masks.clear()
        undo = self._bind_name(self.portals, portal, (prepared, formats))
        self.expect.append(Pending("B", undo=undo))
        return None

    async def _start_discard(self, decision: Decision) -> None:
        """Refuse an extended-protocol message: skip everything up to Sync, like a server."""
        self._discard_with(await self._refusal(decision))

    def _discard_with(self, messages: list[bytes]) -> None:
        self.discarding = True
        self.discard_error = messages

    async def _refusal(self, decision: Decision) -> list[bytes]:
        self._audit_refusal(decision)
        return [
            codec.error_response(
                decision.sqlstate,
                f"Warden: {decision.message or 'statement denied by policy'}",
                detail=f"rule: {decision.rule}" if decision.rule else None,
            )
        ]

    # ------------------------------------------------------------ hold for approval

    async def hold(self, sql: str, decision: Decision) -> Decision | list[bytes]:
        """A statement that needs approval.  File an access request for it (the control
        plane reuses an identical pending one), tell the client which, then either refuse
        at once or, with ``--hold-wait``, wait for the review with the connection open.

        Returns the decision to run the statement under after an approval (taken from a
        freshly fetched bundle: allow, mask or deny), or the messages that refuse it.  Fails
        closed: without an answer from the control plane nothing runs."""
        assert self.identity is not None
        self._audit_refusal(decision)
        agent = self.agent
        what = decision.message or "statement requires an approved access request"
        try:
            held = await agent.cp.file_access_request(
                datasource=agent.config.datasource,
                identity=self.identity.name,
                statement=sql,
                fingerprint=decision.fingerprint,
                level="write" if decision.tables_written else "read",
                reason=f"held by the Warden agent: {decision.rule or 'require_approval'}",
            )
        except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
            log.warning("hold: could not file an access request: %s", exc)
            return [
                _hold_error(
                    f"{what}; the statement was not run: the access request could not be "
                    "filed because the Warden control plane is unreachable or refused it",
                    detail=str(exc),
                )
            ]
        where = f"request {held.id} (review at {held.review_url})"
        notice = codec.notice_response(f"Warden: held for approval: {where}")
        wait = agent.config.hold_wait
        if wait <= 0:
            return [
                notice,
                _hold_error(
                    f"{what}; held for approval: {where}",
                    hint=f"Retry once access request {held.id} is approved.",
                ),
            ]
        self.writer.write(notice)
        await self.writer.drain()
        return await self._wait_for_review(sql, held, wait)

    async def _wait_for_review(
        self, sql: str, held: HeldRequest, wait: float
    ) -> Decision | list[bytes]:
        where = f"request {held.id} (review at {held.review_url})"
        try:
            held = await self._poll_review(held, wait)
        except HoldCancelled:
            return [codec.error_response("57014", "canceling statement due to user request")]
        except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
            log.warning("hold: lost the control plane while waiting: %s", exc)
            return [
                _hold_error(
                    f"lost contact with the Warden control plane while {where} was pending; "
                    "the statement was not run",
                    detail=str(exc),
                )
            ]
        if held.state == "pending":
            return [
                _hold_error(
                    f"{where} is still pending after {wait:g} s; the statement was not run",
                    hint=f"Retry once access request {held.id} is approved.",
                )
            ]
        if held.state != "approved":
            return [_hold_error(f"{where} was {held.state}; the statement was not run")]
        return await self._decide_approved(sql, held)

    async def _poll_review(self, held: HeldRequest, wait: float) -> HeldRequest:
        """Long-poll the request until it leaves ``pending``, ``wait`` runs out, or the
        client cancels."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        cancelled = asyncio.Event()
        if self.cancel_key is not None:
            _HOLDS[self.cancel_key] = cancelled
        cancel_wait = asyncio.ensure_future(cancelled.wait())
        poll: asyncio.Future[HeldRequest] | None = None
        try:
            while held.state == "pending" and (remaining := deadline - loop.time()) > 0:
                poll = asyncio.ensure_future(
                    self.agent.cp.access_request_state(held.id, wait=min(remaining, 60.0))
                )
                await asyncio.wait({poll, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
                if cancelled.is_set():
                    raise HoldCancelled()
                held = poll.result()
            return held
        finally:
            cancel_wait.cancel()
            if poll is not None:  # cancelled, or the session ended while waiting
                poll.cancel()
            if self.cancel_key is not None:
                _HOLDS.pop(self.cancel_key, None)

    async def _decide_approved(self, sql: str, held: HeldRequest) -> Decision | list[bytes]:
        """Fetch the bundle that carries the new grant now, then decide the statement again."""
        where = f"request {held.id}"
        grant_id = (held.grant or {}).get("id")
        try:
            for _ in range(5):
                bundle = await self.agent.poller.refresh_now()
                if bundle is not None and (
                    grant_id is None or any(g.get("id") == grant_id for g in bundle.grants)
                ):
                    break
                await asyncio.sleep(0.2)
        except ControlPlaneUnavailable as exc:
            return [
                _hold_error(
                    f"{where} was approved, but the policy bundle with its grant could not "
                    "be fetched; the statement was not run",
                    detail=str(exc),
                    hint="Retry in a few seconds.",
                )
            ]
        decision = await self._decide(sql)
        if decision.action == HOLD:
            return [
                _hold_error(
                    f"{where} was approved, but its grant does not cover this statement; "
                    "it was not run",
                    detail=f"rule: {decision.rule}" if decision.rule else None,
                )
            ]
        if getattr(self.reader, "_eof", False):  # the client left while it waited
            raise ConnectionResetError("the client left while its statement was held")
        return decision

    # ------------------------------------------------------------ upstream → client

    def _on_backend_fast(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        """Responses that need no masking work, without a coroutine (see _on_client_fast).
        Returns ``_SLOW`` before changing any state when the async handler is needed."""
        expect = self.expect
        if not expect:
            return None
        head = expect[0]
        head_kind = head.kind
        if kind == 67:  # 'C'
            rows = codec.rows_from_tag(codec.command_tag(data[pos + 5 : end]))
            if head_kind == "E":
                armed = self._armed_after_head()
                if armed is _SLOW:
                    return _SLOW
                expect.popleft()
                self._execute_done(head, rows, error=False)
                self.row_mask = armed
                return None
            self.row_mask = None
            if head_kind == "Q":
                self._statement_done(head, rows, error=False)
            return None
        if kind == 90:  # 'Z'
            if head.inject:
                return _SLOW
            return self._pop_head()
        if kind == 84:  # 'T'
            if head_kind == "Q" and head.decision is not None:
                # Every simple-protocol result set gets its columns' origins checked, also
                # for allowed statements (defence in depth); cached per RowDescription.
                if self._origin_engine is not self.agent.engine:
                    return _SLOW
                cached = self._origin_masks.get((id(head.decision), data[pos + 5 : end]))
                if cached is None or cached[0] is not head.decision:
                    return _SLOW
                self.row_mask = cached[1]
                return None
            if head_kind == "D":  # the client's Describe
                return self._pop_head()
            if head_kind == "DS":  # the agent's own Describe: learn the shape, swallow it
                armed = self._armed_after_head()
                if armed is _SLOW:
                    return _SLOW
                expect.popleft()
                assert head.prepared is not None
                head.prepared.fields = self._row_description(data[pos + 5 : end])
                head.prepared.described = data[pos + 5 : end]
                self.row_mask = armed
                return b""
            return _SLOW
        if kind == 116 and head_kind == "DS":  # 't' of the agent's own Describe
            return b""
        if kind in _SIMPLE_COMPLETIONS and head_kind in ("P", "B", "C", "D"):
            if head.confirm is not None:
                return _SLOW
            return self._pop_head()
        return _SLOW

    def _row_description(self, payload: bytes) -> list[codec.FieldDescription]:
        """Parsed RowDescription, cached by its bytes: a re-prepared statement's shape
        comes back identical every time (the agent Describes it after each Parse)."""
        described = self._described
        fields = described.get(payload)
        if fields is None:
            if len(described) > 256:
                described.clear()
            fields = described[payload] = codec.parse_row_description(payload)
        return fields

    def _pop_head(self) -> Any:
        """Pop the head entry and arm the next one's row masks (``_SLOW`` if not cached)."""
        armed = self._armed_after_head()
        if armed is _SLOW:
            return _SLOW
        self.expect.popleft()
        self.row_mask = armed
        return None

    def _armed_after_head(self) -> Any:
        """Row masks for the entry after the head, when it is a masked Execute: from
        caches only, else ``_SLOW``; None when it needs none."""
        expect = self.expect
        if len(expect) < 2:
            return None
        following = expect[1]
        if (
            following.kind == "E"
            and following.decision is not None
            and following.decision.action == MASK
        ):
            return self._cached_portal_mask(following)
        return None

    def _cached_portal_mask(self, entry: Pending) -> Any:
        """Row masks for a masked Execute from caches only, else ``_SLOW``."""
        prepared = entry.prepared
        if prepared is None or prepared.fields is None:
            return _SLOW
        masks = prepared.masks.get(entry.formats)
        if masks is None:
            fields = prepared.fields
            binary = tuple(_result_format(entry.formats, i) == 1 for i in range(len(fields)))
            shape = (tuple((f.table_oid, f.attnum, f.type_oid) for f in fields), binary)
            masks = prepared.decision.mask_cache.get(shape)
            if masks is None:
                return _SLOW
            prepared.masks[entry.formats] = masks
        return _active(masks)

    async def _on_backend_message(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        expect = self.expect
        head = expect[0] if expect else None
        if head is None:
            return None
        if kind == 90:  # 'Z' ReadyForQuery
            expect.popleft()
            self.row_mask = None
            if head.inject and not head.error_seen:
                return b"".join(head.inject) + data[pos:end]
            return None
        if kind == 69:  # 'E' ErrorResponse
            self._on_error(head)
            return _withheld_error(head.decision, data[pos + 5 : end])
        if kind == 67:  # 'C' CommandComplete
            tag = codec.command_tag(data[pos + 5 : end])
            rows = codec.rows_from_tag(tag)
            self.row_mask = None
            if head.kind == "Q":
                self._statement_done(head, rows, error=False)
            elif head.kind == "E":
                expect.popleft()
                self._execute_done(head, rows, error=False)
                await self._advance()
            return None
        if kind == 84:  # 'T' RowDescription
            return await self._on_row_description(head, data[pos + 5 : end])
        if kind in (49, 50, 51, 110, 115, 73):  # '1' '2' '3' 'n' 's' 'I'
            if kind == 110 and head.kind == "DS":
                expect.popleft()
                assert head.prepared is not None
                head.prepared.fields = []
                await self._advance()
                return b""
            if kind == 73 and head.kind == "Q":
                self._statement_done(head, 0, error=False)
                return None
            expect.popleft()
            if head.confirm is not None and head.undo is not None:  # the server took it
                names, name, _previous = head.undo
                names.setdefault(name, head.confirm)
            self.row_mask = None
            if head.kind == "E":
                self._execute_done(head, None, error=False)
            await self._advance()
            return None
        if kind == 116 and head.kind == "DS":  # 't' ParameterDescription of our own Describe
            return b""
        return None

    def _on_error(self, head: Pending) -> bytes | None:
        expect = self.expect
        self.row_mask = None
        if head.kind == "Q":
            head.error_seen = True
            self._statement_done(head, None, error=True)
            return None
        if head.kind == "S":
            head.error_seen = True
            return None
        # Extended protocol: the server now skips messages until Sync.
        expect.popleft()
        if head.kind == "E":
            self._execute_done(head, None, error=True)
        refused = [head]
        while expect and expect[0].kind != "S":
            refused.append(expect.popleft())
        if expect:
            expect[0].error_seen = True
        # The failed message and the skipped ones changed nothing on the server.
        for entry in reversed(refused):
            if entry.undo is not None:
                names, name, previous = entry.undo
                if previous is _ABSENT or name == "":  # the server dropped its unnamed one
                    names.pop(name, None)
                elif entry.confirm is not None:  # unknown since Sync: the older one stayed
                    names.setdefault(name, previous)
                else:
                    names[name] = previous
        return None

    async def _advance(self) -> None:
        """A new head entry: arm DataRow masking for an Execute that needs it."""
        if not self.expect:
            return
        head = self.expect[0]
        if head.kind == "E" and head.decision is not None and head.decision.action == MASK:
            self.row_mask = await self._portal_mask(head)

    async def _portal_mask(self, entry: Pending) -> list[tuple[int, MaskSpec]] | None:
        prepared = entry.prepared
        if prepared is None or prepared.fields is None:
            # The result shape was never learned (the agent Describes every masked statement
            # after Parse, so this is defence in depth): no column goes out unmasked.
            return [
                (index, ("redact", None, 0, _result_format(entry.formats, index) == 1))
                for index in range(_MAX_RESULT_COLUMNS)
            ]
        formats = entry.formats
        if formats not in prepared.masks:
            fields = prepared.fields
            binary = [_result_format(formats, i) == 1 for i in range(len(fields))]
            prepared.masks[formats] = await self._column_masks(fields, prepared.decision, binary)
        return _active(prepared.masks[formats])

    async def _on_row_description(self, head: Pending, payload: bytes) -> bytes | None:
        if head.kind == "DS":
            self.expect.popleft()
            assert head.prepared is not None
            head.prepared.fields = self._row_description(payload)
            head.prepared.described = payload
            await self._advance()
            return b""
        if head.kind == "D":
            self.expect.popleft()
            await self._advance()
            return None
        if head.kind == "Q" and head.decision is not None:
            fields = codec.parse_row_description(payload)
            binary = [f.format_code == 1 for f in fields]
            self.row_mask = _active(await self._column_masks(fields, head.decision, binary))
            if self._origin_engine is not self.agent.engine or len(self._origin_masks) > 500:
                self._origin_masks.clear()
                self._origin_engine = self.agent.engine
            self._origin_masks[(id(head.decision), payload)] = (head.decision, self.row_mask)
        return None

    async def _column_masks(
        self,
        fields: list[codec.FieldDescription],
        decision: Decision,
        binary: list[bool],
    ) -> list[MaskSpec | None]:
        """Per output column: how to mask it, from its origin or, without one, the analysis."""
        shape = (tuple((f.table_oid, f.attnum, f.type_oid) for f in fields), tuple(binary))
        cached = decision.mask_cache.get(shape)
        if cached is None:
            cached = await self._compute_column_masks(fields, decision, binary)
            decision.mask_cache[shape] = cached
        return cached

    async def _compute_column_masks(
        self,
        fields: list[codec.FieldDescription],
        decision: Decision,
        binary: list[bool],
    ) -> list[MaskSpec | None]:
        agent, identity = self.agent, self.identity
        engine = agent.engine
        assert identity is not None
        keys = {(f.table_oid, f.attnum) for f in fields if f.table_oid}
        origins = await agent.catalog.origins(keys) if keys else {}
        view_oids = {oid for (oid, _), o in origins.items() if o.relkind not in BASE_RELKINDS}
        view_deps = await agent.catalog.view_deps_for_oids(view_oids) if view_oids else {}
        derived = decision.derived_positions
        direct = decision.direct_masked_positions
        specs: list[MaskSpec | None] = []
        for index, f in enumerate(fields):
            method: str | None = None
            param: int | None = None
            if f.table_oid:
                origin = origins.get((f.table_oid, f.attnum))
                if origin is None or engine is None:
                    method = "redact"
                else:
                    verdict = engine.column_verdict(
                        identity, origin.schema, origin.table, origin.column, decision.fingerprint
                    )
                    known = (origin.schema, origin.table, origin.column) in engine.bundle.columns
                    if origin.relkind not in BASE_RELKINDS and not known:
                        for schema, table, column in view_deps.get(f.table_oid, []):
                            dep = (
                                engine.relation_verdict(
                                    identity, schema, table, decision.fingerprint, time.time()
                                )[0]
                                if column is None
                                else engine.column_verdict(
                                    identity, schema, table, column, decision.fingerprint
                                )
                            )
                            if dep.action != ALLOW:
                                verdict = dep
                                break
                        if verdict.action != ALLOW:
                            method = "redact"
                    elif verdict.action == MASK:
                        method, param = verdict.method, verdict.param
                    elif verdict.action != ALLOW:
                        method = "null"
            elif derived is None or index in derived or direct is None or index in direct:
                method = "redact"
            specs.append(None if method is None else (method, param, f.type_oid, binary[index]))
        return specs

    def _mask_row(self, payload: bytes, row_mask: list[tuple[int, MaskSpec]]) -> bytes:
        """The DataRow with its masked columns rewritten; the other values are copied as
        byte ranges, not decoded (NULL stays NULL)."""
        key = self.agent.config.masking_key
        count = _UNPACK_SHORT(payload, 0)[0]
        parts: list[bytes] = []
        span, offset = 0, 2
        column = 0
        for index, (method, param, type_oid, binary) in row_mask:
            if index >= count:
                break
            while column < index:  # skip to the masked column
                length = _UNPACK_INT(payload, offset)[0]
                offset += 4 + (length if length > 0 else 0)
                column += 1
            length = _UNPACK_INT(payload, offset)[0]
            column += 1
            if length < 0:
                offset += 4
                continue
            raw = payload[offset + 4 : offset + 4 + length]
            masked = masking.mask_wire_value(method, raw, type_oid, param, key, binary)
            parts.append(payload[span:offset])
            parts.append(_NULL_VALUE if masked is None else _PACK_INT(len(masked)) + masked)
            offset += 4 + length
            span = offset
        parts.append(payload[span:])
        body = b"".join(parts)
        return b"D" + _PACK_INT(len(body) + 4) + body

    # ------------------------------------------------------------ audit

    def _audit(
        self,
        decision: Decision,
        *,
        index: int,
        rows: int | None,
        duration_ms: float,
        error: bool,
        action: str | None = None,
    ) -> None:
        """Queue one audit event.  The fields that repeat for a decision are JSON-encoded
        once per session; the shipper adds id and time when it encodes the batch."""
        action = action or decision.action
        self.agent.audit.record_statement(
            self._fragment(decision, index, action),
            None if rows is None else int(rows),
            duration_ms,
            error,
        )
        self.agent.metrics.statements.observe(action, duration_ms / 1000.0)

    def _fragment(self, decision: Decision, index: int, action: str) -> str:
        """The audit fragment for a decision, cached per session (the native path reads
        this cache too)."""
        key = (id(decision), index, action)
        cached = self._audit_fragments.get(key)
        if cached is None or cached[0] is not decision:
            cached = (decision, self._audit_fragment(decision, index, action))
            if len(self._audit_fragments) > 1000:
                self._audit_fragments.clear()
            self._audit_fragments[key] = cached
        return cached[1]

    def _audit_fragment(self, decision: Decision, index: int, action: str) -> str:
        statements = decision.statements or [decision.statement]
        kinds = decision.kinds or [decision.kind]
        static = {
            "identity": self.identity.name if self.identity else "",
            "datasource": self.agent.config.datasource,
            "client_address": self.client_address,
            "fingerprint": decision.fingerprint,
            "statement": statements[min(index, len(statements) - 1)],
            "kind": kinds[min(index, len(kinds) - 1)],
            "tables_read": decision.tables_read,
            "tables_written": decision.tables_written,
            "columns_read": decision.columns_read,
            "masked_columns": decision.masked_columns,
            "decision": action,
            "rule": decision.rule,
        }
        return json.dumps(static, separators=(",", ":"), ensure_ascii=False)[1:-1]

    def _audit_refusal(self, decision: Decision) -> None:
        self._audit(decision, index=0, rows=None, duration_ms=0.0, error=False)

    def _statement_done(self, entry: Pending, rows: int | None, *, error: bool) -> None:
        if entry.decision is None or entry.inject:
            return
        duration = (time.perf_counter() - entry.started) * 1000.0
        self._audit(
            entry.decision,
            index=entry.statement_index,
            rows=rows,
            duration_ms=duration,
            error=error,
        )
        entry.statement_index += 1

    def _execute_done(self, entry: Pending, rows: int | None, *, error: bool) -> None:
        if entry.decision is None:
            return
        duration = (time.perf_counter() - entry.started) * 1000.0
        self._audit(entry.decision, index=0, rows=rows, duration_ms=duration, error=error)


# Error classes whose messages name constraints and states, never column values; other
# messages may quote the very value a policy masks (data exceptions: 'invalid input syntax
# for type integer: "<value>"', a value cast to regclass: 'relation "<value>" does not
# exist', RAISE texts, ...).
_VALUE_FREE_ERROR_CLASSES = frozenset({"08", "23", "25", "40", "53", "57"})


def _withheld_error(decision: Decision | None, payload: bytes) -> bytes | None:
    """The server's error for a statement that touches columns restricted for this identity,
    without what may quote their values (detail, context, and data-dependent messages)."""
    if decision is None or not decision.touches_restricted:
        return None
    fields = codec.parse_error_fields(payload)
    code = fields.get("C", "XX000")
    text = fields.get("M", "")
    if code[:2] not in _VALUE_FREE_ERROR_CLASSES:
        text = (
            f"Warden: the server's error message (SQLSTATE {code}) is withheld: "
            "this statement touches columns restricted for you"
        )
    return codec.error_response(
        code,
        text,
        severity=fields.get("S", "ERROR"),
        hint=fields.get("H"),
    )


def _withheld_notice(decision: Decision | None, payload: bytes) -> bytes | None:
    """A warning or notice raised while running a statement that touches restricted columns
    ('PID <value> is not a PostgreSQL backend process'), with its text withheld."""
    if decision is None or not decision.touches_restricted:
        return None
    fields = codec.parse_error_fields(payload)
    code = fields.get("C", "01000")
    return codec.notice_response(
        f"Warden: the server's notice (SQLSTATE {code}) is withheld: "
        "this statement touches columns restricted for you",
        code=code,
        severity=fields.get("S", "NOTICE"),
    )


def _check_pinned_setting(payload: bytes) -> None:
    """A ParameterStatus moving a pinned setting (from code the agent could not see, such as
    a function): the agent would now read statements differently from the server."""
    name, _, rest = payload.partition(b"\x00")
    setting = name.decode(errors="replace").lower()
    if setting not in PINNED_SETTINGS:
        return
    value = rest.partition(b"\x00")[0].decode(errors="replace")
    if not is_pinned_value(setting, value):
        raise SessionRefused(
            "42501",
            f"{setting} changed to {value!r} on the server; the Warden agent ends this session "
            f"(it parses statements with {setting} {PINNED_SETTINGS[setting]})",
        )


def _unpinned_startup_setting(params: dict[str, str]) -> str | None:
    """Why a client's startup parameters cannot be honoured, or None.

    The agent parses statement text as UTF8 with standard_conforming_strings on and pins
    both upstream; a client asking for other values would read strings differently.
    """
    encoding = params.get("client_encoding")
    if encoding is not None and not is_pinned_value("client_encoding", encoding):
        return (
            f"the Warden agent speaks UTF8 only (client_encoding {encoding!r} requested); "
            "connect with client_encoding=UTF8"
        )
    conforming = params.get("standard_conforming_strings")
    if conforming is not None and not is_pinned_value("standard_conforming_strings", conforming):
        return "standard_conforming_strings must stay on behind the Warden agent"
    options = params.get("options", "").lower().replace("-", "_")
    for setting in PINNED_SETTINGS:
        if setting in options:
            return f"{setting} cannot be set in options behind the Warden agent"
    return None


def _hold_error(text: str, *, detail: str | None = None, hint: str | None = None) -> bytes:
    return codec.error_response("42501", f"Warden: {text}", detail=detail, hint=hint)


def _result_format(formats: tuple[int, ...], index: int) -> int:
    if not formats:
        return 0
    if len(formats) == 1:
        return formats[0]
    return formats[index] if index < len(formats) else 0


def _active(specs: list[MaskSpec | None] | None) -> list[tuple[int, MaskSpec]] | None:
    if not specs:
        return None
    active = [(i, spec) for i, spec in enumerate(specs) if spec is not None]
    return active or None


_HANDLED_FRONTEND = frozenset(b"QPBESDCFX")
_SYNC_FRONTEND = frozenset(b"ESDCFX")  # handled by _on_client_sync
_SIMPLE_COMPLETIONS = frozenset(b"123n")
_PASS = frozenset({ALLOW, MASK})
_SLOW: Any = object()
_MAX_RESULT_COLUMNS = 1664  # PostgreSQL's limit on a result's columns
_HANDLED_BACKEND = frozenset(b"ZECT123nsIt")


class _Relay(asyncio.Protocol):
    """One direction of a session after login, driven by transport callbacks.

    ``data_received`` splits messages and runs ``step`` synchronously (no coroutine or
    future per read).  When ``step`` returns ``_SLOW`` the rest of the chunk continues in a
    task that awaits ``slow``; bytes arriving meanwhile are buffered (reading is paused
    above ``_HIGH_WATER``) and processed afterwards, so order is preserved.  Reading also
    pauses while the sink's write buffer is above ``_HIGH_WATER``.
    """

    def __init__(
        self,
        step: Any,
        slow: Any,
        source: asyncio.Transport,
        sink: asyncio.Transport,
        stop_kind: int,
        session: Session,
        reader: asyncio.StreamReader,
        done: asyncio.Future[BaseException | None],
    ) -> None:
        self.step = step
        self.slow = slow
        self.source = source
        self.sink = sink
        self.stop_kind = stop_kind
        self.session = session
        self.reader = reader
        self.done = done
        self.peer: _Relay | None = None
        # The native data path for this direction (FastPath.client or .backend), if any.
        self.fast: Any = None
        self.buffer = b""
        self.busy = False
        self.sink_full = False
        self.reading = True
        self.eof = False
        self.task: asyncio.Task[None] | None = None

    # -- flow control
    def _update_reading(self) -> None:
        # While a slow handler runs, incoming bytes are only buffered: bound that buffer.
        backlog = self.busy and len(self.buffer) > _HIGH_WATER
        want = not (self.sink_full or self.done.done() or backlog)
        if want != self.reading:
            self.reading = want
            with contextlib.suppress(Exception):
                if want:
                    self.source.resume_reading()
                else:
                    self.source.pause_reading()

    def pause_writing(self) -> None:  # our source transport (the peer's sink) is full
        if self.peer is not None:
            self.peer.sink_full = True
            self.peer._update_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.sink_full = False
            self.peer._update_reading()

    # -- lifecycle
    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.done():
            self.done.set_result(error)

    def eof_received(self) -> bool:
        self.reader.feed_eof()  # seen by a held statement waiting for review
        self.eof = True
        if not self.busy:
            self.finish()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.reader.feed_eof()
        self.eof = True
        if exc is not None or not self.busy:
            self.finish(exc)

    # -- data
    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        if self.busy:
            self.buffer = data
            if len(data) > _HIGH_WATER:
                self._update_reading()
            return
        self.buffer = b""
        try:
            fast = self.fast
            if fast is not None:
                consumed = fast(data)
                if consumed:
                    if consumed == len(data):
                        return
                    data = data[consumed:]
            self._process(data)
        except BaseException as exc:
            self.finish(exc)

    def process_safely(self, data: bytes) -> None:
        """``_process`` for the native path's leftovers; an error ends the session."""
        try:
            self._process(data)
        except BaseException as exc:
            self.finish(exc)

    def _process(self, data: bytes) -> None:
        step = self.step
        stop_kind = self.stop_kind
        size = len(data)
        pos = 0
        span = 0
        out: list[bytes] = []
        while size - pos >= 5:
            length = _UNPACK_INT(data, pos + 1)[0]
            if length < 4:
                raise codec.ProtocolError(f"invalid message length {length}")
            end = pos + 1 + length
            if end > size:
                break
            kind = data[pos]
            stop = kind == stop_kind and not self.session.discarding
            replacement = step(kind, data, pos, end)
            if replacement is not None:
                if replacement is _SLOW:
                    self.busy = True
                    self.task = asyncio.ensure_future(self._continue(data, pos, span, out, stop))
                    return
                out.append(data[span:pos])
                out.append(replacement)
                span = end
            if stop:
                out.append(data[span:end])
                self.sink.write(b"".join(out))
                self.finish()
                return
            pos = end
        if out:
            out.append(data[span:pos])
            self.sink.write(b"".join(out))
        elif pos:
            self.sink.write(data[:pos] if pos < size else data)
        if pos < size:
            self.buffer = data[pos:]

    async def _continue(
        self,
        data: bytes,
        pos: int,
        span: int,
        out: list[bytes],
        stop: bool,
    ) -> None:
        try:
            step, slow, size = self.step, self.slow, len(data)
            first = True
            while size - pos >= 5:
                length = _UNPACK_INT(data, pos + 1)[0]
                if length < 4:
                    raise codec.ProtocolError(f"invalid message length {length}")
                end = pos + 1 + length
                if end > size:
                    break
                kind = data[pos]
                if first:  # the message that went slow: its step already returned _SLOW
                    first = False
                    replacement = _SLOW
                else:
                    stop = kind == self.stop_kind and not self.session.discarding
                    replacement = step(kind, data, pos, end)
                if replacement is _SLOW:
                    replacement = await slow(kind, data, pos, end)
                if replacement is not None:
                    out.append(data[span:pos])
                    out.append(replacement)
                    span = end
                if stop:
                    out.append(data[span:end])
                    self.sink.write(b"".join(out))
                    self.finish()
                    return
                pos = end
            out.append(data[span:pos])
            self.sink.write(b"".join(out))
            rest = data[pos:] + self.buffer
            self.buffer = b""
            self.busy = False
            if rest:
                self._process(rest)  # bytes that arrived meanwhile; may go slow again
            if not self.busy and self.eof:
                self.finish()
            self._update_reading()
        except BaseException as exc:
            self.busy = False
            self.finish(exc)


class MemoryTransport:
    """A transport stand-in for ``detached_relays``: counts (and with ``keep``, keeps) the
    bytes written; flow control does nothing."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.data = bytearray()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.keep:
            self.data += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None) -> None: ...
    def is_closing(self) -> bool:
        return False


def detached_relays(
    agent: Any, identity: Identity, client: Any, upstream: Any, *, native: bool
) -> tuple[_Relay, _Relay]:
    """A logged-in session's two relays over the given transport-like objects, without
    sockets (benchmarks and tests drive ``data_received`` themselves).  Returns
    (client → upstream, upstream → client); ``relay.session`` is the Session."""
    session = Session(
        agent,
        asyncio.StreamReader(),
        cast(Any, SimpleNamespace(transport=client, get_extra_info=client.get_extra_info)),
    )
    session.identity = identity
    session.upstream = cast(Any, SimpleNamespace(reader=asyncio.StreamReader(), writer=None))
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    to_upstream, to_client = session._relay_pair(client, upstream, session.reader, done)
    if native:
        session.attach_fast_path(to_upstream, to_client)
    return to_upstream, to_client
