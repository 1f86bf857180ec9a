"""The single writer path of the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.hashing import GENESIS_HASH, event_hash
from audit.models import AuditEvent

# Any fixed number: the advisory lock that keeps the chain ordered under concurrent writers.
_CHAIN_LOCK_KEY = 7_202_611_24


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def _chain_head() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return last if last else (0, GENESIS_HASH)


def actor_fields(actor: Any) -> tuple[str, str]:
    """(name, kind) for a user, a service account, an agent name or None (the system)."""
    if actor is None:
        return "system", "system"
    if isinstance(actor, str):
        return actor, "agent"
    if getattr(actor, "is_service_account", False):
        return actor.get_username(), "service_account"
    return actor.get_username(), "user"


def _build_event(entry: dict[str, Any], sequence: int, prev_hash: str) -> AuditEvent:
    occurred_at: datetime = entry.get("occurred_at") or timezone.now()
    content = {
        "id": str(entry.get("id") or uuid.uuid4()),
        "sequence": sequence,
        "occurred_at": occurred_at.isoformat(),
        "actor": entry["actor"],
        "actor_kind": entry["actor_kind"],
        "action": entry["action"],
        "target_type": entry.get("target_type", ""),
        "target_id": str(entry.get("target_id", "")),
        "target_repr": str(entry.get("target_repr", ""))[:300],
        "datasource_name": entry.get("datasource_name", ""),
        "decision": entry.get("decision", ""),
        "details": entry.get("details") or {},
        "source_address": entry.get("source_address", ""),
        "prev_hash": prev_hash,
    }
    digest = event_hash(content)
    return AuditEvent(
        **{**content, "occurred_at": occurred_at, "id": uuid.UUID(content["id"])},
        recorded_at=timezone.now(),
        hash=digest,
    )


def events_append(*, entries: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """Chain and insert a batch of events in one transaction; ids already stored are skipped.

    Each entry holds actor, actor_kind, action and optionally id, occurred_at, target_type,
    target_id, target_repr, datasource_name, decision, details, source_address.
    """
    entries = list(entries)
    with transaction.atomic():
        _lock_chain()
        given_ids = [str(entry["id"]) for entry in entries if entry.get("id")]
        known = {
            str(pk) for pk in AuditEvent.objects.filter(id__in=given_ids).values_list("id", flat=True)
        }
        sequence, prev_hash = _chain_head()
        created: list[AuditEvent] = []
        for entry in entries:
            if entry.get("id") and str(entry["id"]) in known:
                continue
            sequence += 1
            event = _build_event(entry, sequence, prev_hash)
            prev_hash = event.hash
            known.add(str(event.id))
            created.append(event)
        AuditEvent.objects.bulk_create(created)
    return created


def event_record(
    *,
    actor: Any,
    action: str,
    target: Any = None,
    datasource: Any = None,
    decision: str = "",
    details: dict[str, Any] | None = None,
    source_address: str = "",
) -> AuditEvent:
    """Record one event inside the caller's transaction (services call this, see STYLE.md)."""
    actor_name, actor_kind = actor_fields(actor)
    entry: dict[str, Any] = {
        "actor": actor_name,
        "actor_kind": actor_kind,
        "action": action,
        "decision": decision,
        "details": details or {},
        "source_address": source_address,
        "datasource_name": getattr(datasource, "name", datasource or ""),
    }
    if target is not None:
        entry["target_type"] = target._meta.label_lower
        entry["target_id"] = str(target.pk)
        entry["target_repr"] = str(target)
    return events_append(entries=[entry])[0]
