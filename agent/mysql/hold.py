"""Statements held for approval, on MySQL connections.

Same contract as on PostgreSQL (agent/README.md, "Holds and approvals"): the hold is
audited, an access request is filed (an identical pending one is reused), and the client
is refused at once naming the request and its review URL, or with ``--hold-wait`` waits
with its connection open while the agent long-polls the review.  MySQL has no notices, so
the request is named in the ERR packet.  ``KILL QUERY <connection id>`` from another
connection of the same identity stops the wait (ER_QUERY_INTERRUPTED 1317 / 70100).
Fail closed: nothing runs without an answer from the control plane.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent.controlplane import AccessRequestRefused, ControlPlaneUnavailable, HeldRequest
from agent.holds import HoldCancelled, grant_bundle_fetch, hold_file, review_wait
from agent.mysql import packets as p
from agent.verdicts import HOLD, Decision

if TYPE_CHECKING:
    from agent.mysql.session import MySqlSession

log = logging.getLogger("agent.mysql.hold")
ER_HELD = 1142
ER_QUERY_INTERRUPTED = 1317


def _held(message: str) -> bytes:
    return p.err_packet(ER_HELD, "42000", f"Warden: {message}")


async def hold_statement(session: MySqlSession, sql: str, decision: Decision) -> Decision | bytes:
    """The decision to run a held statement under after its approval, or the ERR packet."""
    assert session.identity is not None
    agent = session.agent
    session._audit(decision, 0, rows=None, duration_ms=0.0, error=False)
    what = decision.message or "statement requires an approved access request"
    try:
        held = await hold_file(
            agent.cp,
            datasource=agent.config.datasource,
            identity=session.identity.name,
            sql=sql,
            decision=decision,
        )
    except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
        log.warning("hold: could not file an access request: %s", exc)
        return _held(
            f"{what}; the statement was not run: the access request could not be filed "
            f"because the Warden control plane is unreachable or refused it ({exc})"
        )
    where = f"request {held.id} (review at {held.review_url})"
    wait = agent.config.hold_wait
    if wait <= 0:
        return _held(f"{what}; held for approval: {where}. Retry once it is approved.")
    try:
        held = await _poll(session, held, wait)
    except HoldCancelled:
        session.cancelled.clear()
        return p.err_packet(ER_QUERY_INTERRUPTED, "70100", "Query execution was interrupted")
    except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
        return _held(
            f"lost contact with the Warden control plane while {where} was pending ({exc})"
        )
    if held.state == "pending":
        return _held(f"{where} is still pending after {wait:g} s; the statement was not run")
    if held.state != "approved":
        return _held(f"{where} was {held.state}; the statement was not run")
    return await _decide_approved(session, sql, held)


async def _poll(session: MySqlSession, held: HeldRequest, wait: float) -> HeldRequest:
    """The review wait; ``KILL QUERY`` of this connection sets ``session.cancelled``."""
    session.agent.holding[session.connection_id] = session.cancelled
    try:
        return await review_wait(session.agent.cp, held, wait, session.cancelled)
    finally:
        session.agent.holding.pop(session.connection_id, None)


async def _decide_approved(session: MySqlSession, sql: str, held: HeldRequest) -> Decision | bytes:
    try:
        await grant_bundle_fetch(session.agent.poller, held)
    except ControlPlaneUnavailable as exc:
        return _held(
            f"request {held.id} was approved, but the policy bundle with its grant could not "
            f"be fetched; the statement was not run ({exc})"
        )
    decision = await session._decide(sql)
    if decision.action == HOLD:
        return _held(
            f"request {held.id} was approved, but its grant does not cover this statement; "
            "it was not run"
        )
    return decision
