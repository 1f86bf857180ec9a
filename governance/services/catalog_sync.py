"""Reconcile the catalog with what a scan's introspection found: nothing is silently lost.

Tables and columns that vanish are marked dropped (with their tags kept), reappearing ones
come back, type changes are recorded as ``ColumnChange`` rows for the catalog's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from governance.connectors import TableInfo
from governance.models import Column, ColumnChange, DataSource, Table
from governance.services.bundles import bundle_inputs_changed

if TYPE_CHECKING:  # the scan that found the change; classification depends on governance
    from classification.models import ScanRun


def _record(
    changes: list[ColumnChange],
    column: Column,
    kind: str,
    at: datetime,
    scan_run: ScanRun | None,
    old: str = "",
    new: str = "",
) -> None:
    changes.append(
        ColumnChange(
            column=column, kind=kind, old_value=old, new_value=new, scan_run=scan_run, at=at
        )
    )


def catalog_reconcile(
    *,
    datasource: DataSource,
    found_tables: list[TableInfo],
    scan_run: ScanRun | None,
    now: datetime,
) -> dict[str, int]:
    """Upsert tables and columns, mark vanished ones dropped; returns counts of each change."""
    first_scan = not Table.objects.filter(datasource=datasource).exists()
    existing_tables = {
        (t.schema_name, t.name): t for t in Table.objects.filter(datasource=datasource)
    }
    existing_columns: dict[int, dict[str, Column]] = {}
    for column in Column.objects.filter(table__datasource=datasource):
        existing_columns.setdefault(column.table_id, {})[column.name] = column

    changes: list[ColumnChange] = []
    counts = {
        "tables_added": 0,
        "tables_dropped": 0,
        "columns_added": 0,
        "columns_dropped": 0,
        "types_changed": 0,
        "reappeared": 0,
    }
    seen_table_ids: set[int] = set()
    for info in found_tables:
        table = existing_tables.get((info.schema_name, info.name))
        if table is None:
            table = Table.objects.create(
                datasource=datasource,
                schema_name=info.schema_name,
                name=info.name,
                kind=info.kind,
                row_estimate=info.row_estimate,
                first_seen_at=now,
                last_seen_at=now,
            )
            counts["tables_added"] += 1
        else:
            table.kind, table.row_estimate, table.last_seen_at = info.kind, info.row_estimate, now
            table.dropped_at = None
            table.save(update_fields=["kind", "row_estimate", "last_seen_at", "dropped_at"])
        seen_table_ids.add(table.pk)
        _reconcile_columns(
            table,
            info,
            existing_columns.get(table.pk, {}),
            scan_run,
            now,
            changes,
            counts,
            record_additions=not first_scan,
        )

    for table in existing_tables.values():
        if table.pk in seen_table_ids or table.dropped_at is not None:
            continue
        table.dropped_at = now
        table.save(update_fields=["dropped_at"])
        counts["tables_dropped"] += 1
        for column in existing_columns.get(table.pk, {}).values():
            if column.dropped_at is None:
                column.dropped_at = now
                column.save(update_fields=["dropped_at"])
                _record(changes, column, ColumnChange.Kind.DROPPED, now, scan_run)
                counts["columns_dropped"] += 1
    ColumnChange.objects.bulk_create(changes)
    if any(counts.values()):  # the columns' bulk writes send no signals
        bundle_inputs_changed()
    return counts


def _reconcile_columns(
    table: Table,
    info: TableInfo,
    known: dict[str, Column],
    scan_run: ScanRun | None,
    now: datetime,
    changes: list[ColumnChange],
    counts: dict[str, int],
    record_additions: bool,
) -> None:
    new_columns: list[Column] = []
    updated: list[Column] = []
    found_names = set()
    for column_info in info.columns:
        found_names.add(column_info.name)
        column = known.get(column_info.name)
        if column is None:
            new_columns.append(
                Column(
                    table=table,
                    name=column_info.name,
                    data_type=column_info.data_type,
                    is_nullable=column_info.is_nullable,
                    ordinal=column_info.ordinal,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
            continue
        if column.dropped_at is not None:
            _record(changes, column, ColumnChange.Kind.REAPPEARED, now, scan_run)
            column.dropped_at = None
            counts["reappeared"] += 1
        if column.data_type != column_info.data_type:
            _record(
                changes,
                column,
                ColumnChange.Kind.TYPE_CHANGED,
                now,
                scan_run,
                old=column.data_type,
                new=column_info.data_type,
            )
            column.data_type = column_info.data_type
            counts["types_changed"] += 1
        column.is_nullable, column.ordinal = column_info.is_nullable, column_info.ordinal
        column.last_seen_at = now
        updated.append(column)
    Column.objects.bulk_update(
        updated, ["dropped_at", "data_type", "is_nullable", "ordinal", "last_seen_at"]
    )
    for column in Column.objects.bulk_create(new_columns):
        counts["columns_added"] += 1
        if record_additions:
            _record(changes, column, ColumnChange.Kind.ADDED, now, scan_run, new=column.data_type)
    for name, column in known.items():
        if name not in found_names and column.dropped_at is None:
            column.dropped_at = now
            column.save(update_fields=["dropped_at"])
            _record(changes, column, ColumnChange.Kind.DROPPED, now, scan_run, old=column.data_type)
            counts["columns_dropped"] += 1
