"""Holding a statement for approval, the same for every protocol.

``hold`` runs the whole flow once: file the access request (an identical pending one is
reused), tell the client which request holds it, wait for the review with ``--hold-wait``
(a long-poll that a client's cancel interrupts), fetch the bundle that carries the new
grant and decide the statement again.  A protocol's session only registers how its
clients cancel, says ``notify`` in its own words and turns a ``HoldRefusal`` into its
error.  Fail closed: without an answer from the control plane nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.bundle import BundlePoller
from agent.controlplane import (
    AccessRequestRefused,
    ControlPlaneClient,
    ControlPlaneUnavailable,
    HeldRequest,
)
from agent.verdicts import HOLD, Decision
from warden_client.operations import HoldFiling, request_state_words

log = logging.getLogger("agent.holds")

# Attempts, 0.2 s apart, to fetch a bundle that already carries the approval's grant.
GRANT_BUNDLE_ATTEMPTS = 5


class HoldCancelled(Exception):
    """The client cancelled its statement (CancelRequest, KILL QUERY) while it waited."""


async def hold_file(
    cp: ControlPlaneClient, *, datasource: str, identity: str, sql: str, decision: Decision
) -> HeldRequest:
    """File the access request for a held statement (the control plane reuses an identical
    pending one); raises ``ControlPlaneUnavailable`` or ``AccessRequestRefused``."""
    filing: HoldFiling = {
        "datasource": datasource,
        "identity": identity,
        "statement": sql,
        "fingerprint": decision.fingerprint,
        "level": "write" if decision.tables_written else "read",
        "reason": f"held by the Warden agent: {decision.rule or 'require_approval'}",
    }
    if decision.request_tables:
        filing["scope"] = {"tables": list(decision.request_tables), "columns": [], "tags": []}
    return await cp.file_access_request(**filing)


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


@dataclass(frozen=True)
class HoldRefusal:
    """Why a held statement was not run, for the protocol to send as its error."""

    message: str
    detail: str | None = None
    hint: str | None = None
    cancelled: bool = False  # the client cancelled the wait (its protocol's cancel error)


async def hold(
    *,
    cp: ControlPlaneClient,
    poller: BundlePoller,
    datasource: str,
    identity: str,
    sql: str,
    decision: Decision,
    wait: float,
    cancelled: asyncio.Event,
    notify: Callable[[str], Awaitable[None]],
    decide: Callable[[str], Awaitable[Decision]],
) -> Decision | HoldRefusal:
    """The decision to run a held statement under after its approval (decided again on a
    bundle carrying the grant: allow, mask or deny), or why it was not run."""
    what = decision.message or "statement requires an approved access request"
    try:
        held = await hold_file(
            cp, datasource=datasource, identity=identity, sql=sql, decision=decision
        )
    except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
        log.warning("hold: could not file an access request: %s", exc)
        return HoldRefusal(
            f"{what}; the statement was not run: the access request could not be filed "
            "because the Warden control plane is unreachable or refused it",
            detail=str(exc),
        )
    where = f"request {held.id} (review at {held.review_url})"
    retry = f"Retry once access request {held.id} is approved."
    await notify(f"held for approval: {where}")
    if wait <= 0:
        return HoldRefusal(f"{what}; held for approval: {where}", hint=retry)
    try:
        held = await review_wait(cp, held, wait, cancelled)
    except HoldCancelled:
        return HoldRefusal("the client cancelled the statement", cancelled=True)
    except (ControlPlaneUnavailable, AccessRequestRefused) as exc:
        log.warning("hold: lost the control plane while waiting: %s", exc)
        return HoldRefusal(
            f"lost contact with the Warden control plane while {where} was pending; "
            "the statement was not run",
            detail=str(exc),
        )
    if held.state == "pending":
        return HoldRefusal(
            f"{where} is still pending after {wait:g} s; the statement was not run", hint=retry
        )
    if held.state != "approved":
        return HoldRefusal(
            f"{where} was {request_state_words(held.state)}; the statement was not run"
        )
    try:
        await grant_bundle_fetch(poller, held)
    except ControlPlaneUnavailable as exc:
        return HoldRefusal(
            f"request {held.id} was approved, but the policy bundle with its grant could "
            "not be fetched; the statement was not run",
            detail=str(exc),
            hint="Retry in a few seconds.",
        )
    decided = await decide(sql)
    if decided.action == HOLD:
        return HoldRefusal(
            f"request {held.id} was approved, but its grant does not cover this statement; "
            "it was not run",
            detail=f"rule: {decided.rule}" if decided.rule else None,
        )
    return decided
