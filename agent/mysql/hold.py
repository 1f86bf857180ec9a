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

import asyncio
from typing import TYPE_CHECKING

from agent.holds import HoldRefusal, hold
from agent.mysql import packets as p
from agent.verdicts import Decision

if TYPE_CHECKING:
    from agent.mysql.decisions import StatementDecisions

ER_HELD = 1142
ER_QUERY_INTERRUPTED = 1317


def _held(refusal: HoldRefusal) -> bytes:
    """The ERR packet of a refusal: MySQL has no detail or hint fields, so they join the
    message."""
    message = refusal.message
    if refusal.detail:
        message += f" ({refusal.detail})"
    if refusal.hint:
        message += f". {refusal.hint}"
    return p.err_packet(ER_HELD, "42000", f"Warden: {message}")


async def hold_statement(
    session: StatementDecisions, sql: str, decision: Decision
) -> Decision | bytes:
    """The decision to run a held statement under after its approval, or the ERR packet."""
    assert session.identity is not None
    agent = session.agent
    session.audit(decision, 0, None, 0.0, False)
    cancelled = asyncio.Event()  # KILL QUERY of this connection sets it
    agent.holding[session.connection_id] = cancelled
    try:
        outcome = await hold(
            cp=agent.cp,
            poller=agent.poller,
            datasource=agent.config.datasource,
            identity=session.identity.name,
            sql=sql,
            decision=decision,
            wait=agent.config.hold_wait,
            cancelled=cancelled,
            notify=_no_notices,
            decide=session._decide,
        )
    finally:
        agent.holding.pop(session.connection_id, None)
    if isinstance(outcome, HoldRefusal):
        if outcome.cancelled:
            return p.err_packet(ER_QUERY_INTERRUPTED, "70100", "Query execution was interrupted")
        return _held(outcome)
    return outcome


async def _no_notices(text: str) -> None:
    """MySQL has no notices: the request is named in the ERR packet."""
