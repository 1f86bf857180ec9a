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
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from django.db.models import QuerySet

from audit.hashing import SORTED_FIELDS, canonical_time, manifest_payload
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import EventFilters, events_filter, period_sequence_range

EXPORT_FORMATS = ("jsonl", "json", "csv", "pdf")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv",
    "pdf": "application/pdf",
}
MANIFEST_TYPE = "warden.audit.export"


def export_filename(export_format: str, date_from: date | None, date_to: date | None) -> str:
    span = f"{date_from or 'start'}_{date_to or 'now'}"
    return f"warden-audit-{span}.{export_format}"


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
) -> dict[str, Any]:
    """Write the manifest and events; returns the manifest.

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
        "key_id": key_id,
        "public_key": public_key,
    }
    manifest["signature"] = sign(manifest_payload(manifest))
    stream.write(_json_line(manifest))
    for line in _event_lines(events):
        stream.write(_json_line(line))
    return manifest


def _json_line(content: dict[str, Any]) -> bytes:
    return (json.dumps(content, ensure_ascii=False, sort_keys=True) + "\n").encode()


# ----------------------------------------------------------------------------- report: JSON


def report_json_write(*, stream: BinaryIO, report: dict[str, Any]) -> None:
    stream.write(json.dumps(report, ensure_ascii=False, indent=2, default=str).encode())


# ----------------------------------------------------------------------------- report: CSV


def _csv_block(writer: Any, title: str, header: list[str], rows: list[list[Any]]) -> None:
    writer.writerow([f"# {title}"])
    writer.writerow(header)
    writer.writerows(rows)
    writer.writerow([])


def report_csv_write(*, stream: BinaryIO, report: dict[str, Any]) -> None:
    """One CSV file, one block per section (a `# Title` row, a header row, the rows)."""
    text = io.StringIO()
    writer = csv.writer(text)
    period = report["period"]
    _csv_block(
        writer,
        "Report",
        ["from", "to", "generated_at", "events", "chain"],
        [
            [
                period["from"],
                period["to"],
                report["generated_at"],
                report["event_count"],
                "verified" if report["verification"]["ok"] else "BROKEN",
            ]
        ],
    )
    access_rows = [
        [
            item["identity"],
            column["datasource"],
            column["column"],
            " ".join(column["tags"]),
            column["masked"],
            column["unmasked"],
        ]
        for item in report["access_summary"]
        for column in item["tagged_columns"]
    ]
    _csv_block(
        writer,
        "Access to tagged columns",
        ["identity", "datasource", "column", "tags", "masked", "unmasked"],
        access_rows,
    )
    _csv_block(
        writer,
        "Queries per identity",
        ["identity", "queries", "allow", "mask", "deny", "hold"],
        [
            [
                item["identity"],
                item["queries"],
                *(item["by_decision"].get(d, 0) for d in ("allow", "mask", "deny", "hold")),
            ]
            for item in report["access_summary"]
        ],
    )
    _csv_block(
        writer,
        "Access requests",
        [
            "request_id",
            "requester",
            "scope",
            "level",
            "reason",
            "duration_minutes",
            "status",
            "reviewer",
            "comment",
            "requested_at",
            "decided_at",
        ],
        [
            [
                request.get(key, "")
                if not isinstance(request.get(key), dict | list)
                else json.dumps(request.get(key))
                for key in (
                    "request_id",
                    "requester",
                    "scope",
                    "level",
                    "reason",
                    "duration_minutes",
                    "status",
                    "reviewer",
                    "comment",
                    "requested_at",
                    "decided_at",
                )
            ]
            for request in report["access_requests"]
        ],
    )
    _csv_block(
        writer,
        "Break-glass uses",
        ["sequence", "time", "actor", "datasource", "reason"],
        [
            [
                item["sequence"],
                item["time"],
                item["actor"],
                item["datasource"],
                item.get("reason", ""),
            ]
            for item in report["break_glass"]["items"]
        ],
    )
    _csv_block(
        writer,
        "Blocked statements",
        ["sequence", "time", "identity", "datasource", "rule", "statement"],
        [
            [
                item["sequence"],
                item["time"],
                item["identity"],
                item["datasource"],
                item["rule"],
                item["statement"],
            ]
            for item in report["blocked_statements"]["items"]
        ],
    )
    _csv_block(
        writer,
        "Policy and tag changes",
        ["sequence", "time", "actor", "action", "target", "before", "after"],
        [
            [
                item["sequence"],
                item["time"],
                item["actor"],
                item["action"],
                item["target"],
                json.dumps(item.get("before"), sort_keys=True),
                json.dumps(item.get("after"), sort_keys=True),
            ]
            for item in report["changes"]["items"]
        ],
    )
    _csv_block(
        writer,
        "Classification coverage",
        [
            "datasource",
            "columns",
            "tagged_columns",
            "coverage_percent",
            "confirmed_tags",
            "suggested_tags",
        ],
        [
            [
                item[key]
                for key in (
                    "datasource",
                    "columns",
                    "tagged_columns",
                    "coverage_percent",
                    "confirmed_tags",
                    "suggested_tags",
                )
            ]
            for item in report["coverage"]
        ],
    )
    verification = report["verification"]
    _csv_block(
        writer,
        "Chain verification",
        ["ok", "checked", "first_sequence", "last_sequence", "head_hash", "problem"],
        [
            [
                verification["ok"],
                verification["checked"],
                verification["first_sequence"],
                verification["last_sequence"],
                verification["head_hash"],
                verification["problem"],
            ]
        ],
    )
    checkpoint = report.get("checkpoint") or {}
    _csv_block(
        writer,
        "Signed checkpoint",
        ["sequence", "head_hash", "created_at", "key_id", "signature"],
        [
            [
                checkpoint.get(key, "")
                for key in ("sequence", "head_hash", "created_at", "key_id", "signature")
            ]
        ],
    )
    stream.write(text.getvalue().encode())
