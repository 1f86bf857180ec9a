"""One MySQL client connection: login, then each command decided, relayed and audited.

Login reads and writes streams; after it, both sockets are driven by transport callbacks
(``agent.mysql.relay``): a command whose decision is cached is decided, sent upstream and
its answer relayed (``agent.mysql.results``) without a coroutine; the rest (a decision to
make, a hold, prepared statements, KILL, ...) run as the client relay's slow handlers.
The agent re-frames every packet it relays with its own sequence ids, so rewriting a row
(masking) or joining a split packet never desynchronises client and server.

The session's parts, one module each: ``state`` (what the connection knows), ``login``,
``commands`` (the command phase), ``statements`` (prepared statements), ``decisions``
(decide, refuse, audit), ``masks`` (column masks per result shape), ``results`` (an
answer relayed), ``relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import cast

from agent import relay_core
from agent.journal import AuditNotJournaled
from agent.mysql import native
from agent.mysql import packets as p
from agent.mysql.commands import Commands
from agent.mysql.login import Login
from agent.mysql.relay import PacketRelay

log = logging.getLogger("agent.mysql.session")
# Seconds from the connection to a finished login: above the steps' own deadlines (control-
# plane calls up to ~40 s in an outage before cached verifiers count, the upstream's login),
# which answer with their own errors; this one ends a client that stalls between them.
LOGIN_TIMEOUT = 120.0
# MySQL's errors for a write that failed: disk full, or any other (HY000 both).
ER_DISK_FULL, ER_ERROR_ON_WRITE = 1021, 3


class MySqlSession(Login, Commands):
    """One client connection, from the agent's handshake to its end."""

    async def run(self) -> None:
        try:
            try:
                # A client that stalls in its login (a half-sent packet, a TLS hello that
                # never comes) does not hold a connection for ever.
                async with asyncio.timeout(LOGIN_TIMEOUT):
                    logged_in = await self._login()
            except TimeoutError:
                log.warning(
                    "connection %d: no login within %.0f s", self.connection_id, LOGIN_TIMEOUT
                )
                self.refusal = f"the login did not finish within {LOGIN_TIMEOUT:.0f} s"
                logged_in = False
            except ssl.SSLError as exc:  # a client's TLS handshake failed (a scanner, a bad hello)
                log.debug("TLS handshake failed: %r", exc)
                logged_in = False
            if logged_in:
                await self._relay()
        except (asyncio.IncompleteReadError, ConnectionError, p.ProtocolError) as exc:
            log.debug("session ended: %r", exc)
        finally:
            try:
                self._cursors_closed()  # rows their FETCHes sent are audited all the same
            except AuditNotJournaled as exc:  # queued all the same: the flush takes them
                log.error("connection %d ended with cursors open: %s", self.connection_id, exc.text)
            finally:
                await self._ended()

    async def _ended(self) -> None:
        """What a session's end releases, whatever its audit did."""
        self.agent.connections.pop(self.connection_id, None)
        if self.native_path is not None:
            self.agent.native_stats.update(self.native_path.stats)
        for stream in (self.upstream.writer if self.upstream else None, self.writer):
            if stream is not None:
                stream.close()
        if self.reported_login is not None:  # accepted in the trail: say no session came
            await self.agent.logins.abandoned(
                self.reported_login, self.refusal or "the client went away"
            )

    async def _relay(self) -> None:
        """Both sockets on transport callbacks until either side ends."""
        assert self.upstream is not None
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        client = self.client = cast(asyncio.Transport, self.writer.transport)
        upstream = cast(asyncio.Transport, self.upstream.writer.transport)
        self.to_upstream = PacketRelay(
            client, upstream, self.commands, self._next_commands, done, drive_when_empty=False
        )
        self.to_client = PacketRelay(
            upstream, client, self.upstream_packets, self._next_results, done
        )
        self.to_upstream.peer, self.to_client.peer = self.to_client, self.to_upstream
        self.native_path = native.install(self)  # before attach: the transports' protocols
        relays = (self.to_upstream, self.to_client)
        try:
            relay_core.attach(self.to_upstream, self.reader)
            relay_core.attach(self.to_client, self.upstream.reader)
            error = await done
            expected = asyncio.IncompleteReadError | ConnectionError | p.ProtocolError
            if isinstance(error, AuditNotJournaled):
                log.error("connection %d ended: %s", self.connection_id, error.text)
                with contextlib.suppress(Exception):
                    self._withheld_answer(error)
            elif error is not None and not isinstance(error, expected):
                log.error("session ended by %r", error, exc_info=error)
            elif error is not None:
                log.debug("session ended: %r", error)
        finally:
            await relay_core.stop(relays)

    def _withheld_answer(self, error: AuditNotJournaled) -> None:
        """An ERR in place of the answer whose audit event could not be journaled, numbered
        as the client expects its next packet (what went out of the answer before stays)."""
        results = self.results
        if results is None:
            seq = self.reply_seq
        else:  # out: framed packets not written yet, the first one's sequence id next
            seq = results.out[0][3] if results.out else results.seq
        code = ER_DISK_FULL if error.disk_full else ER_ERROR_ON_WRITE
        data, _ = p.frame(p.err_packet(code, "HY000", error.text), seq & 0xFF)
        self.writer.write(data)

    def _next_results(self) -> None:
        """The answer in flight, on the upstream packets buffered; then the next one's."""
        while not self.to_client.busy:
            results = self.results
            if results is None or not results.advance(self.upstream_packets):
                return
