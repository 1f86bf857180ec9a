"""Login of one MySQL client connection, on streams: the agent's handshake, the client's
Warden token checked (``agent.mysql.auth`` reads it), then the upstream connection opened
with the datasource's credentials and its sql_mode pinned.  Any failure answers the
client with ER_ACCESS_DENIED_ERROR (1045/28000) and ends the connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from agent.controlplane import ControlPlaneUnavailable
from agent.mysql import packets as p
from agent.mysql.auth import (
    CACHING_SHA2,
    NATIVE,
    SAFE_COLLATIONS,
    AuthRefused,
    ClientAuthPolicy,
    ClientLogin,
    accept_client,
    connect_upstream,
    new_nonce,
)
from agent.mysql.state import SessionState
from agent.verdicts import Identity

log = logging.getLogger("agent.mysql.session")

ER_ACCESS_DENIED = 1045


class Login(SessionState):
    async def _login(self) -> bool:
        """True once the client is logged in and the upstream connection is open."""
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
            self.refusal = error
            await self._send_login_error(error, seq=login.seq)
            return False
        for stream in (self.writer, self.upstream.writer if self.upstream else None):
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data, _ = p.frame(p.ok_packet(), login.seq)
        self.writer.write(data)
        await self.writer.drain()
        self.reported_login = None  # a session: nothing to follow up
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
        source_address = self.client_address  # the client's IP, as logins are audited
        try:
            if login.token is not None:
                result, self.reported_login = await self.agent.logins.check_password(
                    user, login.token, source_address=source_address
                )
            else:
                assert login.verifiers is not None
                result, self.reported_login = await self.agent.logins.record(
                    login.verifiers, login.matched, mechanism=NATIVE, source_address=source_address
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

    async def _send_login_error(self, message: str, *, seq: int) -> None:
        data, _ = p.frame(p.err_packet(ER_ACCESS_DENIED, "28000", message), seq)
        self.writer.write(data)
        await self.writer.drain()
