"""Client → upstream: only message headers are read; Query/Parse/Bind/Execute get a policy
decision (cached), everything else is forwarded as bytes.  Denied work never reaches the
upstream: the agent sends a Sync in its place and puts its ErrorResponse in front of the
ReadyForQuery that Sync produces, so errors stay in order with pipelined results."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from agent.postgres import codec
from agent.postgres.holds import HoldForApproval
from agent.postgres.masks import COPY_SHAPE, ResultMasks
from agent.postgres.messages import (
    BIND,
    CLOSE,
    COPY_DONE,
    COPY_FAIL,
    DESCRIBE,
    EXECUTE,
    FUNCTION_CALL,
    PARSE,
    QUERY,
    SYNC,
    TARGET_STATEMENT,
    TERMINATE,
)
from agent.postgres.names import bind_name, unsettle_rebinds
from agent.postgres.native import NativePath
from agent.postgres.state import PASS, SLOW, Pending, Prepared
from agent.verdicts import DENY, HOLD, MASK, Decision

_HANDLED = frozenset({QUERY, PARSE, BIND, EXECUTE, SYNC, DESCRIBE, CLOSE, FUNCTION_CALL, TERMINATE})
# Handled by _on_client_sync (never waits)
_HANDLED_SYNC = frozenset({EXECUTE, SYNC, DESCRIBE, CLOSE, FUNCTION_CALL, TERMINATE})


class ClientHandlers(ResultMasks, HoldForApproval, NativePath):
    """The client's messages."""

    def _client_step(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        if self.discarding and kind != SYNC and kind != TERMINATE:  # they still count
            return b""
        if kind in (COPY_DONE, COPY_FAIL):  # copy-in ends
            self._copy_owner, self._copy_in_active = None, False
            return None
        if kind == EXECUTE and not self.expect:  # answered first: nothing ahead arms its masks
            armed = self._portal_mask_if_head(data[pos + 5 : end])
            if armed is SLOW:
                return SLOW
            result = self._on_client_sync(kind, data[pos + 5 : end])
            self.row_mask = armed
            return result
        if kind in _HANDLED_SYNC:
            return self._on_client_sync(kind, data[pos + 5 : end])
        if kind in _HANDLED:
            return self._on_client_fast(kind, data[pos + 5 : end])
        return None

    async def _client_slow(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        return await self._on_client_message(kind, data[pos + 5 : end])

    def _on_client_fast(self, kind: int, payload: bytes) -> Any:
        """The common cases without a coroutine: a cached, allowed decision.  Returns
        ``SLOW`` (before changing any state) when the full async handler is needed."""
        if kind == QUERY:
            decision = self._cached_plain_decision(codec.parse_query(payload))
            if decision is None:
                return SLOW
            self.expect.append(Pending("Q", decision=decision, started=time.perf_counter()))
            if self.fast is not None:
                self._fast_ticket_query(codec.parse_query(payload), decision)
            return None
        if kind == BIND:
            portal, statement, formats = codec.parse_bind(payload)
            prepared = self.statements.get(statement)
            if (
                prepared is None
                or prepared.decision.valid_until <= time.time()
                or prepared.generation != self.agent.generation
            ):
                return SLOW
            undo = bind_name(self.portals, portal, (prepared, formats))
            self.expect.append(Pending("B", undo=undo))
            return None
        if kind == PARSE:
            name, sql = codec.parse_parse(payload)
            decision = self._cached_plain_decision(sql)
            if decision is None:
                return SLOW
            prepared = Prepared(sql, decision, generation=self.agent.generation)
            self.expect.append(Pending("P", undo=bind_name(self.statements, name, prepared)))
            if self.fast is not None:
                self._fast_ticket_parse(payload, name, prepared)
            if decision.action == MASK:
                return self._describe_after_parse(prepared, payload, name)
            return None
        return SLOW

    def _cached_plain_decision(self, sql: str) -> Decision | None:
        """The cached decision for ``sql`` when it lets the statement run as it is (allow
        or mask, no side effects to note, no copy-in, no row estimate to take), else None."""
        decision = self.agent.decide_cached(
            self.identity, sql, self.search_path, self.session_relations.scope
        )
        if (
            decision is None
            or decision.action not in PASS
            or decision.has_side_effects
            or decision.copies_in
            or decision.row_limits
            or (decision.copy_out is not None and COPY_SHAPE not in decision.mask_cache)
        ):
            return None  # a masked COPY runs once through _copy_decision first
        return decision

    async def _on_client_message(self, kind: int, payload: bytes) -> bytes | None:
        """Handle one frontend message; return replacement bytes (b"" drops it)."""
        if kind == EXECUTE and not self.expect:  # see _client_step
            result = self._on_client_sync(kind, payload)
            await self._advance()
            return result
        if kind == QUERY:
            return await self._on_query(payload)
        if kind == PARSE:
            return await self._on_parse(payload)
        if kind == BIND:
            return await self._on_bind(payload)
        return self._on_client_sync(kind, payload)

    def _on_client_sync(self, kind: int, payload: bytes) -> bytes | None:
        """Frontend messages whose handling never waits (Execute, Sync, Describe, ...)."""
        expect = self.expect
        if kind == EXECUTE:
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
            # A row limit that suspends the portal returned exactly that many rows (audited).
            entry.rows = codec.execute_row_limit(payload) or None
            expect.append(entry)
            if prepared.decision.copies_in:
                self._copy_owner = entry
            return None
        if kind == SYNC:
            if self._copy_in_active:  # the server ignores it in copy-in mode
                return None
            unsettle_rebinds(self.expect)
            entry = Pending("S", copy_of=self._copy_owner)
            if self.discarding:
                self.discarding = False
                entry.inject, self.discard_error = self.discard_error, []
                expect.append(entry)
                return codec.SYNC
            expect.append(entry)
            return None
        if kind == DESCRIBE:
            expect.append(Pending("D"))
            return None
        if kind == CLOSE:
            target, name = codec.parse_target(payload)
            if target == TARGET_STATEMENT:
                self.statements.pop(name, None)
            else:
                self.portals.pop(name, None)
            expect.append(Pending("C"))
            return None
        if kind == FUNCTION_CALL:  # fast-path calls can reach any function; refuse.
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
        if decision.action == MASK and decision.copy_out is not None:
            decision = await self._copy_decision(decision)
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
        if decision.action not in PASS:
            return decision
        declared: Decision | None = None  # the masked DECLARE a FETCH reads from
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
                if made_by is self._sql_cursors and made[1].action == MASK:
                    declared = made[1]
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
            self._sql_prepared[name] = (sql, decision, self._decided_under())
        for name in decision.sql_declares:
            self._sql_cursors[name] = (sql, decision, self._decided_under())
        if declared is not None:  # its rows are masked as the DECLAREd query's would be
            several = len(decision.statements) > 1
            decision = dataclasses.replace(
                decision,
                action=MASK,
                masked_columns=declared.masked_columns,
                derived_positions=None if several else declared.derived_positions,
                direct_masked_positions=None if several else declared.direct_masked_positions,
                mask_cache={},
            )
        return decision

    async def _still_allowed(
        self, made_by: dict[str, tuple[str, Decision, Any]], name: str
    ) -> tuple[str, Decision, Any] | None:
        made = made_by.get(name)
        if made is not None and (
            made[1].valid_until <= time.time() or made[2] != self._decided_under()
        ):
            again = await self._decide(made[0])
            made = (made[0], again, self._decided_under()) if again.action in PASS else None
            if made is None:
                made_by.pop(name, None)
            else:
                made_by[name] = made
        return made

    def _decided_under(self) -> tuple[Any, int]:
        """What a SQL PREPARE's or DECLARE's decision rests on: the bundle, and the catalog
        as of the last DDL (a relation created since may shadow one it reads)."""
        return (self.agent.engine, self.agent.generation)

    def _note_side_effects(self, decision: Decision) -> None:
        if decision.search_path is not None:
            self.search_path = tuple(decision.search_path)
            if self.fast is not None:  # tickets hold decisions made under the old path
                self.fast.forget()
        if decision.creates:
            self.session_relations.add(decision.creates)
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
        if decision.action == MASK and decision.copy_out is not None:
            decision = await self._copy_decision(decision)
        if decision.action in (DENY, HOLD):
            await self._start_discard(decision)
            return b""
        self._note_side_effects(decision)
        prepared = Prepared(sql, decision, generation=self.agent.generation)
        self.expect.append(Pending("P", undo=bind_name(self.statements, name, prepared)))
        if decision.action == MASK:
            return self._describe_after_parse(prepared, payload, name)
        return None

    def _describe_after_parse(self, prepared: Prepared, payload: bytes, name: str) -> bytes:
        """Learn the result shape now: Execute does not repeat RowDescription.  The
        agent's own Describe is answered before anything the client sent next."""
        self.expect.append(Pending("DS", prepared))
        return codec.message(PARSE, payload) + codec.describe(TARGET_STATEMENT, name)

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
        undo = bind_name(self.portals, portal, (prepared, formats))
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
                f"Warden: {decision.message or 'statement blocked by policy'}",
                detail=f"rule: {decision.rule}" if decision.rule else None,
            )
        ]
