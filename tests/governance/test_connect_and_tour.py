"""The datasource page's Connect panel and the admins' first-run tour on the home page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.services import request_create, request_deny
from audit.services import event_record
from classification.models import ScanRun
from governance.models import AccessToken, AgentInstance, Engine
from governance.selectors import TOKEN_PLACEHOLDER, first_run_tour
from governance.services import guardrails_recommended_create
from governance.services.agents import agent_heartbeat_record
from governance.tokens import token_authenticate, token_create
from tests.factories import DataSourceFactory, TableFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(settings):
    settings.WARDEN_AGENT_ADDRESS = "127.0.0.1:6543"
    return DataSourceFactory(name="shop", database="shopdb")


def test_connect_panel_shows_psql_for_the_signed_in_person_with_a_token_placeholder(
    client, reviewer, shop
):
    client.force_login(reviewer)
    page = client.get(f"/datasources/{shop.pk}/").content.decode()
    assert 'id="connect-panel"' in page and 'id="connect-agent-status"' in page
    assert (
        f"psql &quot;host=127.0.0.1 port=6543 dbname=shopdb user=rex_reviewer "
        f"password={TOKEN_PLACEHOLDER.replace('<', '&lt;').replace('>', '&gt;')}&quot;"
    ) in page
    assert (
        "postgresql://rex_reviewer:%3Cyour%20personal%20access%20token%3E@127.0.0.1:6543/shopdb"
        in (page)
    )
    assert 'id="connect-mcp"' in page and "http://testserver/mcp/" in page
    assert "Bearer &lt;your personal access token&gt;" in page
    assert "No agent has registered for this datasource yet" in page


def test_connect_panel_shows_the_registered_agent_its_health_and_uses_its_address(
    client, reviewer, admin, shop
):
    agent_token, _secret = token_create(
        actor=admin, user=admin, name="agent", is_agent=True, datasources=[shop]
    )
    agent_heartbeat_record(
        token=agent_token,
        datasource=shop,
        source_address="127.0.0.1",
        address="127.0.0.1:7432",
        version="1.0",
        bundle_version="not-the-current-one",
        started_at=timezone.now(),
        open_connections=2,
        statements_per_second=1.5,
    )
    client.force_login(reviewer)
    page = client.get(f"/datasources/{shop.pk}/").content.decode()
    assert "<code>127.0.0.1:7432</code>" in page and ">online<" in page
    assert "an older policy bundle" in page
    assert "psql &quot;host=127.0.0.1 port=7432 dbname=shopdb" in page

    AgentInstance.objects.update(last_seen_at=timezone.now() - timedelta(minutes=5))
    page = client.get(f"/datasources/{shop.pk}/").content.decode()
    assert ">offline<" in page
    # An offline agent is not where to connect: the configured address is shown again.
    assert "psql &quot;host=127.0.0.1 port=6543 dbname=shopdb" in page


def test_connect_panel_gives_a_mysql_datasource_a_tls_mariadb_command(client, reviewer, settings):
    settings.WARDEN_AGENT_ADDRESS = "127.0.0.1:3307"
    mysql = DataSourceFactory(name="crm", engine=Engine.MYSQL, database="crm")
    client.force_login(reviewer)
    page = client.get(f"/datasources/{mysql.pk}/").content.decode()
    assert "mariadb --ssl -h 127.0.0.1 -P 3307 -u rex_reviewer" in page
    assert "mysql://rex_reviewer:" in page


def test_connect_panel_offers_no_psql_for_a_datasource_no_agent_serves(client, reviewer):
    sqlite = DataSourceFactory(name="legacy", engine=Engine.SQLITE, database="/tmp/legacy.db")
    client.force_login(reviewer)
    page = client.get(f"/datasources/{sqlite.pk}/").content.decode()
    assert 'id="connect-unsupported"' in page and 'id="connect-psql"' not in page


def test_connect_panel_creates_a_working_token_for_the_signed_in_person_only(
    client, reviewer, admin, shop
):
    client.force_login(reviewer)
    response = client.post(f"/datasources/{shop.pk}/connect/token/")
    assert response.status_code == 200
    secret = re.search(r"password=(wdn_[\w-]+)", response.content.decode()).group(1)
    token = token_authenticate(secret=secret, username="rex_reviewer")
    assert token is not None and token.user == reviewer and not token.is_agent
    assert token_authenticate(secret=secret, username=admin.username) is None
    assert "connect-create-token" not in response.content.decode()  # shown once, filled in


def test_outsider_cannot_see_the_connect_panel_nor_create_a_token_there(client, outsider, shop):
    client.force_login(outsider)
    assert client.get(f"/datasources/{shop.pk}/").status_code == 403
    assert client.post(f"/datasources/{shop.pk}/connect/token/").status_code == 403
    assert not AccessToken.objects.filter(user=outsider).exists()


def test_connect_token_needs_post_and_an_existing_datasource(client, reviewer, shop):
    client.force_login(reviewer)
    assert client.get(f"/datasources/{shop.pk}/connect/token/").status_code == 405
    assert client.post(f"/datasources/{shop.pk + 99}/connect/token/").status_code == 404
    assert not AccessToken.objects.filter(user=reviewer).exists()


def _done(steps) -> list[bool]:
    return [step.done for step in steps]


def test_tour_steps_are_ticked_from_the_data(admin, reviewer, requester, shop):
    assert _done(first_run_tour()) == [False, False, False, False]
    ScanRun.objects.create(datasource=shop, state=ScanRun.State.SUCCEEDED, sample_size=10)
    guardrails_recommended_create(actor=admin, datasource=shop)
    assert _done(first_run_tour()) == [True, True, False, False]
    event_record(actor=requester, action="query.executed", datasource=shop, decision="allow")
    assert _done(first_run_tour()) == [True, True, True, False]
    TableFactory(datasource=shop, schema_name="public", name="orders")
    access_request = request_create(
        actor=requester,
        datasource=shop,
        scope={"tables": ["public.orders"]},
        level="read",
        reason="a monthly report",
        duration_minutes=30,
    )
    request_deny(actor=reviewer, access_request=access_request, comment="not now")
    assert _done(first_run_tour()) == [True, True, True, True]


def test_tour_is_on_the_home_page_for_admins_only(client, admin, reviewer):
    client.force_login(admin)
    page = client.get("/").content.decode()
    assert page.count('class="tour-step') == 4 and 'data-done="false"' in page
    client.force_login(reviewer)
    assert 'id="tour"' not in client.get("/").content.decode()
