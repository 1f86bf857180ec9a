"""A small Warden world for the contract test: people with tokens, a catalogued datasource,
a pending access request, a live grant. Token ids are far from small integers, so a fuzzer
drawing ids for ``/tokens/{id}/revoke/`` does not revoke the tokens the run itself uses."""

from __future__ import annotations

from pathlib import Path

from django.db import connection

from approvals import services as approvals
from governance.models import Engine, Tag, User
from governance.scopes import scopes_grantable
from governance.tokens import token_create
from tests.factories import (
    ColumnFactory,
    ColumnTagFactory,
    DataSourceFactory,
    TableFactory,
    UserFactory,
)
from tests.sources import sqlite_people

FAR_TOKEN_ID = 7_000_000


def contract_world(
    tmp_path: Path, *, admin: User, reviewer: User, auditor: User, requester: User
) -> dict[str, str]:
    datasource = DataSourceFactory(
        name="shop",
        engine=Engine.SQLITE,
        host="",
        port=None,
        username="",
        database=str(sqlite_people(tmp_path / "shop.sqlite3", count=20)),
    )
    people = TableFactory(datasource=datasource, schema_name="main", name="people")
    ColumnFactory(table=people, name="id", data_type="integer")
    email = ColumnFactory(table=people, name="email", sensitivity=2)
    ColumnTagFactory(column=email, tag=Tag.objects.get(name="PII.Email"))
    pending, granted = (
        approvals.request_create(
            actor=requester,
            datasource=datasource,
            scope=scope,
            level="read_unmasked",
            reason=reason,
            duration_minutes=60,
        )
        for scope, reason in (
            ({"columns": ["main.people.email"]}, "Support ticket 4711"),
            ({"tables": ["main.people"]}, "Quarter-end reconciliation"),
        )
    )
    approvals.request_approve(actor=reviewer, access_request=granted, comment="ok")
    assert pending.state == "pending"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('governance_accesstoken', 'id'), %s)",
            [FAR_TOKEN_ID],
        )
    agent = UserFactory(username="warden_agent", is_service_account=True)
    people_by_role = {
        "admin": admin,
        "reviewer": reviewer,
        "auditor": auditor,
        "requester": requester,
    }
    # Every scope each role may grant: the contract covers what each role may do at all.
    tokens = {
        role: token_create(
            actor=user,
            user=user,
            name=f"contract-{role}",
            scopes=[scope for scope in scopes_grantable(user) if scope != "agent"],
        )[1]
        for role, user in people_by_role.items()
    }
    tokens["agent"] = token_create(
        actor=admin, user=agent, name="agent", is_agent=True, datasources=[datasource]
    )[1]
    return tokens
