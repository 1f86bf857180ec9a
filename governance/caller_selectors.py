"""What one caller may see and what the policy does for them: the reads behind the MCP
tools (list datasources, search the catalog, describe a table).

The effect of the policy on a column comes from the agent's own decision engine run on the
datasource's current bundle (as the preview does), so the answer is the agent's, not a
second reading of the rules. A datasource the caller is denied as a whole (a ``deny`` rule
on the datasource that names them) is invisible: it answers exactly like an unknown name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch

from agent.bundle import Bundle
from agent.decision import PolicyEngine
from agent.verdicts import Identity, Verdict
from governance.models import Column, ColumnTag, DataSource, Table, User
from governance.selectors import catalog_columns
from governance.services.bundles import policy_bundle_served

# Verdict action → what a model reads in a tool result.
EFFECTS = {"allow": "allow", "mask": "mask", "deny": "deny", "hold": "needs_approval"}
_engines: dict[int, tuple[str, PolicyEngine]] = {}


def caller_identity(user: User) -> Identity:
    kind = "service_account" if user.is_service_account else "user"
    return Identity(
        user.get_username(), kind, frozenset(user.groups.values_list("name", flat=True))
    )


def _engine(datasource: DataSource) -> PolicyEngine:
    """The decision engine of the datasource's current bundle (one per bundle version)."""
    document = policy_bundle_served(datasource=datasource)["bundle"]
    cached = _engines.get(datasource.pk)
    if cached is None or cached[0] != document["version"]:
        cached = (document["version"], PolicyEngine(Bundle.from_document(document)))
        _engines[datasource.pk] = cached
    return cached[1]


def _denied_whole(engine: PolicyEngine, identity: Identity) -> bool:
    return any(
        rule.get("action") == "deny"
        and rule.get("resource", {}).get("kind") == "datasource"
        and engine.subject_matches(rule.get("subjects", {}), identity)
        for rule in engine.bundle.rules
    )


def datasources_usable(user: User) -> list[DataSource]:
    identity = caller_identity(user)
    return [
        datasource
        for datasource in DataSource.objects.order_by("name")
        if not _denied_whole(_engine(datasource), identity)
    ]


def datasource_usable(user: User, name: str) -> DataSource | None:
    """The datasource by name if the caller may use it; None for unknown and denied alike."""
    datasource = DataSource.objects.filter(name=name).first()
    if datasource is None or _denied_whole(_engine(datasource), caller_identity(user)):
        return None
    return datasource


def _effect(verdict: Verdict) -> dict[str, Any]:
    effect: dict[str, Any] = {"effect": EFFECTS.get(verdict.action, "deny")}
    if verdict.action == "mask":
        effect["mask_method"] = verdict.method
        if verdict.param is not None:
            effect["mask_param"] = verdict.param
    if verdict.rule:
        effect["rule"] = verdict.rule
    return effect


def _tags(column: Column) -> list[str]:
    return [
        link.tag.name for link in column.column_tags.all() if link.state != ColumnTag.State.REJECTED
    ]


@dataclass(frozen=True)
class CatalogQuery:
    text: str = ""
    tag: str = ""
    min_sensitivity: int | None = None
    limit: int = 50


def catalog_search(user: User, datasource: DataSource, query: CatalogQuery) -> list[dict[str, Any]]:
    """Columns of one datasource matching the query, each with its policy effect for the
    caller (at most ``query.limit``)."""
    engine, identity = _engine(datasource), caller_identity(user)
    columns = catalog_columns(
        query=query.text,
        datasource_id=datasource.pk,
        tag_name=query.tag,
        min_sensitivity=query.min_sensitivity,
    )[: query.limit]
    return [
        {
            "table": f"{column.table.schema_name}.{column.table.name}",
            "column": column.name,
            "type": column.data_type,
            "tags": _tags(column),
            "sensitivity": column.get_sensitivity_display()
            if column.sensitivity is not None
            else None,
            **_effect(
                engine.column_verdict(
                    identity, column.table.schema_name, column.table.name, column.name
                )
            ),
        }
        for column in columns
    ]


def table_describe(user: User, datasource: DataSource, name: str) -> dict[str, Any] | None:
    """A table's columns, types, tags and the policy's effect on each for the caller; an
    unqualified name is looked up in ``public`` first, then in any schema."""
    schema, _, table_name = name.rpartition(".")
    tables = Table.objects.filter(datasource=datasource, name=table_name, dropped_at__isnull=True)
    if schema:
        tables = tables.filter(schema_name=schema)
    columns = Column.objects.filter(dropped_at__isnull=True).order_by("ordinal")
    columns = columns.prefetch_related(
        Prefetch("column_tags", queryset=ColumnTag.objects.select_related("tag"))
    )
    tables = tables.prefetch_related(Prefetch("columns", queryset=columns))
    found = list(tables.order_by("schema_name"))
    # public first, as an unqualified name resolves with the default search_path
    table = next((t for t in found if t.schema_name == "public"), found[0] if found else None)
    if table is None:
        return None
    engine, identity = _engine(datasource), caller_identity(user)
    return {
        "datasource": datasource.name,
        "table": f"{table.schema_name}.{table.name}",
        "kind": table.kind,
        "row_estimate": table.row_estimate,
        "columns": [
            {
                "name": column.name,
                "type": column.data_type,
                "nullable": column.is_nullable,
                "tags": _tags(column),
                **_effect(
                    engine.column_verdict(identity, table.schema_name, table.name, column.name)
                ),
            }
            for column in table.columns.all()
        ],
    }
