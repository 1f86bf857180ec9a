"""The command phase: the client's commands one at a time, each decided, sent upstream and
its answer relayed (``agent.mysql.results``) before the next starts.  A command whose
decision is cached runs in the client relay's callback without a coroutine; the rest (a
decision to make, a hold, prepared statements, KILL, ...) run as the relay's slow
handlers.  Commands the agent does not understand are refused (ER_UNKNOWN_COM_ERROR),
never passed through.
"""

from __future__ import annotations

import functools
import re
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

from agent.extension import native_function
from agent.mysql import packets as p
from agent.mysql.login import ER_ACCESS_DENIED
from agent.mysql.results import Results
from agent.mysql.statements import PreparedStatements
from agent.normalize import template_key
from agent.verdicts import Decision

_COM_QUERY = bytes((p.COM_QUERY,))
_REPEAT_MAX_BYTES = 4096  # texts _repeat_now may run again (their key and pieces are kept)
ER_UNKNOWN_COM = 1047
ER_NO_SUCH_THREAD = 1094
_USE = re.compile(r"^\s*use\s+`?([^`;\s]+)`?", re.IGNORECASE)
_KILL = re.compile(r"^\s*kill\s+(query\s+|connection\s+)?(\d+)\s*;?\s*$", re.IGNORECASE)
# The repeat check in C (agent/fastpath/mysql_session.c), which the native path's own round
# trip of a repeat runs too: (repeats, payload, generation, database) -> decision or None.
_native_repeat: Callable[..., Decision | None] | None = native_function("mysql_repeat")


class Commands(PreparedStatements):
    def _next_commands(self) -> None:
        """The client's buffered commands, one at a time: each waits for the answer to the
        one before (``busy``)."""
        relay = self.to_upstream
        assert relay is not None
        commands = self.commands
        while not relay.busy:
            payload = commands.ready()  # most commands: one packet, buffered whole
            if payload is None:
                payload = commands.take()
                if payload is None:
                    return
            self.reply_seq = commands.seq + 1  # a split command takes several sequence ids
            if payload[:1] != _COM_QUERY or not self._repeat_now(payload):
                self._command(payload)

    def _slow(self, handler: Coroutine[Any, Any, None]) -> None:
        assert self.to_upstream is not None
        self.to_upstream.run_slow(self._handled(handler))

    async def _handled(self, handler: Coroutine[Any, Any, None]) -> bool:
        await handler
        return self.results is None  # else the answer's end lets the next command start

    _HANDLERS: dict[int, Callable[[Commands, bytes], Coroutine[Any, Any, None]]] = {}

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

    async def _init_db(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if p.is_ok(answer):
            self.database = payload[1:].decode(errors="replace")
        self._reply(answer)

    async def _reset_connection(self, payload: bytes) -> None:
        self._send_upstream(payload)
        answer = await self._upstream_payload()
        if p.is_ok(answer):
            self._cursors_closed()
            self.prepared.clear()
            await self._pin_session()  # the session's sql_mode is the global one again
        self._reply(answer)

    # ------------------------------------------------------------ COM_QUERY

    def _repeat_now(self, payload: bytes) -> bool:
        """Run a query this session ran before under a cached decision (the same bytes, or
        the same integer-constant template: ``agent.normalize``) while that decision holds
        (not expired, the same bundle and catalog, the same database), without decoding
        and normalising its text again; False: ``_query_now`` decides it."""
        if self.native_results and _native_repeat is not None:  # the same checks, in C
            found = _native_repeat(self._repeats, payload, self.agent.generation, self.database)
            if found is None:
                return False
            self._run_query(payload, found)
            return True
        repeat = self._repeats.get(template_key(payload))
        if repeat is None:
            return False
        fixed, decision, generation, database = repeat
        if (
            generation != self.agent.generation
            or decision.valid_until <= time.time()
            or database != self.database
        ):
            return False
        for start, end, piece in fixed:
            if payload[start:end] != piece:
                return False
        self._run_query(payload, decision)
        return True

    def _query_now(self, payload: bytes) -> bool:
        """Run a query whose decision is cached, without a coroutine; False if it needs
        the slow path (``_query``)."""
        sql = payload[1:].decode(errors="surrogateescape")
        decision = self._decided_now(sql)
        if decision is None or _KILL.match(sql) is not None:
            return False
        after = self._after_query(sql, decision)
        if after is None:
            self._remember_repeat(payload, decision)
        self._run_query(payload, decision, after)
        return True

    def _remember_repeat(self, payload: bytes, decision: Decision) -> None:
        """``_repeat_now`` runs the texts ``payload`` stands for under ``decision``: those
        the normaliser reads as it (its template's fixed bytes), else this text only.  A
        KILL, a ``use`` or DDL never gets here (they need the text or an after-step).  Long
        texts are not kept: up to 1,000 per session would hold too much memory."""
        if len(payload) > _REPEAT_MAX_BYTES:
            return
        key = template_key(payload)
        raw = payload[1:]
        template = self.agent.normalizer.fixed_pieces(raw, key[1:])
        if template is None:
            fixed: tuple[tuple[int, int, bytes], ...] = ((0, len(payload), payload),)
        else:  # the template is of the text, after the command byte: the byte joins it
            pieces = [(s + 1, e + 1, b) for s, e, b in template]
            if pieces and pieces[0][0] == 1:
                pieces[0] = (0, pieces[0][1], payload[:1] + pieces[0][2])
            else:
                pieces.insert(0, (0, 1, payload[:1]))
            fixed = tuple(pieces)
        if len(self._repeats) > 1000:
            self._repeats.clear()
        self._repeats[key] = (fixed, decision, self.agent.generation, self.database)

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
        self._run_query(payload, decided, self._after_query(sql, decided))

    def _after_query(self, sql: str, decision: Decision) -> Callable[[bool], None] | None:
        """What follows a query's answer: a ``use`` changes the database, DDL the catalog."""
        if "use" in decision.kinds or decision.invalidates_catalog:
            return functools.partial(self._query_done, sql, decision)
        return None

    def _run_query(
        self, payload: bytes, decision: Decision, after: Callable[[bool], None] | None = None
    ) -> None:
        started = time.perf_counter()
        assert self.to_upstream is not None
        self.to_upstream.sink.write(p.frame(payload, 0)[0])  # the upstream transport
        self._expect(Results(self, decision, started, False, None, False, after))

    def native_hand_back(self, decision: Decision, started: float) -> None:
        """The answer to a repeat the native path sent (agent/mysql/native.py) goes on
        here: what ``_run_query`` would expect by now."""
        self.reply_seq = 1  # the command was one packet, sequence id 0
        self._expect(Results(self, decision, started, False, None, False, None))

    def _query_done(self, sql: str, decision: Decision, ok: bool) -> None:
        if ok and "use" in decision.kinds:
            match = _USE.match(sql)
            self.database = match.group(1) if match else self.database
        if ok and decision.invalidates_catalog:
            self.agent.invalidate_after_ddl()

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


Commands._HANDLERS.update(
    {
        p.COM_STMT_PREPARE: Commands._prepare,
        p.COM_STMT_FETCH: Commands._fetch,
        p.COM_STMT_CLOSE: Commands._close_statement,
        p.COM_STMT_SEND_LONG_DATA: Commands._long_data,
        p.COM_STMT_RESET: Commands._reset_statement,
        p.COM_PING: Commands._forward_simple,
        p.COM_STATISTICS: Commands._forward_simple,
        p.COM_SET_OPTION: Commands._forward_simple,
        p.COM_INIT_DB: Commands._init_db,
        p.COM_RESET_CONNECTION: Commands._reset_connection,
        p.COM_PROCESS_KILL: Commands._process_kill,
    }
)
