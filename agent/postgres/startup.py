"""Before the relays start: the startup packet (TLS, cancel requests), the client's proof
of its access token (SCRAM-SHA-256 against the control plane's verifiers, or the token as
a cleartext password over TLS), the upstream connection, and the messages that end a
successful login."""

from __future__ import annotations

import asyncio
import struct

from agent.controlplane import AuthResult, ControlPlaneUnavailable
from agent.postgres import codec, upstream
from agent.postgres.messages import PASSWORD
from agent.postgres.pinned import unpinned_startup_setting
from agent.postgres.scram import ScramExchange, ScramRefused, parse_initial_response, sasl_offer
from agent.postgres.sql import PINNED_SETTINGS
from agent.postgres.state import ClientGone, SessionState
from agent.postgres.upstream import UpstreamError
from agent.starttls import buffered_bytes, start_tls_keeping_early_bytes
from agent.verdicts import Identity

_UNPACK_INT = struct.Struct("!i").unpack_from
_MAX_PASSWORD_MESSAGE = 65535 + 4  # PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, plus the length
_PASSWORD_TIMEOUT = 60.0  # PostgreSQL's authentication_timeout default
# The whole startup (TLS, login, upstream connection). Above the steps' own deadlines (the
# password 60 s, control-plane calls up to ~40 s in an outage before cached verifiers count,
# the upstream's connect), which answer with their own errors: this one ends a client that
# stalls between them.
AUTHENTICATION_TIMEOUT = 120.0


class Startup(SessionState):
    """Startup and authentication of one client connection."""

    async def _read_startup(self, head: bytes | None) -> tuple[int, bytes]:
        """One startup-family packet; ``head``: its first 4 bytes when already read."""
        length = _UNPACK_INT(head or await self.reader.readexactly(4))[0]
        if length < 8 or length > 10_000:
            raise codec.ProtocolError("bad startup packet length")
        body = await self.reader.readexactly(length - 4)
        return _UNPACK_INT(body)[0], body[4:]

    async def _startup(self) -> bool:
        first = await self.reader.readexactly(4)
        head: bytes | None = first
        direct = first[0] == codec.TLS_HANDSHAKE
        if direct:
            if not await self._direct_tls(first):
                return False
            head = None
        while True:
            code, body = await self._read_startup(head)
            head = None
            if code == codec.SSL_REQUEST and direct:
                # PostgreSQL 17 answers an SSLRequest inside direct TLS with N (TLS is up)
                # and reads on; a second one is an unsupported protocol, as below.
                self.writer.write(codec.ENCRYPTION_UNWILLING)
                direct = False
                continue
            if code == codec.SSL_REQUEST and not self._tls():
                if self.agent.ssl_context is not None:
                    if buffered_bytes(self.reader):  # sent before the answer: not from libpq
                        # PostgreSQL's rule (CVE-2021-23214): bytes a man in the middle put in
                        # front of the handshake would be read as if they came over TLS.
                        self._fatal("08P01", "received unencrypted data after SSL request")
                        return False
                    self.writer.write(codec.SSL_WILLING)
                    await self.writer.drain()
                    await start_tls_keeping_early_bytes(
                        self.reader, self.writer, self.agent.ssl_context
                    )
                else:
                    self.writer.write(codec.ENCRYPTION_UNWILLING)
                continue
            if code == codec.GSSENC_REQUEST:
                self.writer.write(codec.ENCRYPTION_UNWILLING)
                continue
            if code == codec.CANCEL_REQUEST:
                await self._cancel(body)
                return False
            if code != codec.PROTOCOL_3_0:  # an SSLRequest inside TLS too, as PostgreSQL
                self._fatal("0A000", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
                return False
            return await self._login(codec.parse_startup_params(body))

    async def _direct_tls(self, client_hello_start: bytes) -> bool:
        """PostgreSQL 17's direct TLS (libpq's ``sslnegotiation=direct``): the connection opens
        with a TLS ClientHello instead of an SSLRequest.  As in PostgreSQL, it must negotiate
        ALPN "postgresql", so a TLS connection meant for another protocol (an HTTPS client sent
        here by mistake or by an attacker) is never read as this one; PostgreSQL closes such a
        connection with the reason in its log only, the agent also tells the client (08P01)."""
        if self.agent.ssl_context is None:
            # PostgreSQL closes such a connection without an answer: the client reads TLS
            # records, a plaintext error would be garbage to it.
            self.writer.close()
            return False
        await start_tls_keeping_early_bytes(
            self.reader, self.writer, self.agent.ssl_context, client_hello_start
        )
        tls = self.writer.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != codec.ALPN_PROTOCOL:
            self._fatal(
                "08P01",
                "received direct SSL connection request without ALPN protocol negotiation "
                "extension",
            )
            return False
        return True

    async def _cancel(self, body: bytes) -> None:
        if len(body) < 8:  # a truncated CancelRequest: nothing to cancel
            self.writer.close()
            return
        pid, secret = struct.unpack("!ii", body[:8])
        await self.agent.cancel_or_forward(pid, secret)
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
        unpinned = unpinned_startup_setting(params)
        if unpinned is not None:
            self._fatal("0A000", unpinned)
            return False
        try:
            if self.agent.config.client_auth == "password":
                auth = await self._cleartext_login(user, params.get("application_name", ""))
            else:
                auth = await self._scram_login(user, params.get("application_name", ""))
        except ControlPlaneUnavailable:
            self._fatal(
                "28000", "cannot verify the access token: Warden control plane is unreachable"
            )
            return False
        except ScramRefused as exc:
            self._fatal(exc.sqlstate, f'Warden authentication failed for "{user}": {exc}')
            return False
        if auth is None:
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

    async def _auth_message(self) -> bytes | None:
        """The client's next authentication message ('p'), or None after a FATAL."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(5), _PASSWORD_TIMEOUT)
        except TimeoutError:
            self._fatal("08P01", "no password message within the authentication timeout")
            return None
        length = _UNPACK_INT(header, 1)[0]
        if header[0] != PASSWORD:
            raise ClientGone()
        if not 4 <= length <= _MAX_PASSWORD_MESSAGE:  # PostgreSQL's own bound on auth packets
            self._fatal("08P01", "invalid password message length")
            return None
        return await self.reader.readexactly(length - 4)

    def _tls(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    async def _cleartext_login(self, user: str, application: str) -> AuthResult | None:
        """The token as a cleartext password: only over TLS (or when the operator passed
        --allow-insecure-listen), since it would otherwise cross the network in clear."""
        if not (self._tls() or self.agent.config.allow_insecure_listen):
            self._fatal(
                "28000",
                "the Warden agent takes tokens as cleartext passwords only over TLS: connect "
                "with sslmode=require (the agent would otherwise read your token in clear)",
            )
            return None
        self.writer.write(codec.auth_request(codec.AUTH_CLEARTEXT))
        await self.writer.drain()
        message = await self._auth_message()
        if message is None:
            return None
        token = message.rstrip(b"\x00").decode(errors="replace")
        auth, self.reported_login = await self.agent.logins.check_password(
            user, token, source_address=self._peer_address(), application=application
        )
        return auth

    def _peer_address(self) -> str:
        """The client's IP address, as the audit trail records a login's."""
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) else ""

    async def _scram_login(self, user: str, application: str) -> AuthResult | None:
        """SCRAM-SHA-256(-PLUS) against the identity's token verifiers (agent.postgres.scram)."""
        verifiers = await self.agent.logins.verifiers(user)
        binding = self.agent.channel_binding if self._tls() else None
        exchange = ScramExchange(verifiers, binding)
        self.writer.write(sasl_offer(binding))
        await self.writer.drain()
        message = await self._auth_message()
        if message is None:
            return None
        mechanism, client_first = parse_initial_response(message)
        self.writer.write(
            codec.auth_request(
                codec.AUTH_SASL_CONTINUE, exchange.server_first(mechanism, client_first)
            )
        )
        await self.writer.drain()
        message = await self._auth_message()
        if message is None:
            return None
        details = {
            "mechanism": mechanism,
            "source_address": self._peer_address(),
            "application": application,
        }
        try:
            token, server_final = exchange.server_final(message.decode(errors="replace"))
        except ScramRefused:
            await self.agent.logins.record(verifiers, None, **details)
            raise
        auth, self.reported_login = await self.agent.logins.record(verifiers, token, **details)
        if auth.ok:
            self.writer.write(codec.auth_request(codec.AUTH_SASL_FINAL, server_final))
        return auth

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
