"""Canonical serialisation and hashing of audit events (shared with the offline verifier)."""

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "id",
    "sequence",
    "occurred_at",
    "actor",
    "actor_kind",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "datasource_name",
    "decision",
    "details",
    "source_address",
    "prev_hash",
)


def canonical_json(content: dict[str, Any]) -> bytes:
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def event_hash(content: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the hashed fields (times as ISO-8601 strings)."""
    return hashlib.sha256(canonical_json({key: content[key] for key in HASHED_FIELDS})).hexdigest()
