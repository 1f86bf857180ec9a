"""Agents as visible objects: heartbeats register them, the Agents page shows their health,
and agents_for_datasource tells who serves a datasource (and whether it is online)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from governance.agent_selectors import agents_for_datasource, live_agent_for
from governance.models import AgentInstance
from governance.services.bundles import policy_bundle_served
from governance.tokens import token_create

HEARTBEAT = "/api/v1/agent/heartbeat"


def _beat(shop, **overrides):
    return {
        "datasource": shop.name,
        "address": "10.0.0.7:6432",
        "version": "1.0",
        "bundle_version": "",
        "started_at": "2026-12-04T10:00:00+00:00",
        "open_connections": 3,
        "statements_per_second": 12.5,
        **overrides,
    }


def test_the_first_heartbeat_registers_the_agent_and_later_ones_refresh_it(agent_client, shop):
    first = agent_client.post(HEARTBEAT, _beat(shop), format="json")
    assert first.status_code == 200, first.content
    assert first.json()["address"] == "10.0.0.7:6432" and first.json()["interval"] == 10
    agent = AgentInstance.objects.get()
    assert (agent.datasource, agent.open_connections, agent.statements_per_second) == (
        shop,
        3,
        12.5,
    )
    seen = agent.last_seen_at
    second = agent_client.post(HEARTBEAT, _beat(shop, open_connections=0), format="json")
    assert second.status_code == 200
    agent.refresh_from_db()
    assert agent.open_connections == 0 and agent.last_seen_at > seen
    assert AgentInstance.objects.count() == 1
    # Registration is audited once; a routine heartbeat is not; a restart is.
    assert list(AuditEvent.objects.filter(action__startswith="agent.").values_list("action")) == [
        ("agent.registered",)
    ]
    agent_client.post(HEARTBEAT, _beat(shop, started_at="2026-12-04T11:00:00Z"), format="json")
    assert AuditEvent.objects.filter(action="agent.restarted").count() == 1


def test_an_agent_listening_on_every_interface_is_reached_at_its_heartbeats_source(
    agent_client, shop
):
    response = agent_client.post(HEARTBEAT, _beat(shop, address="0.0.0.0:7000"), format="json")
    assert response.status_code == 200
    assert response.json()["address"] == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("address", "no-port", "host:port"),
        ("address", "db:99999", "host:port"),
        ("open_connections", -1, "greater than or equal to 0"),
        ("started_at", "yesterday", "Datetime has wrong format"),
    ],
)
def test_a_malformed_heartbeat_is_refused_naming_the_field(
    agent_client, shop, field, value, message
):
    response = agent_client.post(HEARTBEAT, _beat(shop, **{field: value}), format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["fields"][field])
    assert not AgentInstance.objects.exists()


def test_a_heartbeat_for_an_unknown_datasource_is_404(agent_client, shop):
    response = agent_client.post(HEARTBEAT, _beat(shop, datasource="nope"), format="json")
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_only_agent_tokens_may_heartbeat(bearer_client, alice, shop):
    _token, secret = token_create(actor=alice, user=alice, name="psql")
    response = bearer_client(secret).post(HEARTBEAT, _beat(shop), format="json")
    assert response.status_code == 403
    assert not AgentInstance.objects.exists()


def _registered(shop, address, *, seconds_ago, bundle_version=""):
    now = timezone.now()
    return AgentInstance.objects.create(
        datasource=shop,
        address=address,
        started_at=now - timedelta(hours=1),
        last_seen_at=now - timedelta(seconds=seconds_ago),
        bundle_version=bundle_version,
    )


def test_agents_for_datasource_puts_online_agents_first_and_flags_health(shop, settings):
    settings.WARDEN_AGENT_OFFLINE_SECONDS = 30
    settings.WARDEN_AGENT_STALE_SECONDS = 600
    current = policy_bundle_served(datasource=shop)["bundle"]["version"]
    gone = _registered(shop, "10.0.0.1:6432", seconds_ago=3600)
    quiet = _registered(shop, "10.0.0.2:6432", seconds_ago=45)
    live = _registered(shop, "10.0.0.3:6432", seconds_ago=2, bundle_version=current)
    statuses = agents_for_datasource(shop, with_bundle=True)
    assert [(s.agent, s.is_online, s.is_stale, s.runs_current_bundle) for s in statuses] == [
        (live, True, False, True),
        (quiet, False, False, False),
        (gone, False, True, False),
    ]
    assert live_agent_for(shop) == live
    live.delete()
    assert live_agent_for(shop) is None


def _page(user):
    client = Client()
    client.force_login(user)
    return client.get("/agents/")


def test_admins_see_agents_and_may_forget_them(admin, shop):
    gone = _registered(shop, "10.0.0.1:6432", seconds_ago=3600)
    live = _registered(shop, "10.0.0.3:6432", seconds_ago=1)
    page = _page(admin).content.decode()
    assert f'id="agent-{live.pk}" data-online="true" data-stale="false"' in page
    assert f'id="agent-{gone.pk}" data-online="false" data-stale="true"' in page
    assert "Forget" in page
    client = Client()
    client.force_login(admin)
    assert client.post(f"/agents/{gone.pk}/forget/").status_code == 302
    assert list(AgentInstance.objects.all()) == [live]
    assert AuditEvent.objects.filter(action="agent.forgotten", actor=admin.username).exists()


def test_reviewers_see_agents_read_only(reviewer, shop):
    agent = _registered(shop, "10.0.0.3:6432", seconds_ago=1)
    response = _page(reviewer)
    assert response.status_code == 200 and "10.0.0.3:6432" in response.content.decode()
    assert "Forget" not in response.content.decode()
    client = Client()
    client.force_login(reviewer)
    assert client.post(f"/agents/{agent.pk}/forget/").status_code == 403
    assert AgentInstance.objects.filter(pk=agent.pk).exists()


@pytest.mark.parametrize("person", ["auditor", "requester", "outsider"])
def test_other_people_cannot_see_agents(request, person, shop):
    _registered(shop, "10.0.0.3:6432", seconds_ago=1)
    assert _page(request.getfixturevalue(person)).status_code == 403


def test_an_agent_that_refused_the_latest_bundle_says_why_on_the_agents_page(
    agent_client, shop, admin
):
    reason = "unsupported bundle format 2: this agent reads format 1 (upgrade the agent)"
    answer = agent_client.post(HEARTBEAT, _beat(shop, bundle_rejection=reason), format="json")
    assert answer.status_code == 200, answer.content
    assert AgentInstance.objects.get().bundle_rejection == reason
    browser = Client()
    browser.force_login(admin)
    page = browser.get("/agents/").content.decode()
    assert "refused the latest: unsupported bundle format 2" in page
    agent_client.post(HEARTBEAT, _beat(shop), format="json")
    assert AgentInstance.objects.get().bundle_rejection == ""


def test_an_agent_that_redacts_hash_masks_says_why_on_the_agents_page(agent_client, shop, admin):
    reason = (
        "the bundle's hash masks use masking key 'k2' and this agent holds 'k1' "
        "(WARDEN_MASKING_KEY_ID): they are redacted until the two agree"
    )
    answer = agent_client.post(HEARTBEAT, _beat(shop, masking_problem=reason), format="json")
    assert answer.status_code == 200, answer.content
    assert AgentInstance.objects.get().masking_problem == reason
    page = _page(admin).content.decode()
    assert "hash masks redacted: the bundle&#x27;s hash masks use masking key" in page
    agent_client.post(HEARTBEAT, _beat(shop), format="json")  # keys agree again
    assert AgentInstance.objects.get().masking_problem == ""
    assert "hash masks redacted" not in _page(admin).content.decode()
    too_long = agent_client.post(HEARTBEAT, _beat(shop, masking_problem="x" * 301), format="json")
    assert too_long.status_code == 400 and "masking_problem" in too_long.json()["fields"]
