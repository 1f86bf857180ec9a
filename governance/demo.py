"""The embedded demo: people with each role, an AI agent's service account, a shop database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from django.contrib.auth.models import Group
from django.db import transaction

from governance.models import AccessToken, DataSource, Engine, Role, User
from governance.services import datasource_create
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


def _fresh_token(admin: User, user: User, *, is_agent: bool = False) -> str:
    name = "demo-agent" if is_agent else DEMO_TOKEN_NAME
    for old in AccessToken.objects.filter(user=user, name=name, revoked_at__isnull=True):
        token_revoke(actor=admin, token=old)
    return token_create(actor=admin, user=user, name=name, is_agent=is_agent)[1]


class DemoSite(TypedDict):
    people: tuple[DemoPerson, ...]
    tokens: dict[str, str]
    datasource: DataSource


def demo_setup(*, demo_database: Path) -> DemoSite:
    """Create or refresh the demo; returns what to print (passwords, tokens, datasource)."""
    from classification.sample_data import shop_sqlite_create

    if not demo_database.exists():
        demo_database.parent.mkdir(parents=True, exist_ok=True)
        shop_sqlite_create(demo_database)
    with transaction.atomic():
        users = {person.username: _ensure_person(person) for person in DEMO_PEOPLE}
        admin = users["admin"]
        datasource = DataSource.objects.filter(name="shop").first() or datasource_create(
            actor=admin,
            name="shop",
            engine=Engine.SQLITE,
            database=str(demo_database),
            description="Demo shop database (SQLite, generated with Faker)",
        )
        tokens = {
            "copilot": _fresh_token(admin, users["copilot"]),
            "analyst": _fresh_token(admin, users["analyst"]),
            "agent": _fresh_token(admin, admin, is_agent=True),
        }
    return {"people": DEMO_PEOPLE, "tokens": tokens, "datasource": datasource}
