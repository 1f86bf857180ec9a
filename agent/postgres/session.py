"""One client connection: startup and authentication, then two relays (``Relay``: transport
callbacks on the client and upstream transports) whose messages the handlers of
``agent.postgres.frontend`` and ``agent.postgres.backend`` see.

The session's parts, one module each: ``state`` (what the connection knows), ``startup``,
``frontend`` (client → upstream), ``backend`` (upstream → client), ``names`` (statement and
portal names with their undo), ``masks`` (row masks), ``holds`` (approval), ``withhold``
(errors and notices), ``audit_trail``, ``native`` (the C data path), ``relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, cast

from agent import relay_core
from agent.extension import native_path_available
from agent.journal import AuditNotJournaled
from agent.postgres import codec
from agent.postgres.backend import BackendHandlers
from agent.postgres.frontend import ClientHandlers
from agent.postgres.messages import TERMINATE
from agent.postgres.relay import Relay
from agent.postgres.startup import AUTHENTICATION_TIMEOUT, Startup
from agent.postgres.state import ClientGone, SessionRefused

log = logging.getLogger("agent.session")


class Session(Startup, ClientHandlers, BackendHandlers):
    """One client connection, from its startup packet to its end."""

    async def run(self) -> None:
        metrics = self.agent.metrics
        try:
            # A client that stalls between the steps that have deadlines of their own (a
            # lone byte, a half-sent hello) does not hold a connection for ever.
            async with asyncio.timeout(AUTHENTICATION_TIMEOUT):
                accepted = await self._startup()
        except TimeoutError:
            log.warning(
                "session %s: no login within %.0f s", self.client_address, AUTHENTICATION_TIMEOUT
            )
            with contextlib.suppress(Exception):
                self._fatal(
                    "08P01", f"the login did not finish within {AUTHENTICATION_TIMEOUT:.0f} s"
                )
            accepted = False
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            codec.ProtocolError,
            ClientGone,
            ssl.SSLError,  # a TLS handshake that failed (a scanner, a client's wrong hello)
        ):
            accepted = False
        if not accepted:
            metrics.connections_total.labels("rejected").inc()
            if self.cancel_key is not None:  # issued, then the last write of the login failed
                self.agent.cancel_keys.pop(self.cancel_key, None)
                self.agent.results.pop(self.cancel_key, None)
            if self.upstream is not None:  # a login stopped after the upstream connected
                self.upstream.close()
            await self._close_client()
            if self.reported_login is not None:  # accepted in the trail: say no session came
                await self.agent.logins.abandoned(
                    self.reported_login, self.refusal or "the client went away"
                )
            return
        self.reported_login = None
        metrics.connections_total.labels("accepted").inc()
        metrics.connections_open.inc()
        try:
            await self._relay()
        finally:
            metrics.connections_open.dec()
            if self.cancel_key is not None:
                self.agent.cancel_keys.pop(self.cancel_key, None)
                self.agent.results.pop(self.cancel_key, None)
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
        if self.cancel_key is not None:
            self.agent.results[self.cancel_key] = to_client
        for relay, reader in ((to_upstream, self.reader), (to_client, up_reader)):
            relay_core.attach(relay, reader)
        self.read_sockets(to_upstream, to_client)
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
            elif isinstance(error, AuditNotJournaled):  # its result withheld: the client knows why
                log.error("session %s ended: %s", self.client_address, error.text)
                with contextlib.suppress(Exception):
                    self._fatal(error.sqlstate, error.text)
            elif error is not None and not isinstance(
                error, ConnectionError | asyncio.IncompleteReadError
            ):
                log.error("session %s ended by %r", self.client_address, error, exc_info=error)
        finally:
            await relay_core.stop(relays)

    def _relay_pair(
        self,
        client: Any,
        upstream: Any,
        upstream_reader: asyncio.StreamReader,
        done: asyncio.Future[BaseException | None],
    ) -> tuple[Relay, Relay]:
        """(client → upstream, upstream → client) relays over these transports."""
        to_upstream = Relay(
            self._client_step,
            self._client_slow,
            client,
            upstream,
            TERMINATE,
            self,
            self.reader,
            done,
        )
        to_client = Relay(
            self._backend_step,
            self._backend_slow,
            upstream,
            client,
            -1,  # no server message ends the session
            self,
            upstream_reader,
            done,
        )
        to_upstream.peer, to_client.peer = to_client, to_upstream
        if native_path_available() and self.agent.config.native:
            to_client.rows = self._masked_run
        return to_upstream, to_client
