"""Audit fixtures: an agent token, event helpers, and tampering straight in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import event_record
from governance.models import DataSource
from governance.tokens import token_create
from tests.factories import DataSourceFactory, UserFactory


@pytest.fixture
def agent_owner(db):
    return UserFactory(username="edge_agent", is_service_account=True)


@pytest.fixture
def shop_source(db) -> DataSource:
    """The datasource the agent's events name (``agent_event``'s default)."""
    return DataSourceFactory(name="shop")


@pytest.fixture
def agent_token(admin, agent_owner, shop_source) -> str:
    _token, secret = token_create(
        actor=admin, user=agent_owner, name="edge-1", is_agent=True, datasources=[shop_source]
    )
    return secret


@pytest.fixture
def record_events(db) -> Callable[..., list[AuditEvent]]:
    def record(count: int, *, actor: Any = None, action: str = "tag.added") -> list[AuditEvent]:
        return [
            event_record(actor=actor, action=action, details={"n": index}) for index in range(count)
        ]

    return record


def agent_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "id": str(uuid.uuid4()),
        "time": datetime(2026, 11, 20, 10, 0, tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "identity": "req_requester",
        "datasource": "shop",
        "client_address": "10.0.0.7",
        "fingerprint": "a1b2c3",
        "statement": "SELECT email FROM public.customers WHERE id = ?",
        "kind": "select",
        "tables_read": ["public.customers"],
        "tables_written": [],
        "columns_read": ["public.customers.email"],
        "masked_columns": ["public.customers.email"],
        "decision": "mask",
        "rule": "rule:1:mask-pii",
        "rows": 1,
        "duration_ms": 3.5,
    }
    event.update(overrides)
    return event


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run SQL on the audit table with its user triggers off, inside the test transaction."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
