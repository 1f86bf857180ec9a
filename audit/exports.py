"""Renderers for exports: the verifiable JSONL chain export and the evidence report as CSV,
JSON and PDF. The service that runs them (checkpoint, audit event) is audit.services.

JSONL chain export (checked offline by `python -m audit.verify`): the first line is the
manifest, then one event per line with every hashed field (details as an object) and its
hash. Without filters the events are the contiguous sequence range recorded in the period,
so an auditor can check completeness; the manifest is signed with the control plane's key.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, BinaryIO

from django.db.models import QuerySet

from audit.hashing import SORTED_FIELDS, canonical_time, manifest_payload
from audit.models import AuditCheckpoint, AuditEvent
from audit.report_sections import SECTIONS, cell_text
from audit.selectors import EventFilters, events_filter, period_sequence_range
from audit.verification import PROGRESS_EVERY

EXPORT_FORMATS = ("jsonl", "json", "csv", "pdf")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv",
    "pdf": "application/pdf",
}
MANIFEST_TYPE = "warden.audit.export"


def export_filename(export_format: str, date_from: date | None, date_to: date | None) -> str:
    """`warden-evidence-2026-11-01_2026-11-30.pdf` for a report, `warden-audit-….jsonl` for
    the verifiable chain export."""
    span = f"{date_from or 'start'}_{date_to or 'now'}"
    kind = "audit" if export_format == "jsonl" else "evidence"
    return f"warden-{kind}-{span}.{export_format}"


# ----------------------------------------------------------------------------- JSONL chain


def _export_events(filters: EventFilters) -> QuerySet[AuditEvent]:
    """Unfiltered: the sequence range recorded in the period. Filtered: matching events."""
    if filters.without_period():
        return events_filter(filters).order_by("sequence")
    span = period_sequence_range(filters.date_from, filters.date_to)
    if span is None:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(sequence__range=span).order_by("sequence")


def event_line(values: tuple[Any, ...]) -> dict[str, Any]:
    """One event as exported: every hashed field in canonical form, plus its hash."""
    line = dict(zip((*SORTED_FIELDS, "hash"), values, strict=True))
    line["id"] = str(line["id"])
    line["occurred_at"] = canonical_time(line["occurred_at"])
    line["recorded_at"] = canonical_time(line["recorded_at"])
    return line


def _event_lines(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    for values in events.values_list(*SORTED_FIELDS, "hash").iterator(chunk_size=5000):
        yield event_line(values)


def jsonl_write(
    *,
    stream: BinaryIO,
    filters: EventFilters,
    checkpoint: AuditCheckpoint,
    generated_by: str,
    sign: Any,
    public_key: str,
    key_id: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the manifest and events; returns the manifest. `progress(written, total)` is
    called every PROGRESS_EVERY events.

    The manifest needs the count and both ends before the events are written, so the range
    is read twice: once for its ends (cheap aggregates), then streamed.
    """
    events = _export_events(filters).filter(sequence__lte=checkpoint.sequence)
    ends = events.values_list("sequence", "prev_hash", "hash")
    first, last = ends.first(), ends.last()
    manifest: dict[str, Any] = {
        "type": MANIFEST_TYPE,
        "version": 1,
        "period": {
            "from": filters.date_from.isoformat() if filters.date_from else None,
            "to": filters.date_to.isoformat() if filters.date_to else None,
        },
        "filters": filters.without_period(),
        "contiguous": not filters.without_period(),
        "event_count": events.count(),
        "first_sequence": first[0] if first else None,
        "last_sequence": last[0] if last else None,
        "first_prev_hash": first[1] if first else None,
        "last_hash": last[2] if last else None,
        "generated_at": canonical_time(checkpoint.created_at),
        "generated_by": generated_by,
        "checkpoint": checkpoint.as_signed_dict(),
        "checkpoints": _covered_checkpoints(filters, first, last, checkpoint),
        "key_id": key_id,
        "public_key": public_key,
    }
    manifest["signature"] = sign(manifest_payload(manifest))
    stream.write(_json_line(manifest))
    for written, line in enumerate(_event_lines(events), start=1):
        stream.write(_json_line(line))
        if progress is not None and written % PROGRESS_EVERY == 0:
            progress(written, manifest["event_count"])
    return manifest


def _covered_checkpoints(
    filters: EventFilters, first: Any, last: Any, export_checkpoint: AuditCheckpoint
) -> list[dict[str, Any]]:
    """The earlier signed checkpoints inside a contiguous export, whatever key signed them:
    the verifier checks each against the events (and the pinned keys, across rotations)."""
    if filters.without_period() or first is None:
        return []
    covered = (
        AuditCheckpoint.objects.filter(sequence__gte=first[0], sequence__lte=last[0])
        .exclude(pk=export_checkpoint.pk)
        .exclude(kind=AuditCheckpoint.Kind.PRUNE)
        .order_by("sequence", "created_at", "id")
    )
    return [checkpoint.as_signed_dict() for checkpoint in covered]


def _json_line(content: dict[str, Any]) -> bytes:
    return (json.dumps(content, ensure_ascii=False, sort_keys=True) + "\n").encode()


# ----------------------------------------------------------------------------- report: JSON


def report_json_write(*, stream: BinaryIO, report: dict[str, Any]) -> None:
    stream.write(json.dumps(report, ensure_ascii=False, indent=2, default=str).encode())


# ----------------------------------------------------------------------------- report: CSV


def report_csv_write(*, stream: BinaryIO, report: dict[str, Any]) -> None:
    """One CSV file, one block per section (a `# Title` row, a header row, the rows)."""
    text = io.StringIO()
    writer = csv.writer(text)
    for section in SECTIONS:
        writer.writerow([f"# {section.title}"])
        writer.writerow(section.keys)
        for row in section.rows(report):
            writer.writerow([cell_text(row.get(key)) for key in section.keys])
        writer.writerow([])
    stream.write(text.getvalue().encode())
