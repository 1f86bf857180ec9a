"""Compiling the policy bundle: everything the agent needs to decide on its own, for one
datasource.

Format 1 (the agent in ``agent/bundle.py`` is written against it)::

    {"format": 1, "version": <sha256 hex>, "generated_at": <iso8601>,
     "datasource": {...}, "masking_key_id": ..., "sensitivity_levels": [...],
     "columns": [...], "rules": [...], "guardrails": [...], "grants": [...]}

``version`` is the SHA-256 of the canonical JSON of everything except ``version`` and
``generated_at``: it changes when a tag, rule, guardrail, grant or the datasource's defaults
change, and only then, so agents can poll with ETag/If-None-Match cheaply.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from approvals.selectors import grants_for_bundle
from governance.models import ColumnTag, DataSource, GuardrailRule, PolicyRule, Sensitivity
from governance.services.policies import resource_snapshot, subjects_snapshot

BUNDLE_FORMAT = 1
SENSITIVITY_LEVELS = [label for _value, label in Sensitivity.choices]


def canonical_json(document: Any) -> bytes:
    """The exact bytes that are hashed and signed (the agent re-serialises the same way)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _bundle_columns(datasource: DataSource) -> list[dict[str, Any]]:
    """Columns with at least one active tag: one query, however large the catalog."""
    # "Not rejected" (= suggested or confirmed) rather than state IN (...): right after a scan
    # the planner's statistics can be stale, and an IN on the state index then turns into a
    # per-column bitmap AND over every tag row (minutes at 100k columns instead of a second).
    rows = (
        ColumnTag.objects.filter(
            column__table__datasource=datasource,
            column__dropped_at__isnull=True,
            column__table__dropped_at__isnull=True,
        )
        .exclude(state=ColumnTag.State.REJECTED)
        .order_by()
        .values_list(
            "column__table__schema_name",
            "column__table__name",
            "column__name",
            "tag__name",
            "tag__sensitivity",
        )
    )
    by_column: dict[tuple[str, str, str], tuple[set[str], int]] = {}
    for schema, table, column, tag, level in rows.iterator(chunk_size=10_000):
        tags, highest = by_column.get((schema, table, column), (set(), -1))
        tags.add(tag)
        by_column[(schema, table, column)] = (tags, max(highest, level))
    return [
        {
            "schema": schema,
            "table": table,
            "column": column,
            "tags": sorted(tags),
            "sensitivity": SENSITIVITY_LEVELS[highest],
        }
        for (schema, table, column), (tags, highest) in sorted(by_column.items())
    ]


def _bundle_rules(datasource: DataSource) -> list[dict[str, Any]]:
    rules = (
        PolicyRule.objects.filter(datasource=datasource, enabled=True)
        .select_related("tag")
        .prefetch_related("users", "groups")
        .order_by("-priority", "id")
    )
    return [
        {
            "id": rule.pk,
            "name": rule.name,
            "priority": rule.priority,
            "subjects": subjects_snapshot(rule),
            "resource": resource_snapshot(rule),
            "action": rule.action,
            "mask_method": rule.mask_method or None,
            "mask_param": rule.mask_param,
            "allow_exact_lookups": rule.allow_exact_lookups,
        }
        for rule in rules
    ]


def _bundle_guardrails(datasource: DataSource) -> list[dict[str, Any]]:
    guardrails = (
        GuardrailRule.objects.filter(
            Q(datasource=datasource) | Q(datasource__isnull=True), enabled=True
        )
        .prefetch_related("users", "groups")
        .order_by("id")
    )
    return [
        {
            "id": guardrail.pk,
            "name": guardrail.name,
            "kinds": sorted(guardrail.kinds),
            "subjects": subjects_snapshot(guardrail),
            "action": guardrail.action,
            "max_rows": guardrail.max_rows,
        }
        for guardrail in guardrails
    ]


def _bundle_grants(datasource: DataSource) -> list[dict[str, Any]]:
    """Live grants from the approvals app, in bundle shape."""
    grants = grants_for_bundle(datasource=datasource)
    # A stable order, so the version only moves when a grant does.
    return sorted(grants, key=lambda grant: (int(grant.get("id") or 0), canonical_json(grant)))


def bundle_catalog_part(*, datasource: DataSource) -> dict[str, Any]:
    """Everything in a bundle but the grants: the part approvals never change."""
    return {
        "format": BUNDLE_FORMAT,
        "datasource": {
            "id": datasource.pk,
            "name": datasource.name,
            "engine": datasource.engine,
            "default_sensitive_action": datasource.default_sensitive_action,
            "default_mask_method": datasource.default_mask_method,
        },
        "masking_key_id": settings.MASKING_KEY_ID,
        "sensitivity_levels": list(SENSITIVITY_LEVELS),
        "columns": _bundle_columns(datasource),
        "rules": _bundle_rules(datasource),
        "guardrails": _bundle_guardrails(datasource),
    }


def bundle_with_grants(*, datasource: DataSource, catalog_part: dict[str, Any]) -> dict[str, Any]:
    """The versioned (unsigned) bundle: ``catalog_part`` with the datasource's live grants."""
    content = {**catalog_part, "grants": _bundle_grants(datasource)}
    version = hashlib.sha256(canonical_json(content)).hexdigest()
    return {**content, "version": version, "generated_at": timezone.now().isoformat()}


def policy_bundle_build(*, datasource: DataSource) -> dict[str, Any]:
    """Compile the versioned (unsigned) bundle for one datasource."""
    return bundle_with_grants(
        datasource=datasource, catalog_part=bundle_catalog_part(datasource=datasource)
    )
