"""Prepared statements (COM_STMT_PREPARE, EXECUTE, FETCH, CLOSE, SEND_LONG_DATA): decided
when prepared, decided again before a command that names one once its decision expired or
the bundle changed; their rows come in the binary protocol (``agent.mysql.results``).
"""

from __future__ import annotations

import logging
import struct
import time

from agent.journal import AuditNotJournaled
from agent.mysql import packets as p
from agent.mysql.decisions import StatementDecisions
from agent.mysql.masks import ResultMasks
from agent.mysql.results import Results, withheld
from agent.mysql.state import Prepared

log = logging.getLogger("agent.mysql.statements")
ER_UNKNOWN_STMT = 1243


class PreparedStatements(StatementDecisions, ResultMasks):
    async def _prepare(self, payload: bytes) -> None:
        sql = payload[1:].decode(errors="surrogateescape")
        decided = await self._decide_to_run(sql)
        if isinstance(decided, bytes):
            self._reply(decided)
            return
        self._send_upstream(payload)
        first = await self._upstream_payload()
        packets = [first]
        if p.is_ok(first):  # COM_STMT_PREPARE_OK
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
        self.cursor_closed(prepared)  # the server closes a cursor the statement had open
        self._send_upstream(payload)
        self._expect(Results(self, prepared.decision, started, True, prepared))

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
        prepared = self.prepared.pop(struct.unpack_from("<I", payload, 1)[0], None)
        if prepared is None:
            return
        try:
            self.cursor_closed(prepared)
        except AuditNotJournaled as exc:
            # COM_STMT_CLOSE has no answer: an ERR now would be read as the answer to the
            # client's next command.  The session ends without one (the event is settled).
            log.error("connection %d ended: %s", self.connection_id, exc.text)
            raise ConnectionAbortedError(exc.errno, exc.text) from exc
        self._send_upstream(payload)  # no answer

    async def _reset_statement(self, payload: bytes) -> None:
        prepared = self.prepared.get(struct.unpack_from("<I", payload, 1)[0])
        if prepared is not None:
            self.cursor_closed(prepared)  # a reset closes the statement's cursor
        await self._forward_simple(payload)

    def cursor_closed(self, prepared: Prepared, *, error: bool = False) -> None:
        """The audit event of a statement whose cursor ends (read to its end, failed,
        closed, reset, executed again, or its session ended), with the rows and bytes all
        its FETCHes sent and the time from its EXECUTE."""
        cursor, prepared.cursor = prepared.cursor, None
        if cursor is not None:
            duration_ms = (time.perf_counter() - cursor.started) * 1000.0
            self.audit(
                cursor.decision, cursor.index, cursor.rows, duration_ms, error, cursor.sent_bytes
            )

    def _cursors_closed(self) -> None:
        """Audit every open cursor; a journal that cannot take one (a full disk) stops none
        of the others (their events are queued all the same), and the first error is raised
        once all are audited."""
        failed: AuditNotJournaled | None = None
        for prepared in self.prepared.values():
            try:
                self.cursor_closed(prepared)
            except AuditNotJournaled as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    async def _long_data(self, payload: bytes) -> None:
        statement_id = struct.unpack_from("<I", payload, 1)[0]
        if statement_id in self.prepared:
            self._send_upstream(payload)  # no answer
