"""Fixtures for governance tests: a catalogued datasource and an enforcement agent's token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from approvals import services as approvals
from approvals.models import Grant
from governance.models import Column, DataSource, Tag
from governance.tokens import token_create
from tests.factories import (
    ColumnFactory,
    ColumnTagFactory,
    DataSourceFactory,
    TableFactory,
    UserFactory,
)


@pytest.fixture
def shop(db) -> DataSource:
    return DataSourceFactory(name="shop")


@pytest.fixture
def customers_email(shop) -> Column:
    """public.customers.email, tagged PII.Email (confidential) by a scan."""
    table = TableFactory(datasource=shop, schema_name="public", name="customers")
    column = ColumnFactory(table=table, name="email")
    ColumnTagFactory(column=column, tag=Tag.objects.get(name="PII.Email"))
    return column


@pytest.fixture
def customers_grant(shop, customers_email, requester, reviewer) -> Callable[[], Grant]:
    """customers_grant() → a live 60-minute read_unmasked grant on public.customers for the
    requester, filed and approved through the approvals services."""

    def grant() -> Grant:
        access_request = approvals.request_create(
            actor=requester,
            datasource=shop,
            scope={"tables": ["public.customers"]},
            level="read_unmasked",
            reason="ticket 4711",
            duration_minutes=60,
        )
        approvals.request_approve(actor=reviewer, access_request=access_request)
        return Grant.objects.get(request=access_request)

    return grant


@pytest.fixture
def analyst_group(db) -> Group:
    return Group.objects.get_or_create(name="analyst")[0]


@pytest.fixture
def alice(analyst_group):
    user = UserFactory(username="alice", roles=["requester"])
    user.groups.add(analyst_group)
    return user


@pytest.fixture
def enforcement_agent(db):
    return UserFactory(username="warden_agent", is_service_account=True)


@pytest.fixture
def agent_token(admin, enforcement_agent, shop) -> str:
    """The enforcement agent's token, serving ``shop``."""
    _token, secret = token_create(
        actor=admin, user=enforcement_agent, name="agent", is_agent=True, datasources=[shop]
    )
    return secret


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def bearer_client() -> Callable[[str], APIClient]:
    """An API client sending ``Authorization: Bearer <secret>``."""
    return _bearer


@pytest.fixture
def agent_client(agent_token) -> APIClient:
    return _bearer(agent_token)


@pytest.fixture
def api_as() -> Callable[[Any], APIClient]:
    """An API client logged in as a user (None = anonymous)."""

    def client_for(user: Any) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for
