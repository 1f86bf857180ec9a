"""Audit events of one session: one per statement run or refused.  The fields that repeat
for a decision are JSON-encoded once per session (the fragment cache, which the native
path reads too); the shipper adds id and time when it encodes the batch."""

from __future__ import annotations

import time

from agent.audit import statement_fragment
from agent.postgres.state import Pending, SessionState
from agent.verdicts import Decision


class AuditTrail(SessionState):
    """Audit events for the statements of one session."""

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
        return statement_fragment(
            identity=self.identity.name if self.identity else "",
            datasource=self.agent.config.datasource,
            client_address=self.client_address,
            decision=decision,
            index=index,
            action=action,
        )

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
