"""Scan orchestration: start → prepare (introspect, reconcile) → classify each table → finish."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import event_record
from classification.models import ScanRun, ScanTableResult
from classification.progress import scan_progress_broadcast
from config.dispatch import enqueue_on_commit
from config.errors import InvalidInput, NotAllowed
from governance.connectors import ConnectorError, TableInfo, connector_for
from governance.models import Column, DataSource, Role, Table, User
from governance.services import (
    catalog_reconcile,
    column_sensitivity_refresh,
    column_tags_suggest,
)

logger = logging.getLogger(__name__)


def scan_start(
    *, actor: User | None, datasource: DataSource, sample_size: int | None = None
) -> ScanRun:
    """Queue a scan; the orchestrating task starts after commit."""
    from classification.tasks import scan_run_task

    if actor is not None and not actor.has_role(Role.ADMIN):
        raise NotAllowed("Only admins start scans.")
    size = sample_size or settings.SCAN_SAMPLE_SIZE
    if not 1 <= size <= 100_000:
        raise InvalidInput("sample_size must be between 1 and 100000")
    with transaction.atomic():
        scan_run = ScanRun.objects.create(
            datasource=datasource, requested_by=actor, sample_size=size
        )
        event_record(
            actor=actor,
            action="scan.started",
            target=scan_run,
            datasource=datasource,
            details={"sample_size": size},
        )
        enqueue_on_commit(scan_run_task, scan_run.pk)
    return scan_run


def _fail(scan_run: ScanRun, message: str) -> None:
    ScanRun.objects.filter(pk=scan_run.pk).update(
        state=ScanRun.State.FAILED, error=message, finished_at=timezone.now()
    )
    event_record(
        actor=None,
        action="scan.failed",
        target=scan_run,
        datasource=scan_run.datasource,
        decision="failed",
        details={"error": message},
    )
    scan_progress_broadcast(scan_run_id=scan_run.pk)


def scan_prepare(*, scan_run_id: int) -> list[int]:
    """Claim a queued scan, introspect and reconcile; returns the table results to classify.

    Safe to run twice: only the call that moves the run from queued to running does work.
    """
    claimed = ScanRun.objects.filter(pk=scan_run_id, state=ScanRun.State.QUEUED).update(
        state=ScanRun.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return []
    scan_run = ScanRun.objects.select_related("datasource").get(pk=scan_run_id)
    connector = connector_for(scan_run.datasource)
    try:
        found_tables = connector.introspect()
    except ConnectorError as exc:
        _fail(scan_run, str(exc))
        return []
    finally:
        connector.close()
    with transaction.atomic():
        changes = catalog_reconcile(
            datasource=scan_run.datasource,
            found_tables=found_tables,
            scan_run=scan_run,
            now=timezone.now(),
        )
        # Views are catalogued but not sampled: reading one can cost a full query of its base.
        tables = Table.objects.filter(
            datasource=scan_run.datasource, dropped_at__isnull=True, kind="table"
        )
        results = ScanTableResult.objects.bulk_create(
            [ScanTableResult(scan_run=scan_run, table=table) for table in tables]
        )
        ScanRun.objects.filter(pk=scan_run.pk).update(
            tables_total=len(results), catalog_changes=changes
        )
    scan_progress_broadcast(scan_run_id=scan_run.pk)
    return [result.pk for result in results]


def _column_samples(table: Table, columns: list[Column], rows: list[tuple]) -> list[Any]:
    from classification.detectors.base import ColumnSample

    return [
        ColumnSample(
            name=column.name,
            data_type=column.data_type,
            values=[row[index] for row in rows],
            table=table.name,
        )
        for index, column in enumerate(columns)
    ]


def scan_table_classify(*, table_result_id: int) -> None:
    """Sample one table, classify its columns and store suggestions. Failures stay local."""
    claimed = ScanTableResult.objects.filter(
        pk=table_result_id, state=ScanTableResult.State.PENDING
    ).update(state=ScanTableResult.State.RUNNING)
    if not claimed:
        return
    result = ScanTableResult.objects.select_related("table__datasource", "scan_run").get(
        pk=table_result_id
    )
    started = time.monotonic()
    try:
        stats = _classify_table(result)
        state, error = ScanTableResult.State.DONE, ""
    except ConnectorError as exc:
        stats, state, error = {}, ScanTableResult.State.FAILED, str(exc)
    except Exception as exc:  # one broken table must not end the scan; the error is kept
        logger.exception("classifying %s failed", result.table)
        stats, state, error = {}, ScanTableResult.State.FAILED, f"{type(exc).__name__}: {exc}"
    ScanTableResult.objects.filter(pk=result.pk).update(
        state=state, error=error, duration_ms=int((time.monotonic() - started) * 1000), **stats
    )
    ScanRun.objects.filter(pk=result.scan_run_id).update(
        tables_done=F("tables_done") + 1,
        tables_failed=F("tables_failed") + (1 if state == ScanTableResult.State.FAILED else 0),
        columns_classified=F("columns_classified") + stats.get("columns_classified", 0),
        tags_suggested=F("tags_suggested") + stats.get("tags_suggested", 0),
    )
    scan_progress_broadcast(scan_run_id=result.scan_run_id)


def _classify_table(result: ScanTableResult) -> dict[str, int]:
    from classification.classifier import classify_columns

    table = result.table
    columns = list(table.columns.filter(dropped_at__isnull=True).order_by("ordinal"))
    if not columns:
        return {"rows_sampled": 0, "columns_classified": 0, "tags_suggested": 0}
    connector = connector_for(table.datasource)
    try:
        info = TableInfo(table.schema_name, table.name, table.kind, table.row_estimate)
        rows = connector.sample(
            info, [column.name for column in columns], result.scan_run.sample_size
        )
    finally:
        connector.close()
    suggestions = classify_columns(_column_samples(table, columns, rows))
    with transaction.atomic():
        tags_suggested = column_tags_suggest(columns=columns, suggestions=suggestions)
        column_sensitivity_refresh(columns=columns)
    return {
        "rows_sampled": len(rows),
        "columns_classified": len(columns),
        "tags_suggested": tags_suggested,
    }


def scan_finish(*, scan_run_id: int) -> ScanRun:
    """Close the run: succeeded unless nothing could be classified."""
    with transaction.atomic():
        scan_run = (
            ScanRun.objects.select_for_update().select_related("datasource").get(pk=scan_run_id)
        )
        if scan_run.state != ScanRun.State.RUNNING:
            return scan_run
        all_failed = scan_run.tables_total > 0 and scan_run.tables_failed == scan_run.tables_total
        scan_run.state = ScanRun.State.FAILED if all_failed else ScanRun.State.SUCCEEDED
        if all_failed:
            scan_run.error = "Every table failed; see the per-table errors."
        scan_run.finished_at = timezone.now()
        scan_run.save(update_fields=["state", "error", "finished_at"])
        DataSource.objects.filter(pk=scan_run.datasource_id).update(
            last_scanned_at=scan_run.finished_at
        )
        event_record(
            actor=None,
            action="scan.finished",
            target=scan_run,
            datasource=scan_run.datasource,
            decision=scan_run.state,
            details={
                "tables_total": scan_run.tables_total,
                "tables_failed": scan_run.tables_failed,
                "columns_classified": scan_run.columns_classified,
                "tags_suggested": scan_run.tags_suggested,
                "catalog_changes": scan_run.catalog_changes,
            },
        )
    scan_progress_broadcast(scan_run_id=scan_run.pk)
    return scan_run
