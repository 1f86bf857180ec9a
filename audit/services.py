"""The single writer path of the audit trail, its checkpoints and audit's own events.

Every event goes through `_chain_and_insert`: under a transaction-scoped advisory lock
(PostgreSQL) it reads the chain head, numbers and hashes the new events and inserts them
(COPY on PostgreSQL, bulk_create elsewhere) in the caller's transaction. Concurrent writers
therefore queue on the lock and the chain stays gap-free and ordered.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from audit.counts import counts_add, counts_rebuild
from audit.hashing import (
    GENESIS_HASH,
    SORTED_FIELDS,
    canonical_text,
    canonical_time,
    checkpoint_payload,
    manifest_payload,
    parse_canonical_time,
    sorted_row_hash,
)
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import EventFilters, period_sequence_range
from audit.verification import ChainReport, chain_walk
from config.errors import InvalidInput, StateConflict

# Any fixed number: the advisory lock that keeps the chain ordered under concurrent writers.
_CHAIN_LOCK_KEY = 7_202_611_24
_COLUMNS = (*SORTED_FIELDS, "hash")
_ROW_TRIGGER = "audit_event_no_update_delete"
_COPY_SQL = f"COPY audit_auditevent ({', '.join(_COLUMNS)}) FROM STDIN"


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    hash: str
    recorded_at: datetime | None


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def chain_head() -> ChainHead:
    """The last stored event, else the checkpoint the chain was pruned at, else genesis."""
    last = (
        AuditEvent.objects.order_by("-sequence")
        .values_list("sequence", "hash", "recorded_at")
        .first()
    )
    if last:
        return ChainHead(*last)
    pruned = prune_anchor()
    if pruned is not None:
        return ChainHead(pruned.sequence, pruned.head_hash, pruned.created_at)
    return ChainHead(0, GENESIS_HASH, None)


def prune_anchor() -> AuditCheckpoint | None:
    """The checkpoint of the latest prune: the stored chain continues from its head."""
    return (
        AuditCheckpoint.objects.filter(kind=AuditCheckpoint.Kind.PRUNE)
        .order_by("-sequence")
        .first()
    )


def actor_fields(actor: Any) -> tuple[str, str]:
    """(name, kind) for a user, a service account, an agent name or None (the system)."""
    if actor is None:
        return "system", "system"
    if isinstance(actor, str):
        return actor, "agent"
    if getattr(actor, "is_service_account", False):
        return actor.get_username(), "service_account"
    return actor.get_username(), "user"


def _json_native(details: dict[str, Any] | None) -> dict[str, Any]:
    """What the database will hand back: JSON types only (dates and decimals become text)."""
    if not details:
        return {}
    return json.loads(json.dumps(details, default=str, allow_nan=False))


def _row(entry: dict[str, Any], sequence: int, prev_hash: str, recorded_at: str) -> list[Any]:
    """Values in _COLUMNS order (SORTED_FIELDS with details as canonical text, then hash)."""
    occurred_at = entry.get("occurred_at")
    values = [
        entry["action"],
        str(entry["actor"])[:150],
        entry["actor_kind"],
        entry.get("datasource_name") or "",
        entry.get("decision") or "",
        canonical_text(entry.get("details") or {}),
        str(entry.get("id") or uuid.uuid4()),
        canonical_time(occurred_at) if occurred_at else recorded_at,
        prev_hash,
        recorded_at,
        sequence,
        entry.get("source_address") or "",
        str(entry.get("target_id", ""))[:100],
        str(entry.get("target_repr", ""))[:300],
        entry.get("target_type", ""),
    ]
    values.append(sorted_row_hash(values))
    return values


def _insert(rows: Iterator[list[Any]]) -> list[list[Any]]:
    """Insert rows as they are produced; on PostgreSQL the server parses and indexes the
    COPY stream while Python is still hashing the rest of the batch."""
    stored: list[list[Any]] = []
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
            for row in rows:
                copy.write_row(row)
                stored.append(row)
        return stored
    stored = list(rows)
    AuditEvent.objects.bulk_create([_instance(row) for row in stored])
    return stored


def _instance(row: list[Any]) -> AuditEvent:
    fields = dict(zip(_COLUMNS, row, strict=True))
    fields["id"] = uuid.UUID(fields["id"])
    fields["occurred_at"] = parse_canonical_time(fields["occurred_at"])
    fields["recorded_at"] = parse_canonical_time(fields["recorded_at"])
    fields["details"] = json.loads(fields["details"])
    return AuditEvent(**fields)


def _chained_rows(
    entries: Sequence[dict[str, Any]], known: set[str], head: ChainHead, recorded_at: str
) -> Iterator[list[Any]]:
    sequence, prev_hash = head.sequence, head.hash
    for entry in entries:
        event_id = str(entry.get("id") or "")
        if event_id:
            if event_id in known:
                continue
            known.add(event_id)
        sequence += 1
        row = _row(entry, sequence, prev_hash, recorded_at)
        prev_hash = row[-1]
        yield row


def _stored_ids(ids: list[str]) -> set[str]:
    if not ids:
        return set()
    if connection.vendor == "postgresql":
        # One array parameter bound server-side: 4x cheaper than `id IN (%s, %s, ...)`.
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                "SELECT id::text FROM audit_auditevent WHERE id = ANY(%s::uuid[])", [ids]
            )
            return {row[0] for row in cursor.fetchall()}
    return {str(pk) for pk in AuditEvent.objects.filter(id__in=ids).values_list("id", flat=True)}


def _chain_and_insert(entries: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Number, hash and insert entries after the head; ids already stored are skipped."""
    given_ids = [str(entry["id"]) for entry in entries if entry.get("id")]
    # No savepoint: inside a service's transaction (the usual case) a failed append fails
    # that transaction anyway, and the savepoint was two more round trips per audited step.
    with transaction.atomic(savepoint=False):
        _lock_chain()
        head = chain_head()
        now = timezone.now()
        # recorded_at never goes backwards along the chain, so periods map to sequence ranges.
        recorded_at = canonical_time(max(now, head.recorded_at) if head.recorded_at else now)
        if given_ids and connection.vendor == "postgresql":
            # Optimistic: batches are rarely retried, so insert first and only look ids up
            # when the primary key says some are stored already (then redo, skipping them).
            try:
                with transaction.atomic():
                    return _counted(_insert(_chained_rows(entries, set(), head, recorded_at)))
            except psycopg.errors.UniqueViolation:
                pass
        known = _stored_ids(given_ids)
        return _counted(_insert(_chained_rows(entries, known, head, recorded_at)))


def _counted(rows: list[list[Any]]) -> list[list[Any]]:
    """Add the stored rows to the dashboard's counts (audit.counts), same transaction."""
    # _COLUMNS order: action, actor, actor_kind, datasource_name, decision, details, id,
    # occurred_at, prev_hash, recorded_at, sequence, …
    counts_add(
        facts=[(row[0], row[1], row[3], row[4], row[5], row[7][:10], row[10]) for row in rows]
    )
    return rows


def events_append(*, entries: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """Chain and insert a batch of events in one transaction; ids already stored are skipped.

    Each entry holds actor, actor_kind, action and optionally id, occurred_at (aware
    datetime), target_type, target_id, target_repr, datasource_name, decision, details
    (JSON-native dict), source_address. Returns the stored events (not the skipped ones).
    """
    prepared = [{**entry, "details": _json_native(entry.get("details"))} for entry in entries]
    return [_instance(row) for row in _chain_and_insert(prepared)]


def events_append_count(*, entries: Sequence[dict[str, Any]]) -> int:
    """events_append for large batches whose details are already JSON-native (agent ingest)."""
    return len(_chain_and_insert(entries))


def event_record(**fields: Any) -> AuditEvent:
    """Record one event inside the caller's transaction (services call this, see STYLE.md);
    ``fields`` are ``event_entry``'s."""
    return events_append(entries=[event_entry(**fields)])[0]


def event_entry(
    *,
    actor: Any,
    action: str,
    target: Any = None,
    datasource: Any = None,
    decision: str = "",
    details: dict[str, Any] | None = None,
    source_address: str = "",
) -> dict[str, Any]:
    """One event as ``events_append`` takes it. A service that writes several events in one
    transaction appends them together: one chain lock, one head read, one insert."""
    actor_name, actor_kind = actor_fields(actor)
    entry: dict[str, Any] = {
        "actor": actor_name,
        "actor_kind": actor_kind,
        "action": action,
        "decision": decision,
        "details": details or {},
        "source_address": source_address or "",
        "datasource_name": getattr(datasource, "name", datasource or ""),
    }
    if target is not None:
        entry["target_type"] = target._meta.label_lower
        entry["target_id"] = str(target.pk)
        entry["target_repr"] = str(target)
    return entry


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_create(*, kind: str, actor: Any = None) -> AuditCheckpoint:
    """Sign the current chain head with the control plane's Ed25519 key and store it."""
    with transaction.atomic():
        _lock_chain()
        head = chain_head()
        return _checkpoint_sign(sequence=head.sequence, head_hash=head.hash, kind=kind, actor=actor)


# ----------------------------------------------------------------------------- sign-in events


def _client_address(request: Any) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))[:100]


def auth_login_record(*, user: Any, request: Any) -> AuditEvent:
    with transaction.atomic():
        return event_record(
            actor=user, action="auth.login", target=user, source_address=_client_address(request)
        )


def auth_logout_record(*, user: Any, request: Any) -> AuditEvent | None:
    if user is None:  # a logout without a session: nobody to attribute it to
        return None
    with transaction.atomic():
        return event_record(
            actor=user, action="auth.logout", target=user, source_address=_client_address(request)
        )


def auth_login_failed_record(*, credentials: dict[str, Any], request: Any) -> AuditEvent:
    # Never store the password: only the name that was tried.
    attempted = str(
        credentials.get("username") or credentials.get("login") or credentials.get("email") or ""
    )[:150]
    entry = {
        "actor": attempted or "anonymous",
        "actor_kind": "anonymous",
        "action": "auth.login_failed",
        "decision": "deny",
        "details": {"attempted_username": attempted},
        "source_address": _client_address(request),
    }
    return events_append(entries=[entry])[0]


# ----------------------------------------------------------------------------- verification


def chain_verify(
    *,
    actor: Any,
    from_sequence: int = 1,
    to_sequence: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Walk the chain and record who checked it and what they found (`audit.verified`)."""
    report = chain_walk(from_sequence=from_sequence, to_sequence=to_sequence, progress=progress)
    with transaction.atomic():
        event_record(
            actor=actor,
            action="audit.verified",
            decision="ok" if report.ok else "broken",
            details={
                "checked": report.checked,
                "first_sequence": report.first_sequence,
                "last_sequence": report.last_sequence,
                "head_hash": report.head_hash,
                "kind": report.kind,
                "problem": report.problem,
                "broken_sequence": report.broken_sequence,
                "broken_event_id": report.broken_event_id,
            },
        )
    return report


# ----------------------------------------------------------------------------- exports


@dataclass(frozen=True)
class ExportResult:
    export_format: str
    filename: str
    content_type: str
    event_count: int
    checkpoint: AuditCheckpoint
    manifest: dict[str, Any] | None = None


def _signed_report(
    filters: EventFilters, checkpoint: AuditCheckpoint, progress: Callable[[int], None]
) -> dict[str, Any]:
    from audit.reports import evidence_report_build
    from governance import crypto

    report = evidence_report_build(
        date_from=filters.date_from, date_to=filters.date_to, filters=filters, progress=progress
    )
    report["checkpoint"] = checkpoint.as_signed_dict()
    report["key_id"], report["public_key"] = crypto.signing_key_id(), crypto.public_key_b64()
    # Over the canonical JSON of everything but the signature (audit.hashing.manifest_payload).
    report["signature"] = crypto.sign(manifest_payload(report))
    return report


def audit_export(
    *,
    actor: Any,
    export_format: str,
    filters: EventFilters,
    stream: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write an export to `stream`: a signed checkpoint first, `audit.exported` after.

    Deliberately not one transaction: the chain lock is held only while the checkpoint is
    signed, so agents keep appending while a long export is written. The export covers the
    chain up to that checkpoint.
    """
    from audit import exports, pdf
    from governance import crypto

    if export_format not in exports.EXPORT_FORMATS:
        raise InvalidInput(
            f"Unknown export format {export_format!r}; use one of "
            f"{', '.join(exports.EXPORT_FORMATS)}.",
            field="export_format",
        )
    step = progress or (lambda percent: None)
    checkpoint = checkpoint_create(kind=AuditCheckpoint.Kind.EXPORT, actor=actor)
    step(5)
    manifest = None
    if export_format == "jsonl":
        manifest = exports.jsonl_write(
            stream=stream,
            filters=filters,
            checkpoint=checkpoint,
            generated_by=actor_fields(actor)[0],
            sign=crypto.sign,
            public_key=crypto.public_key_b64(),
            key_id=crypto.signing_key_id(),
            progress=lambda written, total: step(5 + 90 * written // max(total, 1)),
        )
        count = manifest["event_count"]
    else:
        report = _signed_report(filters, checkpoint, step)
        writer = {
            "json": exports.report_json_write,
            "csv": exports.report_csv_write,
            "pdf": pdf.report_pdf_write,
        }[export_format]
        writer(stream=stream, report=report)
        count = report["event_count"]
    step(97)
    filename = exports.export_filename(export_format, filters.date_from, filters.date_to)
    with transaction.atomic():
        event_record(
            actor=actor,
            action="audit.exported",
            details={
                "format": export_format,
                "filename": filename,
                "filters": filters.as_dict(),
                "event_count": count,
                "checkpoint_id": checkpoint.pk,
                "checkpoint_sequence": checkpoint.sequence,
            },
        )
    return ExportResult(
        export_format, filename, exports.CONTENT_TYPES[export_format], count, checkpoint, manifest
    )


def audit_monthly_report(*, month: date, output_dir: Path | None = None) -> list[Path]:
    """The scheduled evidence pack for one calendar month: PDF, CSV, JSON and JSONL."""
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    directory = Path(output_dir or settings.WARDEN_AUDIT_REPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for export_format in ("pdf", "csv", "json", "jsonl"):
        path = directory / f"warden-audit-{first:%Y-%m}.{export_format}"
        with path.open("wb") as stream:
            audit_export(
                actor=None,
                export_format=export_format,
                filters=EventFilters(date_from=first, date_to=last),
                stream=stream,
            )
        written.append(path)
    return written


# ----------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class PruneResult:
    through_sequence: int
    events_pruned: int
    archive: Path
    checkpoint: AuditCheckpoint


def _checkpoint_sign(*, sequence: int, head_hash: str, kind: str, actor: Any) -> AuditCheckpoint:
    from governance import crypto

    checkpoint = AuditCheckpoint(
        sequence=sequence,
        head_hash=head_hash,
        created_at=timezone.now(),
        kind=kind,
        key_id=crypto.signing_key_id(),
        public_key=crypto.public_key_b64(),
        created_by=actor_fields(actor)[0],
    )
    checkpoint.signature = crypto.sign(checkpoint_payload(checkpoint.as_signed_dict()))
    AuditCheckpoint.objects.bulk_create([checkpoint])
    return checkpoint


def _delete_through(sequence: int) -> int:
    """The one sanctioned removal of events: the append-only trigger is switched off inside
    this transaction only (ALTER TABLE is transactional in PostgreSQL and takes an exclusive
    lock, so no other session ever sees it off) and back on before commit."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {_ROW_TRIGGER}")
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence <= %s", [sequence])
        deleted = cursor.rowcount
        cursor.execute("DELETE FROM audit_auditeventtag WHERE sequence <= %s", [sequence])
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {_ROW_TRIGGER}")
    return deleted


def audit_prune(
    *,
    actor: Any = None,
    retention_days: int | None = None,
    archive_dir: Path | None = None,
    today: date | None = None,
) -> PruneResult | None:
    """Archive, then remove, events recorded before the retention window.

    Refuses when the chain to be pruned does not verify (the evidence would be destroyed).
    Steps: JSONL archive of the pruned range (signed manifest) → a `prune` checkpoint with
    the last pruned event's sequence and hash → delete → `audit.pruned`. Verification then
    starts from the prune checkpoint instead of genesis.
    """
    days = settings.WARDEN_AUDIT_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return None
    keep_from = (today or timezone.now().date()) - timedelta(days=days)
    span = period_sequence_range(None, keep_from - timedelta(days=1))
    if span is None:
        return None
    through = span[1]
    check = chain_walk(to_sequence=through)
    if not check.ok:
        raise StateConflict(f"Refusing to prune: the chain does not verify. {check.summary()}")
    directory = Path(archive_dir or settings.WARDEN_AUDIT_ARCHIVE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"warden-audit-archive-{span[0]}-{through}.jsonl"
    with archive.open("wb") as stream:
        audit_export(
            actor=actor,
            export_format="jsonl",
            stream=stream,
            filters=EventFilters(date_to=keep_from - timedelta(days=1)),
        )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with transaction.atomic():
        _lock_chain()
        checkpoint = _checkpoint_sign(
            sequence=through,
            head_hash=check.head_hash,
            kind=AuditCheckpoint.Kind.PRUNE,
            actor=actor,
        )
        pruned_days = AuditEvent.objects.filter(sequence__lte=through).aggregate(
            first=Min("occurred_at"), last=Max("occurred_at")
        )
        deleted = _delete_through(through)
        if pruned_days["first"] is not None:
            counts_rebuild(
                first_day=pruned_days["first"].date(), last_day=pruned_days["last"].date()
            )
        event_record(
            actor=actor,
            action="audit.pruned",
            details={
                "through_sequence": through,
                "through_hash": check.head_hash,
                "events_pruned": deleted,
                "retention_days": days,
                "archive": archive.name,
                "archive_sha256": digest,
                "checkpoint_id": checkpoint.pk,
            },
        )
    return PruneResult(through, deleted, archive, checkpoint)
