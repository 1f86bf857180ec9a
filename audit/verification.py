"""Walking the chain: recompute every hash, follow every link, compare with checkpoints.

Streaming and flat in memory: on PostgreSQL a server-side cursor hands back plain tuples
with times already in canonical text (no model instances, no datetime objects); elsewhere
a chunked `.iterator()`.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection, models, transaction
from django.db.models.functions import Cast

from audit.hashing import (
    GENESIS_HASH,
    PG_TIME_FORMAT,
    SORTED_FIELDS,
    canonical_time,
    checkpoint_payload,
    sorted_row_hash,
)
from audit.models import AuditCheckpoint, AuditEvent

FETCH_SIZE = 5_000
PROGRESS_EVERY = 10_000  # a 1M-event walk reports 100 times: the bar moves by 1 %


@dataclass
class ChainReport:
    ok: bool = True
    checked: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    start_hash: str = GENESIS_HASH
    head_hash: str = ""
    started_from: str = "genesis"
    problem: str = ""
    kind: str = ""  # edited, deleted, reordered, inserted, checkpoint_mismatch, bad_checkpoint
    broken_event_id: str = ""
    broken_sequence: int | None = None
    checkpoints_checked: int = 0
    elapsed_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.ok:
            span = f"#{self.first_sequence}..#{self.last_sequence}" if self.checked else "no events"
            return (
                f"OK: {self.checked} events ({span}) verified from {self.started_from}, "
                f"{self.checkpoints_checked} checkpoints match, head {self.head_hash[:16]}"
            )
        where = (
            f" at event #{self.broken_sequence} {self.broken_event_id}".rstrip()
            if self.broken_sequence is not None
            else ""
        )
        return f"BROKEN ({self.kind}){where}: {self.problem}"


def _trusted_keys() -> dict[str, str]:
    from governance.crypto import trusted_public_keys

    return trusted_public_keys()


def checkpoint_problem(checkpoint: AuditCheckpoint, trusted: dict[str, str] | None = None) -> str:
    """Why ``checkpoint`` cannot be trusted ("" when it can): its key must be one this
    control plane holds or retired (``trusted``: key id → public key), and its signature
    must verify. A checkpoint signed by any other key could have been forged with it."""
    trusted = _trusted_keys() if trusted is None else trusted
    if trusted.get(checkpoint.key_id) != checkpoint.public_key:
        return (
            f"signed by key {checkpoint.key_id}, which this control plane does not trust "
            "(a retired key's public half belongs in WARDEN_SIGNING_KEYS_RETIRED)"
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint.public_key))
        key.verify(
            base64.b64decode(checkpoint.signature),
            checkpoint_payload(checkpoint.as_signed_dict()),
        )
    except (InvalidSignature, ValueError):
        return "bad signature"
    return ""


def checkpoint_signature_valid(checkpoint: AuditCheckpoint) -> bool:
    return not checkpoint_problem(checkpoint)


# Row layout: SORTED_FIELDS (details as canonical text), then the stored hash.
_ID, _PREV, _SEQ, _HASH = 6, 8, 10, 15
_TIME_SQL = "to_char({} AT TIME ZONE 'UTC', '" + PG_TIME_FORMAT + "')"
_SELECT = ", ".join(
    {
        "id": "id::text",
        "occurred_at": _TIME_SQL.format("occurred_at"),
        "recorded_at": _TIME_SQL.format("recorded_at"),
    }.get(name, name)
    for name in (*SORTED_FIELDS, "hash")
)


def _pg_rows(from_sequence: int, to_sequence: int | None) -> Generator[tuple[Any, ...]]:
    # Text columns only: psycopg's uuid/timestamptz loaders would cost more than the hash.
    sql = f"SELECT {_SELECT} FROM audit_auditevent WHERE sequence >= %s"
    params: list[Any] = [from_sequence]
    if to_sequence is not None:
        sql += " AND sequence <= %s"
        params.append(to_sequence)
    sql += " ORDER BY sequence"
    connection.ensure_connection()
    with transaction.atomic(), connection.connection.cursor(name="audit_chain_walk") as cursor:
        cursor.itersize = FETCH_SIZE
        cursor.execute(sql, params)
        yield from _prefetched(cursor)


def _prefetched(cursor: Any) -> Iterator[tuple[Any, ...]]:
    """Rows of `cursor`, the next batch fetched on a thread while this one is hashed.

    The database prepares and sends a batch while Python hashes the previous one (psycopg
    releases the GIL while it waits), instead of the two taking turns. At most two batches
    are held, so memory stays flat.
    """
    batches: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            while put(batch := cursor.fetchmany(FETCH_SIZE)) and batch:
                pass
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    fetcher = threading.Thread(target=pump, name="audit-verify-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            yield from batch
    finally:
        stop.set()
        fetcher.join()


def _orm_rows(from_sequence: int, to_sequence: int | None) -> Generator[tuple[Any, ...]]:
    events = AuditEvent.objects.filter(sequence__gte=from_sequence)
    if to_sequence is not None:
        events = events.filter(sequence__lte=to_sequence)
    # values_list would decode details; the walk wants the stored text.
    columns = [name for name in SORTED_FIELDS if name != "details"]
    events = events.annotate(details_text=Cast("details", models.TextField()))
    for values in (
        events.order_by("sequence")
        .values_list(*columns[:5], "details_text", *columns[5:], "hash")
        .iterator(chunk_size=FETCH_SIZE)
    ):
        row = list(values)
        row[_ID] = str(row[_ID])
        row[7], row[9] = canonical_time(row[7]), canonical_time(row[9])
        yield tuple(row)


def event_rows(from_sequence: int, to_sequence: int | None = None) -> Generator[tuple[Any, ...]]:
    """Events as tuples (SORTED_FIELDS with details as text, hash), in sequence order."""
    if connection.vendor == "postgresql":
        return _pg_rows(from_sequence, to_sequence)
    return _orm_rows(from_sequence, to_sequence)


def _anchor(from_sequence: int, report: ChainReport) -> tuple[int, str] | None:
    """(sequence, hash) the walk starts after; None when the start itself is broken."""
    if from_sequence > 1:
        before = (
            AuditEvent.objects.filter(sequence=from_sequence - 1).values_list("hash", flat=True)
        ).first()
        if before is not None:
            report.started_from = f"event #{from_sequence - 1}"
            return from_sequence - 1, before
    anchor = (
        AuditCheckpoint.objects.filter(kind=AuditCheckpoint.Kind.PRUNE)
        .order_by("-sequence")
        .first()
    )
    if anchor is None:
        return 0, GENESIS_HASH
    problem = checkpoint_problem(anchor)
    if problem:
        report.ok, report.kind = False, "bad_checkpoint"
        report.problem = f"the prune checkpoint at #{anchor.sequence}: {problem}"
        return None
    report.started_from = f"prune checkpoint #{anchor.sequence}"
    return anchor.sequence, anchor.head_hash


def _checkpoints_by_sequence(
    from_sequence: int, to_sequence: int | None, report: ChainReport
) -> dict[int, list[AuditCheckpoint]]:
    checkpoints = AuditCheckpoint.objects.filter(sequence__gte=from_sequence)
    if to_sequence is not None:
        checkpoints = checkpoints.filter(sequence__lte=to_sequence)
    by_sequence: dict[int, list[AuditCheckpoint]] = {}
    trusted = _trusted_keys()
    for checkpoint in checkpoints.exclude(kind=AuditCheckpoint.Kind.PRUNE):
        problem = checkpoint_problem(checkpoint, trusted)
        if problem:
            report.notes.append(f"checkpoint {checkpoint.pk} at #{checkpoint.sequence}: {problem}")
            continue
        by_sequence.setdefault(checkpoint.sequence, []).append(checkpoint)
    return by_sequence


def _fail(report: ChainReport, row: tuple[Any, ...], kind: str, problem: str) -> ChainReport:
    report.ok, report.kind, report.problem = False, kind, problem
    report.broken_event_id, report.broken_sequence = row[_ID], row[_SEQ]
    return report


def _classify(row: tuple[Any, ...], expected: int, prev_hash: str) -> tuple[str, str] | None:
    sequence, stored_prev, stored_hash = row[_SEQ], row[_PREV], row[_HASH]
    if sequence != expected:
        return "deleted", f"expected event #{expected} next but found #{sequence}: events missing"
    content_ok = sorted_row_hash(row) == stored_hash
    link_ok = stored_prev == prev_hash
    if content_ok and link_ok:
        return None
    if link_ok:
        return "edited", "its content no longer matches its hash"
    if content_ok:
        return "inserted", "a well-formed event that does not follow its predecessor's hash"
    return "reordered", "neither its content nor its link to the previous event matches"


def _walk(
    rows: Iterator[tuple[Any, ...]],
    expected: int,
    prev_hash: str,
    checkpoints: dict[int, list[AuditCheckpoint]],
    report: ChainReport,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    first = expected
    checked = 0
    for row in rows:
        if progress is not None and checked % PROGRESS_EVERY == 0:
            progress(checked)
        problem = _classify(row, expected, prev_hash)
        if problem is not None:
            _fail(report, row, *problem)
            break
        prev_hash = row[_HASH]
        if expected in checkpoints:
            if any(cp.head_hash != prev_hash for cp in checkpoints[expected]):
                _fail(report, row, "checkpoint_mismatch", "differs from a signed checkpoint")
                break
            report.checkpoints_checked += len(checkpoints[expected])
        checked += 1
        expected += 1
    report.checked = checked
    report.first_sequence = first if checked else None
    return expected, prev_hash


def chain_walk(
    *,
    from_sequence: int = 1,
    to_sequence: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Verify events from_sequence..to_sequence; stops at the first broken link.

    `progress`, when given, is called with the number of events checked so far every
    PROGRESS_EVERY events (a task reports it to the page that follows it)."""
    started = time.perf_counter()
    report = ChainReport()
    anchor = _anchor(max(from_sequence, 1), report)
    if anchor is None:
        return report
    expected, prev_hash = anchor[0] + 1, anchor[1]
    report.start_hash = prev_hash
    checkpoints = _checkpoints_by_sequence(expected, to_sequence, report)
    rows = event_rows(expected, to_sequence)
    try:
        expected, prev_hash = _walk(rows, expected, prev_hash, checkpoints, report, progress)
    finally:
        rows.close()
    report.last_sequence = expected - 1 if report.checked else None
    report.head_hash = prev_hash
    beyond = [sequence for sequence in checkpoints if sequence >= expected]
    if report.ok and beyond:
        report.ok, report.kind, report.broken_sequence = False, "deleted", expected
        report.problem = (
            f"a signed checkpoint names event #{max(beyond)} but the chain ends at "
            f"#{expected - 1}: events at the end were removed"
        )
    if report.ok and report.notes:
        # A checkpoint whose signature fails was altered or forged: the trail is not intact.
        report.ok, report.kind = False, "bad_checkpoint"
        report.problem = "; ".join(report.notes)
    report.elapsed_seconds = round(time.perf_counter() - started, 3)
    return report
