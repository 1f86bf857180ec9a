"""The embedded demo: people with each role, an AI agent's service account, a shop database.

The shop lives in SQLite by default; given a PostgreSQL URL (what `make run` passes, see
`warden_demo/`) it is loaded there instead, so the agent can govern it, and the demo policy
set is applied through the same services an admin uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import psycopg
from django.contrib.auth.models import Group
from django.db import transaction
from psycopg.conninfo import conninfo_to_dict

from governance.models import (
    AccessToken,
    DataSource,
    Engine,
    PolicyAction,
    PolicyRule,
    ResourceKind,
    Role,
    Tag,
    User,
)
from governance.services import (
    datasource_create,
    datasource_update,
    guardrails_recommended_create,
    policy_rule_create,
)
from governance.tokens import token_create, token_revoke


@dataclass(frozen=True)
class DemoPerson:
    username: str
    password: str
    roles: tuple[str, ...]
    is_service_account: bool = False


DEMO_PEOPLE = (
    DemoPerson("admin", "warden-admin", (Role.ADMIN, Role.REVIEWER)),
    DemoPerson("reviewer", "warden-reviewer", (Role.REVIEWER,)),
    DemoPerson("auditor", "warden-auditor", (Role.AUDITOR,)),
    DemoPerson("analyst", "warden-analyst", (Role.REQUESTER,)),
    DemoPerson("copilot", "", (Role.REQUESTER,), is_service_account=True),
)
DEMO_TOKEN_NAME = "demo"


def _ensure_person(person: DemoPerson) -> User:
    user, _created = User.objects.get_or_create(
        username=person.username,
        defaults={
            "email": f"{person.username}@warden.example",
            "is_service_account": person.is_service_account,
        },
    )
    if person.password:
        user.set_password(person.password)
    else:
        user.set_unusable_password()
    user.is_staff = user.is_superuser = Role.ADMIN in person.roles
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role)[0] for role in person.roles])
    return user


def _fresh_token(admin: User, user: User, *, serves: DataSource | None = None) -> str:
    """A new token for ``user`` (an agent token serving ``serves`` when given)."""
    name = "demo-agent" if serves else DEMO_TOKEN_NAME
    for old in AccessToken.objects.filter(user=user, name=name, revoked_at__isnull=True):
        token_revoke(actor=admin, token=old)
    if serves is not None:
        return token_create(actor=admin, user=user, name=name, is_agent=True, datasources=[serves])[
            1
        ]
    return token_create(actor=admin, user=user, name=name)[1]


def _sqlite_shop(demo_database: Path) -> dict[str, Any]:
    from classification.sample_data import shop_sqlite_create

    if not demo_database.exists():
        demo_database.parent.mkdir(parents=True, exist_ok=True)
        shop_sqlite_create(demo_database)
    return {
        "engine": Engine.SQLITE,
        "database": str(demo_database),
        "description": "Demo shop database (SQLite, generated with Faker)",
    }


def _postgresql_shop(shop_url: str) -> tuple[dict[str, Any], str]:
    """Load the shop into the (empty) database at `shop_url` once; its datasource fields."""
    with psycopg.connect(shop_url) as connection:
        loaded = connection.execute("SELECT to_regclass('public.customers')").fetchone()
    if loaded is None or loaded[0] is None:
        from classification.sample_data import shop_postgresql_create  # Faker: only when needed

        shop_postgresql_create(shop_url)
    parts = conninfo_to_dict(shop_url)
    fields = {
        "engine": Engine.POSTGRESQL,
        "host": str(parts.get("host") or "127.0.0.1"),
        "port": int(parts.get("port") or 5432),
        "database": str(parts["dbname"]),
        "username": str(parts.get("user") or ""),
        "description": "Demo shop database (PostgreSQL, generated with Faker)",
    }
    return fields, str(parts.get("password") or "")


def _shop_datasource(admin: User, fields: dict[str, Any], password: str) -> tuple[DataSource, bool]:
    """Create the `shop` datasource or point it at where the shop is now (a new port after a
    restart); True when it needs a scan (never scanned, or moved to another database)."""
    datasource = DataSource.objects.filter(name="shop").first()
    if datasource is None:
        return datasource_create(actor=admin, name="shop", password=password, **fields), True
    changed = {key: value for key, value in fields.items() if getattr(datasource, key) != value}
    moved = bool(set(changed) & {"engine", "host", "database"})
    if changed:
        datasource_update(actor=admin, datasource=datasource, password=password, **changed)
    return datasource, moved or datasource.last_scanned_at is None


def demo_policies_apply(*, actor: User, datasource: DataSource) -> list[str]:
    """The demo policy set, added once by name: sensitive columns masked by default (the
    datasource default), the recommended guardrails, requesters see e-mails with only the
    domain while reviewers see them whole, and `payments` needs approval for the analyst."""
    created = [
        rule.name for rule in guardrails_recommended_create(actor=actor, datasource=datasource)
    ]
    email = Tag.objects.get(name="PII.Email")
    rules: list[dict[str, Any]] = [
        {
            "name": "Requesters see only the domain of e-mail addresses",
            "resource_kind": ResourceKind.TAG,
            "tag": email,
            "action": PolicyAction.MASK,
            "mask_method": "email",
            "groups": [Group.objects.get(name=Role.REQUESTER)],
        },
        {
            "name": "Reviewers see e-mail addresses unmasked",
            "resource_kind": ResourceKind.TAG,
            "tag": email,
            "action": PolicyAction.ALLOW,
            "groups": [Group.objects.get(name=Role.REVIEWER)],
        },
        {
            "name": "Payments need approval for the analyst",
            "resource_kind": ResourceKind.TABLE,
            "schema_name": "public",
            "table_name": "payments",
            "action": PolicyAction.REQUIRE_APPROVAL,
            "users": [User.objects.get(username="analyst")],
        },
    ]
    existing = set(PolicyRule.objects.filter(datasource=datasource).values_list("name", flat=True))
    for rule in rules:
        if rule["name"] not in existing:
            policy_rule_create(actor=actor, datasource=datasource, description="Demo", **rule)
            created.append(rule["name"])
    return created


class DemoSite(TypedDict):
    people: tuple[DemoPerson, ...]
    tokens: dict[str, str]
    datasource: DataSource
    needs_scan: bool


def demo_setup(*, demo_database: Path, shop_url: str = "") -> DemoSite:
    """Create or refresh the demo; returns what to print (passwords, tokens, datasource).

    With `shop_url` (a PostgreSQL URL) the shop is loaded there and governed by the demo
    policy set; otherwise it is a SQLite file at `demo_database`."""
    password = ""
    if shop_url:
        fields, password = _postgresql_shop(shop_url)
    else:
        fields = _sqlite_shop(demo_database)
    with transaction.atomic():
        users = {person.username: _ensure_person(person) for person in DEMO_PEOPLE}
        admin = users["admin"]
        datasource, needs_scan = _shop_datasource(admin, fields, password)
        if datasource.engine == Engine.POSTGRESQL:
            demo_policies_apply(actor=admin, datasource=datasource)
        tokens = {
            "copilot": _fresh_token(admin, users["copilot"]),
            "analyst": _fresh_token(admin, users["analyst"]),
            "reviewer": _fresh_token(admin, users["reviewer"]),
            "agent": _fresh_token(admin, admin, serves=datasource),
        }
    return {
        "people": DEMO_PEOPLE,
        "tokens": tokens,
        "datasource": datasource,
        "needs_scan": needs_scan,
    }
