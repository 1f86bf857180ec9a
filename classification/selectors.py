"""Reads over classification results that are more than one line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from classification.models import ScanRun
from governance.models import ColumnTag, DataSource

FEEDBACK_FORMAT = "warden-classification-feedback/1"


def scan_live(scan_run_id: int) -> dict[str, Any]:
    """What a scan's live fragment shows: the run and its per-table results, failures first."""
    scan = ScanRun.objects.select_related("datasource", "requested_by").get(pk=scan_run_id)
    results = scan.table_results.select_related("table").order_by("state", "table__name")
    return {"scan": scan, "results": list(results)}


def feedback_labelled_set(*, datasource: DataSource | None = None) -> Iterator[dict]:
    """Admin-reviewed tags as labelled records, oldest review first.

    ``label`` says what the review means for the scan: ``true_positive`` (the scan
    suggested the tag and an admin confirmed it), ``false_positive`` (suggested, rejected)
    or ``false_negative`` (an admin added a tag the scan had not suggested). Unreviewed
    suggestions and admin rejections of tags the scan never proposed say nothing about
    the scan and are left out. No sampled value is exported: only names, tags and the
    scan's own evidence summary (detectors, confidence, match share).
    """
    reviewed = (
        ColumnTag.objects.filter(state__in=(ColumnTag.State.CONFIRMED, ColumnTag.State.REJECTED))
        .exclude(source=ColumnTag.Source.ADMIN, state=ColumnTag.State.REJECTED)
        .select_related("tag", "column__table__datasource")
        .order_by("reviewed_at", "pk")
    )
    if datasource is not None:
        reviewed = reviewed.filter(column__table__datasource=datasource)
    for column_tag in reviewed.iterator(chunk_size=2000):
        yield _record(column_tag)


def _record(column_tag: ColumnTag) -> dict:
    column = column_tag.column
    evidence = column_tag.evidence or {}
    if column_tag.source == ColumnTag.Source.ADMIN:
        label = "false_negative"
    elif column_tag.state == ColumnTag.State.CONFIRMED:
        label = "true_positive"
    else:
        label = "false_positive"
    return {
        "format": FEEDBACK_FORMAT,
        "datasource": column.table.datasource.name,
        "schema": column.table.schema_name,
        "table": column.table.name,
        "column": column.name,
        "data_type": column.data_type,
        "tag": column_tag.tag.name,
        "source": column_tag.source,
        "state": column_tag.state,
        "label": label,
        "confidence": column_tag.confidence,
        "detectors": evidence.get("detectors", []),
        "match_share": evidence.get("match_share"),
        "context": (evidence.get("context") or {}).get("rule"),
        "reviewed_at": column_tag.reviewed_at.isoformat() if column_tag.reviewed_at else None,
    }
