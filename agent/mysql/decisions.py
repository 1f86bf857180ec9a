"""The decision each statement runs under (cached, decided by the shared core, estimated
for row limits, held for approval) and its audit event; a statement that does not run is
refused with a MySQL error code and SQLSTATE naming the rule.
"""

from __future__ import annotations

from agent.audit import statement_fragment
from agent.mysql import packets as p
from agent.mysql.hold import hold_statement
from agent.mysql.state import SessionState
from agent.verdicts import ALLOW, HOLD, MASK, Decision

ER_TABLEACCESS_DENIED = 1142
ER_PARSE = 1064
ER_UNKNOWN = 1105


def refusal(decision: Decision) -> bytes:
    """The ERR packet for a decision that does not run: MySQL code + SQLSTATE, naming the rule."""
    message = f"Warden: {decision.message or 'statement blocked by policy'}"
    if decision.rule:
        message += f" (rule: {decision.rule})"
    if decision.rule == "unparseable":
        return p.err_packet(ER_PARSE, "42000", message)
    if decision.rule in ("no_bundle", "catalog_unavailable"):
        return p.err_packet(ER_UNKNOWN, "HY000", message)
    return p.err_packet(ER_TABLEACCESS_DENIED, "42000", message)


class StatementDecisions(SessionState):
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
        self.audit(decision, 0, None, 0.0, False)
        return refusal(decision)

    def audit(
        self,
        decision: Decision,
        index: int,
        rows: int | None,
        duration_ms: float,
        error: bool,
        sent_bytes: int = 0,  # the rows' payload bytes, after masking
    ) -> None:
        """The audit event of result ``index`` of a statement (or of its refusal)."""
        cached = self._fragments.get((id(decision), index))
        if cached is None or cached[0] is not decision:
            assert self.identity is not None
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
