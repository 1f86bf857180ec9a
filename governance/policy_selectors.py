"""Reads for policy rules, guardrails and the preview's subject picker."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from config.errors import InvalidInput
from governance.models import DataSource, GuardrailRule, PolicyRule, Tag, User


def policy_rules_list(*, datasource: DataSource | None = None) -> QuerySet[PolicyRule]:
    rules = PolicyRule.objects.select_related("datasource", "tag").prefetch_related(
        "users", "groups"
    )
    if datasource is not None:
        rules = rules.filter(datasource=datasource)
    return rules.order_by("datasource__name", "-priority", "id")


def guardrail_rules_list(*, datasource: DataSource | None = None) -> QuerySet[GuardrailRule]:
    """Guardrails of one datasource including the global ones, or all of them."""
    guardrails = GuardrailRule.objects.select_related("datasource").prefetch_related(
        "users", "groups"
    )
    if datasource is not None:
        guardrails = guardrails.filter(Q(datasource=datasource) | Q(datasource__isnull=True))
    return guardrails.order_by("id")


def datasource_by_reference(
    reference: str | int | None, *, among: QuerySet[DataSource] | None = None
) -> DataSource | None:
    """A datasource by id or by name (the agent and the CLI use names), optionally only
    ``among`` some (an agent token's)."""
    if reference in (None, ""):
        return None
    candidates = DataSource.objects.all() if among is None else among
    text = str(reference)
    datasource = candidates.filter(name=text).first()
    # isdecimal() alone accepts other scripts' digits, which int() may refuse or misread.
    if datasource is None and text.isascii() and text.isdecimal() and len(text) < 19:
        datasource = candidates.filter(pk=int(text)).first()
    return datasource


def subject_choices() -> QuerySet[User]:
    """People and service accounts a rule or a preview can name."""
    return User.objects.filter(is_active=True).order_by("is_service_account", "username")


def group_choices() -> QuerySet[Group]:
    return Group.objects.order_by("name")


def users_by_username(usernames: list[str]) -> list[User]:
    """Users named in an API request; ValueError names the ones that do not exist."""
    found = {user.username: user for user in User.objects.filter(username__in=usernames)}
    missing = sorted(set(usernames) - set(found))
    if missing:
        raise InvalidInput(f"Unknown user(s): {', '.join(missing)}")
    return [found[name] for name in dict.fromkeys(usernames)]


def groups_by_name(names: list[str]) -> list[Group]:
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    missing = sorted(set(names) - set(found))
    if missing:
        raise InvalidInput(f"Unknown group(s): {', '.join(missing)}")
    return [found[name] for name in dict.fromkeys(names)]


def tag_by_name(name: str | None) -> Tag | None:
    if not name:
        return None
    tag = Tag.objects.filter(name=name).first()
    if tag is None:
        raise InvalidInput(f"Unknown tag {name!r}.")
    return tag
