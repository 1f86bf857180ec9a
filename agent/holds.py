"""Waiting for the review of a held statement, the same for every protocol.

A protocol's session files the access request, tells its client in its own words, and
formats refusals; the wait itself (a long-poll that a client's cancel interrupts) and the
fetch of the bundle that carries the new grant live here, once.
"""

from __future__ import annotations

import asyncio

from agent.bundle import BundlePoller
from agent.controlplane import ControlPlaneClient, HeldRequest
from agent.verdicts import Decision

# Attempts, 0.2 s apart, to fetch a bundle that already carries the approval's grant.
GRANT_BUNDLE_ATTEMPTS = 5


class HoldCancelled(Exception):
    """The client cancelled its statement (CancelRequest, KILL QUERY) while it waited."""


async def hold_file(
    cp: ControlPlaneClient, *, datasource: str, identity: str, sql: str, decision: Decision
) -> HeldRequest:
    """File the access request for a held statement (the control plane reuses an identical
    pending one); raises ``ControlPlaneUnavailable`` or ``AccessRequestRefused``."""
    return await cp.file_access_request(
        datasource=datasource,
        identity=identity,
        statement=sql,
        fingerprint=decision.fingerprint,
        level="write" if decision.tables_written else "read",
        reason=f"held by the Warden agent: {decision.rule or 'require_approval'}",
    )


async def review_wait(
    cp: ControlPlaneClient, held: HeldRequest, wait: float, cancelled: asyncio.Event
) -> HeldRequest:
    """Long-poll the request until it leaves ``pending`` or ``wait`` runs out; raises
    ``HoldCancelled`` as soon as ``cancelled`` is set (and control-plane errors as they come)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    cancel_wait = asyncio.ensure_future(cancelled.wait())
    poll: asyncio.Future[HeldRequest] | None = None
    try:
        while held.state == "pending" and (remaining := deadline - loop.time()) > 0:
            poll = asyncio.ensure_future(
                cp.access_request_state(held.id, wait=min(remaining, 60.0))
            )
            await asyncio.wait({poll, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
            if cancelled.is_set():
                raise HoldCancelled()
            held = poll.result()
        return held
    finally:
        cancel_wait.cancel()
        if poll is not None:  # cancelled, or the session ended while waiting
            poll.cancel()


async def grant_bundle_fetch(poller: BundlePoller, held: HeldRequest) -> None:
    """Fetch the bundle now, until it carries the approved request's grant (a few tries:
    the control plane may serve its cached bundle for a moment); raises
    ``ControlPlaneUnavailable`` when it cannot be fetched."""
    grant_id = (held.grant or {}).get("id")
    for _ in range(GRANT_BUNDLE_ATTEMPTS):
        bundle = await poller.refresh_now()
        if bundle is not None and (
            grant_id is None or any(g.get("id") == grant_id for g in bundle.grants)
        ):
            return
        await asyncio.sleep(0.2)
