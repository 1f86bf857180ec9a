"""A person's psycopg session through the real agent, enforced from Warden's real bundle and
audited into Warden's real audit trail."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.conftest import person_token, wait_until


def _raw_emails(database: str) -> list[str]:
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as direct:
        return [row[0] for row in direct.execute("SELECT email FROM customers ORDER BY id LIMIT 5")]


def test_a_person_gets_masked_emails_blocked_drops_and_an_audit_trail(
    shop: Any, start_agent: Any, requester: Any
):
    from audit.models import AuditEvent

    agent = start_agent()
    token = person_token(requester)
    with agent.connect(requester.username, token) as conn:
        rows = conn.execute("SELECT id, email FROM customers ORDER BY id LIMIT 5").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="drop"):
            conn.execute("DROP TABLE salaries")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on

    raw = _raw_emails(shop.database)
    masked = [row[1] for row in rows]
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]
    for original, shown in zip(raw, masked, strict=True):
        assert shown != original
        assert shown.endswith("@" + original.split("@")[1])  # the "email" mask keeps the domain

    def audited() -> list[AuditEvent]:
        events = list(AuditEvent.objects.filter(action="query.executed", actor=requester.username))
        return events if len(events) >= 3 else []

    events = wait_until(audited, 10, "the agent's audit events in Warden")
    by_statement = {event.details["statement"]: event for event in events}
    select = by_statement["SELECT id, email FROM customers ORDER BY id LIMIT $1"]
    drop = by_statement["DROP TABLE salaries"]
    assert select.decision == "mask" and select.datasource_name == "shop"
    assert "public.customers.email" in select.details["masked_columns"]
    assert "PII.Email" in select.details["tags"]
    assert select.actor_kind == "user"
    assert drop.decision == "deny" and "no drops" in drop.details["rule"]


def test_an_unknown_token_is_refused_by_the_control_plane(start_agent: Any, requester: Any):
    agent = start_agent()
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        agent.connect(requester.username, "wdn_not_a_real_token")
