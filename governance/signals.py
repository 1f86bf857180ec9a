"""Every saved or deleted row that feeds a policy bundle moves the bundle generation.

The services' bulk writes (scans) call ``bundle_inputs_changed`` themselves, since bulk
operations send no signals; these receivers catch everything else, including the Django admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from governance.models import (
    Column,
    ColumnTag,
    DataSource,
    GuardrailRule,
    PolicyRule,
    Table,
    Tag,
    User,
)
from governance.services.bundles import bundle_inputs_changed

# Per model, the fields a bundle reads; a save limited to other fields (a sign-in stamping
# last_login, a scan stamping last_seen_at) leaves bundles alone. None: any field.
BUNDLE_FIELDS: dict[type[Model], frozenset[str] | None] = {
    ColumnTag: None,
    Column: frozenset({"name", "table", "dropped_at"}),
    Table: frozenset({"schema_name", "name", "datasource", "dropped_at"}),
    Tag: None,
    PolicyRule: None,
    GuardrailRule: None,
    DataSource: None,
    User: frozenset({"username"}),
    Group: frozenset({"name"}),
}


def watch_bundle_input(
    model: type[Model], fields: frozenset[str] | None = None, *, grants: bool = False
) -> None:
    """Move the bundle generation whenever ``model`` (limited to ``fields``) changes;
    ``grants``: the model is the bundle's grants, which leave its catalog part alone."""

    def saved(sender: Any, update_fields: frozenset[str] | None = None, **kwargs: Any) -> None:
        if fields is None or update_fields is None or fields & set(update_fields):
            bundle_inputs_changed(grants_only=grants)

    def deleted(sender: Any, **kwargs: Any) -> None:
        bundle_inputs_changed(grants_only=grants)

    uid = f"bundle-input.{model._meta.label}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=f"{uid}.save")
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=f"{uid}.delete")


def _subjects_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        bundle_inputs_changed()


def connect() -> None:
    for model, fields in BUNDLE_FIELDS.items():
        watch_bundle_input(model, fields)
    for rule in (PolicyRule, GuardrailRule):
        for relation in (rule.users.through, rule.groups.through):
            m2m_changed.connect(
                _subjects_changed,
                sender=relation,
                dispatch_uid=f"bundle-input.{relation._meta.label}",
            )
