"""Scopes of access requests checked against the catalog, their risk, and statements.

A scope is ``{"tables": ["schema.table"], "columns": ["schema.table.column"],
"tags": ["PII.Email"]}`` — the same shape the policy bundle's grants carry.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.analysis import Relation, SqlError, StatementInfo
from agent.postgres.sql import analyze
from agent.postgres.sql import fingerprint as sql_fingerprint
from config.errors import InvalidInput
from governance.models import Column, ColumnTag, DataSource, Sensitivity, Table, Tag

SCOPE_KEYS = ("tables", "columns", "tags")
_ACTIVE_TAG_STATES = (ColumnTag.State.SUGGESTED, ColumnTag.State.CONFIRMED)


def scope_normalise(raw: Any) -> dict[str, list[str]]:
    """Sorted, de-duplicated lists under exactly the three scope keys."""
    if raw in (None, ""):
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("A scope is an object with tables, columns and tags.")
    unknown = set(raw) - set(SCOPE_KEYS)
    if unknown:
        raise InvalidInput(f"Unknown scope keys: {', '.join(sorted(unknown))}.")
    scope: dict[str, list[str]] = {}
    for key in SCOPE_KEYS:
        values = raw.get(key) or []
        if isinstance(values, str):
            values = [part for part in values.replace(",", "\n").splitlines()]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"scope.{key} must be a list of names.")
        scope[key] = sorted({value.strip() for value in values if value.strip()})
    return scope


def scope_is_empty(scope: dict[str, list[str]]) -> bool:
    return not any(scope.get(key) for key in SCOPE_KEYS)


def _live_tables(datasource: DataSource) -> dict[str, Table]:
    tables = Table.objects.filter(datasource=datasource, dropped_at__isnull=True)
    return {table.qualified_name: table for table in tables}


def scope_validate(*, datasource: DataSource, scope: dict[str, list[str]]) -> None:
    """Every named table, column and tag must exist in the catalog of this datasource."""
    if scope_is_empty(scope):
        raise InvalidInput("Name at least one table, column or tag.")
    tables = _live_tables(datasource)
    missing = [name for name in scope["tables"] if name not in tables]
    known_columns = {
        f"{schema}.{table}.{column}"
        for schema, table, column in Column.objects.filter(
            table__datasource=datasource, dropped_at__isnull=True, table__dropped_at__isnull=True
        ).values_list("table__schema_name", "table__name", "name")
    }
    missing += [name for name in scope["columns"] if name not in known_columns]
    known_tags = set(Tag.objects.filter(name__in=scope["tags"]).values_list("name", flat=True))
    missing += [name for name in scope["tags"] if name not in known_tags]
    if missing:
        raise InvalidInput(f"Not in the catalog of {datasource.name}: {', '.join(missing)}.")


def scope_is_within(narrowed: dict[str, list[str]], requested: dict[str, list[str]]) -> bool:
    """Narrowing only removes: tables ⊆ tables, columns within requested columns or tables."""
    if not set(narrowed["tables"]) <= set(requested["tables"]):
        return False
    if not set(narrowed["tags"]) <= set(requested["tags"]):
        return False
    for column in narrowed["columns"]:
        table = column.rsplit(".", 1)[0]
        if column not in requested["columns"] and table not in requested["tables"]:
            return False
    return True


def scope_intersection(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict:
    """What both scopes cover (quorum reviewers who each narrowed)."""
    columns = {
        column
        for column in first["columns"] + second["columns"]
        if (column in first["columns"] or column.rsplit(".", 1)[0] in first["tables"])
        and (column in second["columns"] or column.rsplit(".", 1)[0] in second["tables"])
    }
    return {
        "tables": sorted(set(first["tables"]) & set(second["tables"])),
        "columns": sorted(columns),
        "tags": sorted(set(first["tags"]) & set(second["tags"])),
    }


def _covered_columns(datasource: DataSource, scope: dict[str, list[str]]) -> list[Column]:
    columns = (
        Column.objects.filter(table__datasource=datasource, dropped_at__isnull=True)
        .select_related("table")
        .prefetch_related("column_tags__tag")
    )
    covered = []
    for column in columns:
        qualified_table = column.table.qualified_name
        tags = {ct.tag.name for ct in column.column_tags.all() if ct.state in _ACTIVE_TAG_STATES}
        if (
            qualified_table in scope["tables"]
            or f"{qualified_table}.{column.name}" in scope["columns"]
            or tags & set(scope["tags"])
        ):
            covered.append(column)
    return covered


def scope_risk(*, datasource: DataSource, scope: dict[str, list[str]]) -> dict[str, Any]:
    """Which tags and how many columns a scope reaches, from the catalog."""
    columns = _covered_columns(datasource, scope)
    tag_counts: Counter[str] = Counter()
    sensitive = []
    for column in columns:
        names = sorted(
            ct.tag.name for ct in column.column_tags.all() if ct.state in _ACTIVE_TAG_STATES
        )
        tag_counts.update(names)
        if names:
            sensitive.append(f"{column.table.qualified_name}.{column.name}")
    levels = [column.sensitivity for column in columns if column.sensitivity is not None]
    top = max(levels) if levels else None
    return {
        "columns": len(columns),
        "sensitive_columns": len(sensitive),
        "sensitive_column_names": sorted(sensitive)[:50],
        "tables": len({column.table_id for column in columns}),
        "tags": dict(sorted(tag_counts.items())),
        "max_sensitivity": Sensitivity(top).label if top is not None else None,
    }


# ------------------------------------------------------------------ statements
# A held statement is read by the agent's own analyser, so the control plane and the agent
# can never disagree about which tables and columns it touches.


class StatementError(ValueError):
    pass


def statement_fingerprint(sql: str) -> str:
    try:
        return sql_fingerprint(sql)
    except SqlError as exc:
        raise StatementError(f"Not a PostgreSQL statement: {exc}") from exc


def statement_parse(sql: str) -> StatementInfo:
    """The agent's analysis of one statement; several statements (or none) → error."""
    try:
        analysis = analyze(sql)
    except SqlError as exc:
        raise StatementError(f"Not a PostgreSQL statement: {exc}") from exc
    if len(analysis.statements) != 1:
        raise StatementError("Exactly one statement, please.")
    return analysis.statements[0]


def _catalog_table(relation: Relation, tables: dict[str, Table]) -> Table | None:
    """The catalog table a name reaches: its schema, else public, else the only schema."""
    if relation.schema:
        return tables.get(f"{relation.schema}.{relation.name}")
    candidates = [f"public.{relation.name}"] + [
        qualified for qualified in tables if qualified.split(".", 1)[1] == relation.name
    ]
    return next((tables[c] for c in candidates if c in tables), None)


def statement_touches(*, datasource: DataSource, sql: str) -> dict[str, Any]:
    """The catalog tables, columns (and their tags) a statement reads or writes."""
    info = statement_parse(sql)
    tables = _live_tables(datasource)
    matched: dict[Relation, Table] = {}
    for relation in sorted(info.relations, key=Relation.label):
        table = _catalog_table(relation, tables)
        if table is not None:
            matched[relation] = table
    wanted: set[tuple[int, str | None]] = set()
    for use in info.uses:
        for candidate in use.candidates:
            if candidate in matched:
                wanted.add((matched[candidate].pk, use.column))
    columns = (
        Column.objects.filter(table__in=set(matched.values()), dropped_at__isnull=True)
        .select_related("table")
        .prefetch_related("column_tags__tag")
        .order_by("table__schema_name", "table__name", "ordinal", "name")
    )
    touched = []
    for column in columns:
        if (column.table_id, None) in wanted or (column.table_id, column.name) in wanted:
            tags = sorted(
                ct.tag.name for ct in column.column_tags.all() if ct.state in _ACTIVE_TAG_STATES
            )
            touched.append({"column": f"{column.table.qualified_name}.{column.name}", "tags": tags})
    return {
        "kind": info.kind,
        "tables": sorted({table.qualified_name for table in matched.values()}),
        "columns": touched,
        "tags": sorted({tag for entry in touched for tag in entry["tags"]}),
    }


def scope_from_statement(*, datasource: DataSource, sql: str) -> dict[str, list[str]]:
    touched = statement_touches(datasource=datasource, sql=sql)
    return {"tables": touched["tables"], "columns": [], "tags": []}
