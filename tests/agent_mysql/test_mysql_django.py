"""Django's MySQL backend (mysqlclient on libmariadb) through the agent, over TLS: its
connection set-up queries pass and a model-less query returns masked rows."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

from agent.testing import self_signed_certificate


def _database_access(request: pytest.FixtureRequest) -> Any:
    """pytest-django blocks database access outside its fixtures; this test opens its own
    connection (not Warden's database), so it lifts the block when the plugin is loaded."""
    try:
        blocker = request.getfixturevalue("django_db_blocker")
    except pytest.FixtureLookupError:
        return contextlib.nullcontext()
    return blocker.unblock()


def test_django_mysql_backend_reads_masked_rows_through_the_agent(
    agent_factory: Any, mysql_database: str, tmp_path: Path, request: pytest.FixtureRequest
):
    if not settings.configured:
        settings.configure(USE_TZ=True, INSTALLED_APPS=[])
        django.setup()
    from django.db.backends.mysql.base import DatabaseWrapper

    cert, key = self_signed_certificate(tmp_path)
    agent = agent_factory(tls_cert=cert, tls_key=key)
    wrapper = DatabaseWrapper(
        {
            "ENGINE": "django.db.backends.mysql",
            "NAME": mysql_database,
            "USER": "alice",
            "PASSWORD": "wdn_alice",
            "HOST": "127.0.0.1",
            "PORT": str(agent.port),
            "OPTIONS": {"ssl_mode": "REQUIRED", "charset": "utf8mb4"},
            "TIME_ZONE": None,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
            "TEST": {},
        },
        alias="warden_mysql_agent",
    )
    try:
        with _database_access(request), wrapper.cursor() as cursor:
            cursor.execute("SELECT name, email FROM customers WHERE id = %s", [2])
            row = cursor.fetchone()
        assert wrapper.mysql_is_mariadb
    finally:
        wrapper.close()
    assert row == ("Linus Doe2", "****@example.com")
