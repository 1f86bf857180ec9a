"""Decisions on access requests, pushed to whoever waits for them.

A held statement (the agent's long-poll) and a waiting MCP tool call both wait in
``approvals.api.long_poll``. Instead of reading the database every 200 ms, a waiter joins
the request's channel-layer group before it reads the state, and the decision is sent to
that group after the deciding transaction commits. The database stays the truth: a waiter
still re-reads the state every ``FALLBACK_POLL_SECONDS`` (a lost message costs at most
that), and without a working channel layer it polls at the old 200 ms. The embedded
in-memory layer cannot wake a waiter from another thread (where services run), so with it
the database is read every 200 ms too.

A waiter's one ``receive`` lives for the whole wait: the fallback reads do not cancel it.
Cancelling a Redis receive costs its connection (redis-py drops a connection whose read
was interrupted) and, every 2 s, raced channels-redis's own 2 s blocking pop; it is
cancelled once, when the wait ends, and not waited on past ``CANCEL_WAIT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

DECIDED_EVENTS = frozenset({"approved", "denied", "cancelled", "expired"})
FALLBACK_POLL_SECONDS = 2.0
UNAVAILABLE_POLL_SECONDS = 0.2
CANCEL_WAIT_SECONDS = 1.0


def decision_group(request_id: int) -> str:
    return f"approvals_decision_{request_id}"


def decision_push(request_id: int, event: str) -> None:
    """After commit: wake every waiter of this request (a failure only costs latency)."""
    if event not in DECIDED_EVENTS:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            decision_group(request_id), {"type": "approvals.decided", "event": event}
        )
    except Exception:
        logger.exception("approvals: pushing the decision on request %s failed", request_id)


class DecisionWaiter:
    """One waiter's subscription; ``wait`` returns early, and True, when a decision arrives."""

    def __init__(self, layer: Any, channel: str | None) -> None:
        self.layer = layer
        self.channel = channel
        self.fallback = (
            UNAVAILABLE_POLL_SECONDS
            if isinstance(layer, InMemoryChannelLayer)
            else FALLBACK_POLL_SECONDS
        )
        self._receiving: asyncio.Future[Any] | None = None

    async def wait(self, timeout: float) -> bool:
        if self.channel is None:
            await asyncio.sleep(min(timeout, UNAVAILABLE_POLL_SECONDS))
            return False
        if self._receiving is None:
            self._receiving = asyncio.ensure_future(self.layer.receive(self.channel))
        # self.fallback: the in-memory layer never wakes this waiter (see above).
        done, _ = await asyncio.wait({self._receiving}, timeout=min(timeout, self.fallback))
        if not done:
            return False  # still receiving: the caller reads the database meanwhile
        received, self._receiving = self._receiving, None
        if received.cancelled() or received.exception() is not None:
            logger.error(
                "approvals: channel layer receive failed; polling instead",
                exc_info=None if received.cancelled() else received.exception(),
            )
            self.channel = None
            return False
        return True

    async def close(self) -> None:
        """Stop receiving; a receive that does not end within CANCEL_WAIT_SECONDS is left
        to end on its own rather than hold the answer."""
        receiving, self._receiving = self._receiving, None
        if receiving is None or receiving.done():
            return
        receiving.cancel()
        done, _ = await asyncio.wait({receiving}, timeout=CANCEL_WAIT_SECONDS)
        if not done:
            logger.warning("approvals: a channel layer receive did not stop when cancelled")
            # Whatever it ends with is expected: nobody is to be told it was never read.
            receiving.add_done_callback(lambda ended: ended.cancelled() or ended.exception())


@contextlib.asynccontextmanager
async def decision_subscription(request_id: int) -> AsyncIterator[DecisionWaiter]:
    """Join the request's group (before reading its state, so no decision slips between)."""
    layer = get_channel_layer()
    group, channel = decision_group(request_id), None
    if layer is not None:
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
        except Exception:
            logger.exception("approvals: channel layer unavailable; polling the database")
            channel = None
    waiter = DecisionWaiter(layer, channel)
    try:
        yield waiter
    finally:
        await waiter.close()
        if channel is not None:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)
