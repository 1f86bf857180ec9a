"""Fixtures for approvals: a catalogued datasource, reviewers, API clients, the agent token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from approvals import services
from approvals.models import AccessRequest
from governance.models import DataSource, Tag, User
from governance.taxonomy import taxonomy_load
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
    """shop: public.customers (id, email [PII.Email], full_name [PII.PersonName]), public.orders."""
    if not Tag.objects.exists():  # a transactional test before this one flushed the taxonomy
        taxonomy_load(Tag)
    datasource = DataSourceFactory(name="shop")
    customers = TableFactory(datasource=datasource, schema_name="public", name="customers")
    ColumnFactory(table=customers, name="id", data_type="integer")
    email = ColumnFactory(table=customers, name="email", sensitivity=2)
    ColumnTagFactory(column=email)
    full_name = ColumnFactory(table=customers, name="full_name", sensitivity=2)
    ColumnTagFactory(column=full_name, tag=Tag.objects.get(name="PII.PersonName"))
    orders = TableFactory(datasource=datasource, schema_name="public", name="orders")
    ColumnFactory(table=orders, name="id", data_type="integer")
    ColumnFactory(table=orders, name="total", data_type="numeric")
    return datasource


@pytest.fixture
def second_reviewer(db) -> User:
    return UserFactory(username="rita_reviewer", roles=["reviewer"])


@pytest.fixture
def agent_token(admin, shop) -> str:
    """The enforcement agent's token, serving ``shop``."""
    proxy = UserFactory(username="warden_agent", is_service_account=True)
    _token, secret = token_create(
        actor=admin, user=proxy, name="agent", is_agent=True, datasources=[shop]
    )
    return secret


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """api(user) → a client logged in as user; api(token="wdn_…") → a bearer-token client."""

    def make(user: User | None = None, token: str | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def file_request(shop, requester) -> Callable[..., AccessRequest]:
    def make(**overrides: Any) -> AccessRequest:
        values: dict[str, Any] = {
            "actor": requester,
            "datasource": shop,
            "scope": {"tables": ["public.customers"]},
            "level": "read_unmasked",
            "reason": "Investigate ticket 4711",
            "duration_minutes": 60,
        }
        values.update(overrides)
        return services.request_create(**values)

    return make
