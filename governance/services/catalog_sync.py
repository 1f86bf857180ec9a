"""What a scan writes to the catalog: the tables and columns introspection found, and the
tags its detectors suggest.

Nothing is silently lost: tables and columns that vanish are marked dropped (with their tags
kept), reappearing ones come back, type changes are recorded as ``ColumnChange`` rows for the
catalog's history. A scan only ever changes its own, still unreviewed, suggestions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.utils import timezone

from governance.connectors import TableInfo
from governance.models import Column, ColumnChange, ColumnTag, DataSource, Table, Tag
from governance.models.catalog import catalog_sort_key
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
        (t.schema_name, t.name): t
        for t in Table.objects.filter(datasource=datasource).select_related("datasource")
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
        sort_key = catalog_sort_key(
            datasource_name=table.datasource.name,
            schema_name=table.schema_name,
            table_name=table.name,
            ordinal=column_info.ordinal,
            column_name=column_info.name,
        )
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
                    sort_key=sort_key,
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
        column.last_seen_at, column.sort_key = now, sort_key
        updated.append(column)
    Column.objects.bulk_update(
        updated, ["dropped_at", "data_type", "is_nullable", "ordinal", "last_seen_at", "sort_key"]
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


class TagSuggestion(Protocol):
    """What the detectors suggest for one column (classification.detectors.TagSuggestion)."""

    @property
    def tag(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def evidence(self) -> dict: ...


def column_tags_suggest(
    *, columns: list[Column], suggestions: Sequence[Sequence[TagSuggestion]]
) -> int:
    """A scan's suggestions for `columns` (one list per column): those above the threshold
    become suggested tags, unless an admin curated the column. Returns how many stand.

    A scan only ever changes its own, still unreviewed, suggestions. One table at a time, in
    a fixed number of queries whatever its width.
    """
    Column.objects.filter(pk__in=[column.pk for column in columns]).update(
        last_classified_at=timezone.now()
    )
    open_columns = [column for column in columns if column.curated_at is None]
    tags = {tag.name: tag for tag in Tag.objects.all()}
    existing = {
        (column_tag.column_id, column_tag.tag_id): column_tag
        for column_tag in ColumnTag.objects.filter(column__in=open_columns)
    }
    threshold = settings.SCAN_AUTOTAG_THRESHOLD
    wanted: set[tuple[int, int]] = set()
    to_create: list[ColumnTag] = []
    to_update: list[ColumnTag] = []
    for column, column_suggestions in zip(columns, suggestions, strict=True):
        if column.curated_at is not None:
            continue
        for suggestion in column_suggestions:
            if suggestion.confidence < threshold or suggestion.tag not in tags:
                continue
            key = (column.pk, tags[suggestion.tag].pk)
            wanted.add(key)
            confidence = round(float(suggestion.confidence), 4)
            current = existing.get(key)
            if current is None:
                to_create.append(
                    ColumnTag(
                        column=column,
                        tag=tags[suggestion.tag],
                        source=ColumnTag.Source.SCAN,
                        state=ColumnTag.State.SUGGESTED,
                        confidence=confidence,
                        evidence=suggestion.evidence,
                    )
                )
            elif _is_open_suggestion(current):
                current.confidence, current.evidence = confidence, suggestion.evidence
                current.updated_at = timezone.now()
                to_update.append(current)
    stale = [ct.pk for key, ct in existing.items() if key not in wanted and _is_open_suggestion(ct)]
    ColumnTag.objects.filter(pk__in=stale).delete()
    ColumnTag.objects.bulk_create(to_create)
    ColumnTag.objects.bulk_update(to_update, ["confidence", "evidence", "updated_at"])
    if to_create or stale:  # bulk writes send no signals; confidence and evidence aren't bundled
        bundle_inputs_changed()
    return len(wanted)


def _is_open_suggestion(column_tag: ColumnTag) -> bool:
    return (
        column_tag.source == ColumnTag.Source.SCAN and column_tag.state == ColumnTag.State.SUGGESTED
    )
