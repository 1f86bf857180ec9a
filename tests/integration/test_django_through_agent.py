"""Django itself as a client of the agent: a PostgreSQL connection whose host and port are
the agent's, whose user is a Warden identity and whose password is that person's token."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connections, models

from tests.integration.conftest import person_token

ALIAS = "through_agent"


class Customer(models.Model):
    """The upstream table, read-only, for the ORM (not one of Warden's own models)."""

    full_name = models.TextField()
    email = models.CharField(max_length=200)

    class Meta:
        app_label = "integration_upstream"
        db_table = "customers"
        managed = False

    def __str__(self) -> str:
        return self.full_name


@pytest.fixture
def through_agent(start_agent: Any, requester: Any) -> Iterator[str]:
    from django.db.backends.postgresql.base import DatabaseWrapper

    agent = start_agent()
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",  # ignored by the agent: it always uses the datasource's database
        "HOST": "127.0.0.1",
        "PORT": str(agent.port),
        "USER": requester.username,
        "PASSWORD": person_token(requester, "django"),
        "OPTIONS": {"sslmode": "disable"},
    }
    # Django's defaults for every other key (TIME_ZONE, CONN_MAX_AGE, TEST, ...).
    default = copy.deepcopy(settings.DATABASES["default"])
    configured = connections.configure_settings({"default": default, ALIAS: database})[ALIAS]
    connections[ALIAS] = DatabaseWrapper(configured, alias=ALIAS)
    try:
        yield ALIAS
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]


def test_django_reads_through_the_agent_and_gets_masked_emails(
    shop: Any, through_agent: str, upstream_database: str
):
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={upstream_database}") as direct:
        raw = dict(direct.execute("SELECT id, email FROM customers WHERE id <= 3").fetchall())

    customers = list(Customer.objects.using(through_agent).filter(id__lte=3).order_by("id"))
    with connections[through_agent].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers")
        (count,) = cursor.fetchone()

    assert [customer.pk for customer in customers] == [1, 2, 3]
    for customer in customers:
        assert customer.email != raw[customer.pk]
        assert customer.email.endswith("@" + raw[customer.pk].split("@")[1])
    assert count == 60
