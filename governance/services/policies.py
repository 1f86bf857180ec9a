"""Everything that changes policy rules, guardrails and a datasource's sensitive defaults.

Each service validates (ValueError with a reason a person can act on), checks the actor is
an admin (PermissionError), changes the rows and records its audit event with before/after
in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from audit.services import event_record
from config.errors import InvalidInput, NotAllowed
from governance.models import (
    DataSource,
    GuardrailAction,
    GuardrailKind,
    GuardrailRule,
    MaskMethod,
    PolicyAction,
    PolicyRule,
    ResourceKind,
    Role,
    Sensitivity,
    Tag,
    User,
)
from governance.models.policies import MASK_METHODS_WITH_PARAM

MAX_MASK_PARAM = 64
PRIORITY_RANGE = (0, 10_000)
RULE_FIELDS = (
    "name",
    "description",
    "priority",
    "enabled",
    "everyone",
    "resource_kind",
    "schema_name",
    "table_name",
    "column_name",
    "tag",
    "sensitivity",
    "action",
    "mask_method",
    "mask_param",
    "allow_exact_lookups",
)
GUARDRAIL_FIELDS = ("name", "description", "kinds", "everyone", "action", "max_rows", "enabled")
# Offered by guardrails_recommended_create; tuned to stop accidents, not routine work.
RECOMMENDED_GUARDRAILS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Block destructive DDL", ("drop", "truncate"), "block"),
    ("Block privilege and role changes", ("grant_revoke", "role"), "block"),
    (
        "Block server-side programs and files",
        ("copy_program", "server_file_functions", "do_block"),
        "block",
    ),
    ("Approve schema changes", ("alter",), "require_approval"),
    (
        "Approve unfiltered writes",
        ("delete_without_where", "update_without_where"),
        "require_approval",
    ),
    (
        "Approve mixed read/write batches",
        ("mixed_multi_statement",),
        "require_approval",
    ),
)
# What a datasource may do with a sensitive column no rule matches.
DEFAULT_SENSITIVE_ACTIONS = tuple(PolicyAction.values)


def _require_admin(actor: User) -> None:
    if not actor.has_role(Role.ADMIN):
        raise NotAllowed("Only admins manage policies and guardrails.")


def _sorted_names(objects: Iterable[Any], attribute: str) -> list[str]:
    return sorted(getattr(obj, attribute) for obj in objects)


def subjects_snapshot(rule: PolicyRule | GuardrailRule) -> dict[str, Any]:
    """The bundle's subject shape: usernames (people and service accounts) and group names."""
    return {
        "everyone": rule.everyone,
        "users": _sorted_names(rule.users.all(), "username"),
        "groups": _sorted_names(rule.groups.all(), "name"),
    }


def resource_snapshot(rule: PolicyRule) -> dict[str, Any]:
    """The bundle's resource shape for one rule."""
    kind = rule.resource_kind
    if kind == ResourceKind.SCHEMA:
        return {"kind": kind, "schema": rule.schema_name}
    if kind == ResourceKind.TABLE:
        return {"kind": kind, "schema": rule.schema_name, "table": rule.table_name}
    if kind == ResourceKind.COLUMN:
        return {
            "kind": kind,
            "schema": rule.schema_name,
            "table": rule.table_name,
            "column": rule.column_name,
        }
    if kind == ResourceKind.TAG:
        return {"kind": kind, "tag": rule.tag.name if rule.tag else None}
    if kind == ResourceKind.SENSITIVITY:
        level = Sensitivity(rule.sensitivity).label if rule.sensitivity is not None else None
        return {"kind": kind, "level": level}
    return {"kind": str(kind)}


def policy_rule_snapshot(rule: PolicyRule) -> dict[str, Any]:
    """What the audit trail records about a rule (before/after)."""
    return {
        "datasource": rule.datasource.name,
        "name": rule.name,
        "description": rule.description,
        "priority": rule.priority,
        "enabled": rule.enabled,
        "subjects": subjects_snapshot(rule),
        "resource": resource_snapshot(rule),
        "action": rule.action,
        "mask_method": rule.mask_method or None,
        "mask_param": rule.mask_param,
        "allow_exact_lookups": rule.allow_exact_lookups,
    }


def guardrail_snapshot(guardrail: GuardrailRule) -> dict[str, Any]:
    return {
        "datasource": guardrail.datasource.name if guardrail.datasource else None,
        "name": guardrail.name,
        "description": guardrail.description,
        "kinds": list(guardrail.kinds),
        "subjects": subjects_snapshot(guardrail),
        "action": guardrail.action,
        "max_rows": guardrail.max_rows,
        "enabled": guardrail.enabled,
    }


# ---------------------------------------------------------------- validation


def _clean_name(name: Any) -> str:
    cleaned = str(name or "").strip()
    if not cleaned:
        raise InvalidInput("A name is required.")
    if len(cleaned) > 100:
        raise InvalidInput("The name must be at most 100 characters.")
    return cleaned


def _check_subjects(everyone: bool, users: list[User], groups: list[Group]) -> None:
    if not everyone and not users and not groups:
        raise InvalidInput("Choose the subjects: everyone, or at least one user or group.")
    for user in users:
        if not isinstance(user, User):
            raise InvalidInput(f"{user!r} is not a user.")
    for group in groups:
        if not isinstance(group, Group):
            raise InvalidInput(f"{group!r} is not a group.")


def _clean_resource(values: dict[str, Any]) -> None:
    """Check the fields the resource kind needs and blank the ones it ignores."""
    kind = values.get("resource_kind")
    if kind not in ResourceKind.values:
        raise InvalidInput(f"resource kind must be one of {', '.join(ResourceKind.values)}")
    names_needed: dict[str, tuple[str, ...]] = {
        "schema": ("schema_name",),
        "table": ("schema_name", "table_name"),
        "column": ("schema_name", "table_name", "column_name"),
    }
    needed = names_needed.get(str(kind), ())
    for key in ("schema_name", "table_name", "column_name"):
        values[key] = str(values.get(key) or "").strip() if key in needed else ""
        if key in needed and not values[key]:
            raise InvalidInput(f"A {kind} rule needs {key.replace('_name', '')} name.")
    if kind == ResourceKind.TAG:
        if not isinstance(values.get("tag"), Tag):
            raise InvalidInput("A tag rule needs a tag from the taxonomy.")
    else:
        values["tag"] = None
    if kind == ResourceKind.SENSITIVITY:
        if values.get("sensitivity") not in Sensitivity.values:
            raise InvalidInput(
                "A sensitivity rule needs a level: "
                + ", ".join(f"{value} ({label})" for value, label in Sensitivity.choices)
            )
    else:
        values["sensitivity"] = None


def _clean_masking(values: dict[str, Any]) -> None:
    """Masking fields only mean something for mask rules; other actions drop them."""
    values["allow_exact_lookups"] = bool(values.get("allow_exact_lookups"))
    if values.get("action") != PolicyAction.MASK:
        values["mask_method"], values["mask_param"] = "", None
        values["allow_exact_lookups"] = False
        return
    method = values.get("mask_method") or ""
    if method and method not in MaskMethod.values:
        raise InvalidInput(f"mask method must be one of {', '.join(MaskMethod.values)}")
    values["mask_method"] = method
    param = values.get("mask_param")
    if param is None or param == "":
        values["mask_param"] = None
        return
    if method not in MASK_METHODS_WITH_PARAM:
        raise InvalidInput("A mask parameter only applies to the last_n and partial methods.")
    if isinstance(param, bool) or not isinstance(param, int) or not 0 <= param <= MAX_MASK_PARAM:
        raise InvalidInput(f"The mask parameter must be a whole number from 0 to {MAX_MASK_PARAM}.")


def _clean_rule(values: dict[str, Any], datasource: DataSource, rule_id: int | None) -> None:
    values["name"] = _clean_name(values.get("name"))
    values["description"] = str(values.get("description") or "").strip()[:300]
    if values.get("action") not in PolicyAction.values:
        raise InvalidInput(f"action must be one of {', '.join(PolicyAction.values)}")
    priority = values.get("priority")
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not (PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1])
    ):
        raise InvalidInput(
            f"priority must be a whole number from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}."
        )
    _clean_resource(values)
    _clean_masking(values)
    _check_subjects(bool(values.get("everyone")), values["users"], values["groups"])
    duplicate = PolicyRule.objects.filter(datasource=datasource, name=values["name"])
    if rule_id is not None:
        duplicate = duplicate.exclude(pk=rule_id)
    if duplicate.exists():
        raise InvalidInput(f"{datasource.name} already has a rule named {values['name']!r}.")


def _clean_guardrail(values: dict[str, Any], datasource: DataSource | None) -> None:
    values["name"] = _clean_name(values.get("name"))
    values["description"] = str(values.get("description") or "").strip()[:300]
    kinds = values.get("kinds")
    if isinstance(kinds, str) or not kinds:
        raise InvalidInput("Pick at least one statement kind (a list).")
    kinds = list(kinds)
    unknown = sorted(set(kinds) - set(GuardrailKind.values))
    if unknown:
        raise InvalidInput(
            f"Unknown statement kind(s): {', '.join(map(str, unknown))}. "
            f"Known: {', '.join(GuardrailKind.values)}"
        )
    values["kinds"] = sorted(set(kinds))
    values["max_rows"] = _clean_max_rows(values.get("max_rows"), values["kinds"])
    if values.get("action") not in GuardrailAction.values:
        raise InvalidInput(f"action must be one of {', '.join(GuardrailAction.values)}")
    _check_subjects(bool(values.get("everyone")), values["users"], values["groups"])
    if datasource is not None and not isinstance(datasource, DataSource):
        raise InvalidInput("datasource must be a datasource or None (all datasources).")


def _clean_max_rows(max_rows: object, kinds: list[str]) -> int | None:
    """The row limit of a rows_over_limit guardrail (required there, meaningless elsewhere)."""
    if GuardrailKind.ROWS_OVER_LIMIT not in kinds:
        if max_rows is not None:
            raise InvalidInput(
                "max_rows applies only to the rows_over_limit kind.", field="max_rows"
            )
        return None
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise InvalidInput(
            "rows_over_limit needs max_rows, a whole number of rows (0 or more).",
            field="max_rows",
        )
    return max_rows


def _lock_and_refresh(instance: PolicyRule | GuardrailRule | DataSource) -> None:
    """Serialise concurrent edits of one row, and edit the caller's instance in place."""
    type(instance).objects.select_for_update().filter(pk=instance.pk).values_list("pk").get()
    instance.refresh_from_db()


def _save_subjects(rule: PolicyRule | GuardrailRule, values: dict[str, Any]) -> None:
    rule.users.set(values["users"])
    rule.groups.set(values["groups"])


# ---------------------------------------------------------------- policy rules


@transaction.atomic
def policy_rule_create(
    *,
    actor: User,
    datasource: DataSource,
    name: str,
    resource_kind: str,
    action: str,
    description: str = "",
    priority: int = 100,
    enabled: bool = True,
    everyone: bool = False,
    users: Iterable[User] = (),
    groups: Iterable[Group] = (),
    schema_name: str = "",
    table_name: str = "",
    column_name: str = "",
    tag: Tag | None = None,
    sensitivity: int | None = None,
    mask_method: str = "",
    mask_param: int | None = None,
    allow_exact_lookups: bool = False,
) -> PolicyRule:
    _require_admin(actor)
    values: dict[str, Any] = {
        "name": name,
        "description": description,
        "priority": priority,
        "enabled": enabled,
        "everyone": everyone,
        "users": list(users),
        "groups": list(groups),
        "resource_kind": resource_kind,
        "schema_name": schema_name,
        "table_name": table_name,
        "column_name": column_name,
        "tag": tag,
        "sensitivity": sensitivity,
        "action": action,
        "mask_method": mask_method,
        "mask_param": mask_param,
        "allow_exact_lookups": allow_exact_lookups,
    }
    _clean_rule(values, datasource, None)
    rule = PolicyRule.objects.create(
        datasource=datasource, created_by=actor, **{key: values[key] for key in RULE_FIELDS}
    )
    _save_subjects(rule, values)
    event_record(
        actor=actor,
        action="policy.created",
        target=rule,
        datasource=datasource,
        details={"after": policy_rule_snapshot(rule)},
    )
    return rule


def _merged_values(
    rule: PolicyRule | GuardrailRule, fields: Iterable[str], changes: dict[str, Any]
) -> dict[str, Any]:
    """The rule's current field and subject values with `changes` applied on top."""
    values: dict[str, Any] = {key: getattr(rule, key) for key in fields}
    values["users"], values["groups"] = list(rule.users.all()), list(rule.groups.all())
    values.update({key: list(v) if key in ("users", "groups") else v for key, v in changes.items()})
    return values


@transaction.atomic
def policy_rule_update(*, actor: User, rule: PolicyRule, **changes: Any) -> PolicyRule:
    """Change any of the create fields (except the datasource); omitted fields keep their value."""
    _require_admin(actor)
    unknown = set(changes) - set(RULE_FIELDS) - {"users", "groups"}
    if unknown:
        raise InvalidInput(f"Unknown rule field(s): {', '.join(sorted(unknown))}")
    _lock_and_refresh(rule)
    before = policy_rule_snapshot(rule)
    values = _merged_values(rule, RULE_FIELDS, changes)
    _clean_rule(values, rule.datasource, rule.pk)
    for key in RULE_FIELDS:
        setattr(rule, key, values[key])
    rule.save()
    _save_subjects(rule, values)
    after = policy_rule_snapshot(rule)
    if after != before:
        event_record(
            actor=actor,
            action="policy.updated",
            target=rule,
            datasource=rule.datasource,
            details={"before": before, "after": after},
        )
    return rule


@transaction.atomic
def policy_rule_delete(*, actor: User, rule: PolicyRule) -> None:
    _require_admin(actor)
    event_record(
        actor=actor,
        action="policy.deleted",
        target=rule,
        datasource=rule.datasource,
        details={"before": policy_rule_snapshot(rule)},
    )
    rule.delete()


# ---------------------------------------------------------------- guardrails


@transaction.atomic
def guardrail_rule_create(
    *,
    actor: User,
    datasource: DataSource | None,
    name: str,
    kinds: Iterable[str],
    action: str,
    description: str = "",
    everyone: bool = True,
    users: Iterable[User] = (),
    groups: Iterable[Group] = (),
    enabled: bool = True,
    max_rows: int | None = None,
) -> GuardrailRule:
    """A guardrail for one datasource, or for all of them with ``datasource=None``."""
    _require_admin(actor)
    values: dict[str, Any] = {
        "name": name,
        "description": description,
        "kinds": kinds,
        "action": action,
        "everyone": everyone,
        "users": list(users),
        "groups": list(groups),
        "enabled": enabled,
        "max_rows": max_rows,
    }
    _clean_guardrail(values, datasource)
    guardrail = GuardrailRule.objects.create(
        datasource=datasource,
        created_by=actor,
        **{key: values[key] for key in GUARDRAIL_FIELDS},
    )
    _save_subjects(guardrail, values)
    event_record(
        actor=actor,
        action="guardrail.created",
        target=guardrail,
        datasource=datasource,
        details={"after": guardrail_snapshot(guardrail)},
    )
    return guardrail


@transaction.atomic
def guardrail_rule_update(
    *, actor: User, guardrail: GuardrailRule, **changes: Any
) -> GuardrailRule:
    _require_admin(actor)
    unknown = set(changes) - set(GUARDRAIL_FIELDS) - {"users", "groups"}
    if unknown:
        raise InvalidInput(f"Unknown guardrail field(s): {', '.join(sorted(unknown))}")
    _lock_and_refresh(guardrail)
    before = guardrail_snapshot(guardrail)
    values = _merged_values(guardrail, GUARDRAIL_FIELDS, changes)
    _clean_guardrail(values, guardrail.datasource)
    for key in GUARDRAIL_FIELDS:
        setattr(guardrail, key, values[key])
    guardrail.save()
    _save_subjects(guardrail, values)
    after = guardrail_snapshot(guardrail)
    if after != before:
        event_record(
            actor=actor,
            action="guardrail.updated",
            target=guardrail,
            datasource=guardrail.datasource,
            details={"before": before, "after": after},
        )
    return guardrail


@transaction.atomic
def guardrail_rule_delete(*, actor: User, guardrail: GuardrailRule) -> None:
    _require_admin(actor)
    event_record(
        actor=actor,
        action="guardrail.deleted",
        target=guardrail,
        datasource=guardrail.datasource,
        details={"before": guardrail_snapshot(guardrail)},
    )
    guardrail.delete()


@transaction.atomic
def guardrails_recommended_create(*, actor: User, datasource: DataSource) -> list[GuardrailRule]:
    """Add the recommended guardrails (for everyone) a datasource does not have yet, by name."""
    _require_admin(actor)
    existing = set(
        GuardrailRule.objects.filter(datasource=datasource).values_list("name", flat=True)
    )
    return [
        guardrail_rule_create(
            actor=actor,
            datasource=datasource,
            name=name,
            kinds=kinds,
            action=action,
            everyone=True,
            description="Recommended by Warden",
        )
        for name, kinds, action in RECOMMENDED_GUARDRAILS
        if name not in existing
    ]


# ---------------------------------------------------------------- datasource defaults


@transaction.atomic
def datasource_defaults_set(
    *, actor: User, datasource: DataSource, default_sensitive_action: str, default_mask_method: str
) -> DataSource:
    """What happens to a confidential/restricted column that no rule matches."""
    _require_admin(actor)
    if default_sensitive_action not in DEFAULT_SENSITIVE_ACTIONS:
        raise InvalidInput(
            "default action for sensitive columns must be one of "
            f"{', '.join(DEFAULT_SENSITIVE_ACTIONS)}"
        )
    if default_mask_method not in MaskMethod.values:
        raise InvalidInput(f"default mask method must be one of {', '.join(MaskMethod.values)}")
    _lock_and_refresh(datasource)
    before = {
        "default_sensitive_action": datasource.default_sensitive_action,
        "default_mask_method": datasource.default_mask_method,
    }
    after = {
        "default_sensitive_action": default_sensitive_action,
        "default_mask_method": default_mask_method,
    }
    if before != after:
        datasource.default_sensitive_action = default_sensitive_action
        datasource.default_mask_method = default_mask_method
        datasource.save(
            update_fields=["default_sensitive_action", "default_mask_method", "updated_at"]
        )
        event_record(
            actor=actor,
            action="datasource.defaults_changed",
            target=datasource,
            datasource=datasource,
            details={"before": before, "after": after},
        )
    return datasource
