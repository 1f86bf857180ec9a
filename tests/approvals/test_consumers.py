"""The live inbox over channels-redis against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Group

from approvals import services
from approvals.routing import websocket_urlpatterns
from config.channel_layer import RedisChannelLayer
from tests.factories import DataSourceFactory, TableFactory, UserFactory
from tests.live import use_redis_channel_layer


@pytest.fixture
def redis_layer(settings):
    use_redis_channel_layer(settings)
    from channels.layers import get_channel_layer

    assert isinstance(get_channel_layer(), RedisChannelLayer)
    yield


async def _connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/approvals/")
    communicator.scope["user"] = user
    connected, _code = await communicator.connect()
    assert connected
    return communicator


async def _next(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout=timeout))


async def _file(**values):
    return await sync_to_async(services.request_create)(**values)


def _request_values(requester, datasource, table="public.customers"):
    return {
        "actor": requester,
        "datasource": datasource,
        "scope": {"tables": [table]},
        "level": "read",
        "reason": "live test",
        "duration_minutes": 15,
    }


@pytest.fixture
def two_sources(transactional_db, shop, admin):
    """shop (global reviewers) and hr (only the hr-reviewers group reviews it)."""
    hr = DataSourceFactory(name="hr")
    TableFactory(datasource=hr, schema_name="public", name="salaries")
    hr_reviewers = Group.objects.create(name="hr-reviewers")
    services.review_policy_set(actor=admin, datasource=hr, reviewer_groups=[hr_reviewers])
    hr_reviewer = UserFactory(username="hanna_hr")
    hr_reviewer.groups.add(hr_reviewers)
    return shop, hr, hr_reviewer


async def test_reviewers_see_new_requests_of_their_datasources_only(
    redis_layer, two_sources, reviewer, ai_agent, outsider
):
    shop, hr, hr_reviewer = two_sources
    shop_inbox = await _connect(reviewer)
    hr_inbox = await _connect(hr_reviewer)
    outsider_inbox = await _connect(outsider)
    agent_inbox = await _connect(ai_agent)
    try:
        created = await _file(**_request_values(ai_agent, shop))
        message = await _next(shop_inbox)
        assert (message["id"], message["state"], message["audience"]) == (
            created.pk,
            "pending",
            "review",
        )
        assert f'id="review-{created.pk}"' in message["html"]
        own = await _next(agent_inbox)
        assert own["audience"] == "mine" and own["id"] == created.pk
        assert await hr_inbox.receive_nothing(timeout=0.3)
        assert await outsider_inbox.receive_nothing(timeout=0.1)

        hr_request = await _file(**_request_values(ai_agent, hr, "public.salaries"))
        assert (await _next(hr_inbox))["id"] == hr_request.pk
        assert await shop_inbox.receive_nothing(timeout=0.3)
    finally:
        for communicator in (shop_inbox, hr_inbox, outsider_inbox, agent_inbox):
            await communicator.disconnect()


async def test_someone_elses_decision_updates_every_reviewer_and_the_requester(
    redis_layer, transactional_db, shop, reviewer, second_reviewer, requester
):
    first = await _connect(reviewer)
    second = await _connect(second_reviewer)
    mine = await _connect(requester)
    try:
        created = await _file(**_request_values(requester, shop))
        for communicator in (first, second, mine):
            assert (await _next(communicator))["state"] == "pending"
        await sync_to_async(services.request_approve)(actor=second_reviewer, access_request=created)
        assert (await _next(first))["state"] == "approved"
        assert (await _next(second))["state"] == "approved"
        decided = await _next(mine)
        assert decided["state"] == "approved" and decided["audience"] == "mine"
    finally:
        for communicator in (first, second, mine):
            await communicator.disconnect()


async def test_anonymous_sockets_are_refused(redis_layer):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/approvals/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected and code == 4401
    await communicator.disconnect()  # the refused socket closes, as a browser's does


async def test_break_glass_alerts_reach_reviewers_and_auditors(
    redis_layer, transactional_db, shop, admin, reviewer, auditor, requester
):
    await sync_to_async(services.review_policy_set)(
        actor=admin, datasource=shop, break_glass_enabled=True
    )
    reviewer_inbox = await _connect(reviewer)
    auditor_inbox = await _connect(auditor)
    try:
        await sync_to_async(services.break_glass_use)(
            actor=requester,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="P1 outage",
        )
        kinds = {(await _next(reviewer_inbox))["kind"] for _ in range(2)}
        assert kinds == {"request", "break_glass"}
        alert = await _next(auditor_inbox)
        assert alert["kind"] == "break_glass" and "P1 outage" in alert["html"]
    finally:
        await reviewer_inbox.disconnect()
        await auditor_inbox.disconnect()
    await asyncio.sleep(0)
