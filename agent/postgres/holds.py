"""Statements that need approval: the access request filed for them, and, with
``--hold-wait``, the wait for its review with the connection open."""

from __future__ import annotations

import asyncio
import logging

from agent.controlplane import AccessRequestRefused, ControlPlaneUnavailable, HeldRequest
from agent.holds import HoldCancelled, grant_bundle_fetch, hold_file, review_wait
from agent.postgres import codec
from agent.postgres.audit_trail import AuditTrail
from agent.verdicts import HOLD, Decision

log = logging.getLogger("agent.session")

# Sessions waiting for an approval, by the cancel key the agent gave their client.
HOLDS: dict[tuple[int, int], asyncio.Event] = {}


class HoldForApproval(AuditTrail):
    """Holding a statement for approval (see ``hold``)."""

    async def hold(self, sql: str, decision: Decision) -> Decision | list[bytes]:
        """A statement that needs approval.  File an access request for it (the control
        plane reuses an identical pending one), tell the client which, then either refuse
        at once or, with ``--hold-wait``, wait for the review with the connection open.

        Returns the decision to run the statement under after an approval (taken from a
        freshly fetched bundle: allow, mask or deny), or the messages that refuse it.  Fails
        closed: without an answer from the control plane nothing runs."""
        assert self.identity is not None
        self._audit_refusal(decision)
        agent = self.agent
        what = decision.message or "statement requires an approved access request"
        try:
            held = await hold_file(
                agent.cp,
                datasource=agent.config.datasource,
                identity=self.identity.name,
                sql=sql,
                decision=decision,
            )
        except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
            log.warning("hold: could not file an access request: %s", exc)
            return [
                hold_error(
                    f"{what}; the statement was not run: the access request could not be "
                    "filed because the Warden control plane is unreachable or refused it",
                    detail=str(exc),
                )
            ]
        where = f"request {held.id} (review at {held.review_url})"
        notice = codec.notice_response(f"Warden: held for approval: {where}")
        wait = agent.config.hold_wait
        if wait <= 0:
            return [
                notice,
                hold_error(
                    f"{what}; held for approval: {where}",
                    hint=f"Retry once access request {held.id} is approved.",
                ),
            ]
        self.writer.write(notice)
        await self.writer.drain()
        return await self._wait_for_review(sql, held, wait)

    async def _wait_for_review(
        self, sql: str, held: HeldRequest, wait: float
    ) -> Decision | list[bytes]:
        where = f"request {held.id} (review at {held.review_url})"
        try:
            held = await self._poll_review(held, wait)
        except HoldCancelled:
            return [codec.error_response("57014", "canceling statement due to user request")]
        except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
            log.warning("hold: lost the control plane while waiting: %s", exc)
            return [
                hold_error(
                    f"lost contact with the Warden control plane while {where} was pending; "
                    "the statement was not run",
                    detail=str(exc),
                )
            ]
        if held.state == "pending":
            return [
                hold_error(
                    f"{where} is still pending after {wait:g} s; the statement was not run",
                    hint=f"Retry once access request {held.id} is approved.",
                )
            ]
        if held.state != "approved":
            return [hold_error(f"{where} was {held.state}; the statement was not run")]
        return await self._decide_approved(sql, held)

    async def _poll_review(self, held: HeldRequest, wait: float) -> HeldRequest:
        """Long-poll the request until it leaves ``pending``, ``wait`` runs out, or the
        client cancels (a CancelRequest with this session's key)."""
        cancelled = asyncio.Event()
        if self.cancel_key is not None:
            HOLDS[self.cancel_key] = cancelled
        try:
            return await review_wait(self.agent.cp, held, wait, cancelled)
        finally:
            if self.cancel_key is not None:
                HOLDS.pop(self.cancel_key, None)

    async def _decide_approved(self, sql: str, held: HeldRequest) -> Decision | list[bytes]:
        """Fetch the bundle that carries the new grant now, then decide the statement again."""
        where = f"request {held.id}"
        try:
            await grant_bundle_fetch(self.agent.poller, held)
        except ControlPlaneUnavailable as exc:
            return [
                hold_error(
                    f"{where} was approved, but the policy bundle with its grant could not "
                    "be fetched; the statement was not run",
                    detail=str(exc),
                    hint="Retry in a few seconds.",
                )
            ]
        decision = await self._decide(sql)
        if decision.action == HOLD:
            return [
                hold_error(
                    f"{where} was approved, but its grant does not cover this statement; "
                    "it was not run",
                    detail=f"rule: {decision.rule}" if decision.rule else None,
                )
            ]
        if getattr(self.reader, "_eof", False):  # the client left while it waited
            raise ConnectionResetError("the client left while its statement was held")
        return decision


def hold_error(text: str, *, detail: str | None = None, hint: str | None = None) -> bytes:
    return codec.error_response("42501", f"Warden: {text}", detail=detail, hint=hint)
