"""Canonical serialisation and hashing of audit events, checkpoints and export manifests.

Standard library only: the offline verifier (`python -m audit.verify`) imports this module
without Django, so an auditor checks an export with exactly the code that wrote it.

Canonical form of an event: the JSON object of HASHED_FIELDS with keys sorted, no
whitespace, UTF-8 (not ASCII-escaped), NaN refused. Times are UTC strings with exactly six
fractional digits (`2026-11-24T08:00:00.000000Z`), so the database can produce the same text
(`to_char`) when verifying without building datetime objects. `details` is any JSON object;
its keys are sorted too. An event's `hash` is the SHA-256 (hex) of its canonical form, which
includes `prev_hash`, the hash of the event before it (GENESIS_HASH for the first one).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The same format in PostgreSQL's to_char (after `AT TIME ZONE 'UTC'`).
PG_TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
HASHED_FIELDS = (
    "id",
    "sequence",
    "occurred_at",
    "recorded_at",
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
CHECKPOINT_FIELDS = ("sequence", "head_hash", "created_at", "kind", "key_id")

_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_canonical_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def canonical_json(content: Any) -> bytes:
    return _encode(content).encode()


def canonical_text(content: Any) -> str:
    return _encode(content)


def event_hash(content: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the hashed fields of one event."""
    return hashlib.sha256(
        _encode({key: content[key] for key in HASHED_FIELDS}).encode()
    ).hexdigest()


# HASHED_FIELDS in canonical (sorted) order, split around `details`. Splicing the stored
# canonical details text between the two encoded halves yields exactly canonical_json of the
# whole event, without decoding and re-encoding details (the costly part of verification).
_BEFORE_DETAILS = ("action", "actor", "actor_kind", "datasource_name", "decision")
_AFTER_DETAILS = (
    "id",
    "occurred_at",
    "prev_hash",
    "recorded_at",
    "sequence",
    "source_address",
    "target_id",
    "target_repr",
    "target_type",
)
SORTED_FIELDS = (*_BEFORE_DETAILS, "details", *_AFTER_DETAILS)
assert tuple(sorted(HASHED_FIELDS)) == SORTED_FIELDS
_string = json.encoder.encode_basestring  # what JSONEncoder(ensure_ascii=False) uses


def sorted_row_hash(v: Any) -> str:
    """event_hash for values in SORTED_FIELDS order whose `details` (v[5]) is canonical text.

    Written out field by field because it runs once per event in verification; the test
    suite checks it equals event_hash on varied content.
    """
    e = _string
    text = (
        f'{{"action":{e(v[0])},"actor":{e(v[1])},"actor_kind":{e(v[2])},'
        f'"datasource_name":{e(v[3])},"decision":{e(v[4])},"details":{v[5]},"id":{e(v[6])},'
        f'"occurred_at":{e(v[7])},"prev_hash":{e(v[8])},"recorded_at":{e(v[9])},'
        f'"sequence":{int(v[10])},"source_address":{e(v[11])},"target_id":{e(v[12])},'
        f'"target_repr":{e(v[13])},"target_type":{e(v[14])}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_payload(checkpoint: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical_json(
        {"type": "warden.audit.checkpoint", **{key: checkpoint[key] for key in CHECKPOINT_FIELDS}}
    )


def manifest_payload(manifest: dict[str, Any]) -> bytes:
    """The bytes an export manifest's signature covers: everything but the signature."""
    return canonical_json({key: value for key, value in manifest.items() if key != "signature"})
