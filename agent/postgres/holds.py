"""Statements that need approval: the access request filed for them, and, with
``--hold-wait``, the wait for its review with the connection open."""

from __future__ import annotations

import asyncio

from agent.holds import HoldRefusal, hold
from agent.postgres import codec
from agent.postgres.audit_trail import AuditTrail
from agent.verdicts import Decision

# Sessions waiting for an approval, by the cancel key the agent gave their client.
HOLDS: dict[tuple[int, int], asyncio.Event] = {}


class HoldForApproval(AuditTrail):
    """Holding a statement for approval (see ``hold``)."""

    async def hold(self, sql: str, decision: Decision) -> Decision | list[bytes]:
        """A statement that needs approval (agent.holds.hold): the request is named in a
        NOTICE, a client's CancelRequest with this session's key stops the wait.

        Returns the decision to run the statement under after an approval, or the messages
        that refuse it."""
        assert self.identity is not None
        self._audit_refusal(decision)
        agent = self.agent
        cancelled = asyncio.Event()
        if self.cancel_key is not None:
            HOLDS[self.cancel_key] = cancelled
        try:
            outcome = await hold(
                cp=agent.cp,
                poller=agent.poller,
                datasource=agent.config.datasource,
                identity=self.identity.name,
                sql=sql,
                decision=decision,
                wait=agent.config.hold_wait,
                cancelled=cancelled,
                notify=self._notice,
                decide=self._decide,
            )
        finally:
            if self.cancel_key is not None:
                HOLDS.pop(self.cancel_key, None)
        if isinstance(outcome, HoldRefusal):
            if outcome.cancelled:
                return [codec.error_response("57014", "canceling statement due to user request")]
            return [hold_error(outcome.message, detail=outcome.detail, hint=outcome.hint)]
        if getattr(self.reader, "_eof", False):  # the client left while it waited
            raise ConnectionResetError("the client left while its statement was held")
        return outcome

    async def _notice(self, text: str) -> None:
        self.writer.write(codec.notice_response(f"Warden: {text}"))
        await self.writer.drain()


def hold_error(text: str, *, detail: str | None = None, hint: str | None = None) -> bytes:
    return codec.error_response("42501", f"Warden: {text}", detail=detail, hint=hint)
