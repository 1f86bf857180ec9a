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
        sent_bytes: int = 0,
    ) -> None:
        """Queue one audit event.  The fields that repeat for a decision are JSON-encoded
        once per session; the shipper adds id and time when it encodes the batch."""
        action = action or decision.action
        self.agent.audit.record_statement(
            self._fragment(decision, index, action),
            None if rows is None else int(rows),
            duration_ms,
            error,
            sent_bytes,
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

    def count_sent(self, rows: int, payload_bytes: int) -> None:
        """``rows`` DataRow or CopyData messages, ``payload_bytes`` without their 5-byte
        headers, went to the client for the statement in flight."""
        self.sent_rows += rows
        self.sent_bytes += payload_bytes

    def _take_sent(self, rows: int | None, error: bool) -> tuple[int | None, int]:
        """The statement's rows and bytes sent, its counters zeroed for the next one.  A
        statement that failed (an error, a cancel) counts the rows that went out before."""
        if error and rows is None and self.sent_rows:
            rows = self.sent_rows
        sent_bytes = self.sent_bytes
        self.sent_rows = self.sent_bytes = 0
        return rows, sent_bytes

    def _statement_done(self, entry: Pending, rows: int | None, *, error: bool) -> None:
        rows, sent_bytes = self._take_sent(rows, error)
        if entry.decision is None or entry.inject:
            return
        duration = (time.perf_counter() - entry.started) * 1000.0
        self._audit(
            entry.decision,
            index=entry.statement_index,
            rows=rows,
            duration_ms=duration,
            error=error,
            sent_bytes=sent_bytes,
        )
        entry.statement_index += 1

    def _execute_done(self, entry: Pending, rows: int | None, *, error: bool) -> None:
        rows, sent_bytes = self._take_sent(rows, error)
        if entry.decision is None:
            return
        duration = (time.perf_counter() - entry.started) * 1000.0
        self._audit(
            entry.decision,
            index=0,
            rows=rows,
            duration_ms=duration,
            error=error,
            sent_bytes=sent_bytes,
        )
