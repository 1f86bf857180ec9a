"""Decisions are pushed to waiting long-polls (approvals.push): a waiter wakes as the
reviewer's transaction commits, not at its next database read; without a channel layer
it still answers, by polling."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from approvals import push, services
from approvals.models import AccessRequest
from config.channel_layer import redis_channel_layer
from tests.live import use_redis_channel_layer

AGENT_STATE = "/api/v1/agent/access-requests/{}"
APPROVE_AFTER = 0.6


def _approve_soon(reviewer, request_id: int) -> None:
    def approve() -> None:
        time.sleep(APPROVE_AFTER)
        try:
            services.request_approve(
                actor=reviewer, access_request=AccessRequest.objects.get(pk=request_id)
            )
        finally:
            connection.close()

    threading.Thread(target=approve).start()


def _waited(api, agent_token, request_id: int) -> tuple[str, float]:
    started = time.monotonic()
    response = api(token=agent_token).get(AGENT_STATE.format(request_id), {"wait": 20})
    assert response.status_code == 200
    return response.json()["state"], time.monotonic() - started


def test_an_approval_wakes_the_agents_long_poll_at_once(
    transactional_db, settings, api, agent_token, file_request, reviewer
):
    use_redis_channel_layer(settings)
    access_request = file_request()
    _approve_soon(reviewer, access_request.pk)
    state, elapsed = _waited(api, agent_token, access_request.pk)
    assert state == "approved"
    # Polling would answer at the fallback read (2 s); the push answers right after commit.
    assert APPROVE_AFTER < elapsed < APPROVE_AFTER + push.FALLBACK_POLL_SECONDS - 0.5, elapsed


def test_without_a_channel_layer_the_long_poll_falls_back_to_the_database(
    transactional_db, settings, api, agent_token, file_request, reviewer
):
    # Nothing listens there: the layer fails.
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer("redis://127.0.0.1:1")}
    access_request = file_request()
    _approve_soon(reviewer, access_request.pk)
    state, elapsed = _waited(api, agent_token, access_request.pk)
    assert state == "approved" and APPROVE_AFTER < elapsed < 3, elapsed


def test_a_decision_whose_push_was_lost_is_found_by_the_fallback_read(
    transactional_db, settings, api, agent_token, file_request
):
    use_redis_channel_layer(settings)
    access_request = file_request()

    def decide_without_a_push() -> None:
        time.sleep(APPROVE_AFTER)
        try:  # as if the message were lost: the row changes, nothing is sent
            AccessRequest.objects.filter(pk=access_request.pk).update(
                state=AccessRequest.State.DENIED, decided_at=timezone.now()
            )
        finally:
            connection.close()

    threading.Thread(target=decide_without_a_push).start()
    state, elapsed = _waited(api, agent_token, access_request.pk)
    assert state == "denied"
    assert APPROVE_AFTER < elapsed < APPROVE_AFTER + push.FALLBACK_POLL_SECONDS + 1.0, elapsed


def test_a_waiting_requester_is_answered_when_the_request_falls_due(
    transactional_db, settings, api, requester, file_request
):
    use_redis_channel_layer(settings)
    access_request = file_request()
    AccessRequest.objects.filter(pk=access_request.pk).update(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    started = time.monotonic()
    response = api(requester).get(f"/api/v1/access-requests/{access_request.pk}/", {"wait": 20})
    elapsed = time.monotonic() - started
    # Pending still (the beat expires it), but the wait ends at the expiry, not after 20 s.
    assert response.status_code == 200 and response.json()["state"] == "pending"
    assert 0.9 < elapsed < 1 + push.FALLBACK_POLL_SECONDS + 1.0, elapsed


async def test_a_waiter_keeps_one_redis_receive_across_its_fallback_reads(settings, monkeypatch):
    """Fallback reads every few hundred ms for longer than channels-redis's 2 s blocking pop:
    the waiter's receive goes on under them (cancelling it would drop its Redis connection
    each time), and a decision sent afterwards still wakes the waiter at once."""
    import redis.asyncio.connection as redis_connection
    from channels.layers import get_channel_layer

    use_redis_channel_layer(settings)
    connects = 0
    real_connect = redis_connection.AbstractConnection.connect

    async def counted_connect(self, *args, **kwargs):
        nonlocal connects
        connects += 1 if not self.is_connected else 0
        return await real_connect(self, *args, **kwargs)

    monkeypatch.setattr(redis_connection.AbstractConnection, "connect", counted_connect)
    async with push.decision_subscription(4242) as waiter:
        waiter.fallback = 0.3
        for _ in range(9):  # 2.7 s of fallback reads
            assert await waiter.wait(5.0) is False
        after_fallbacks = connects
        await get_channel_layer().group_send(
            push.decision_group(4242), {"type": "approvals.decided", "event": "approved"}
        )
        started = time.monotonic()
        assert await waiter.wait(5.0) is True
        assert time.monotonic() - started < 0.3
    # group_add and the receive: at most two connections, not one per fallback read.
    assert after_fallbacks <= 2, after_fallbacks
