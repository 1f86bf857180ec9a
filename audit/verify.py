"""Offline verifier for Warden audit exports (JSONL). Standard library + cryptography only.

    python -m audit.verify export.jsonl [--public-key BASE64 ...]

It needs only this file and audit/hashing.py (copy the `audit` directory, or install
`cryptography` and run from a Warden checkout). Checks, in order:

1. the manifest's Ed25519 signature (with the key in the manifest, which must be one of
   the `--public-key`s when given: pin the control plane's keys from a trusted channel, e.g.
   `warden keys status` or `GET /api/v1/audit/checkpoints`), the embedded checkpoint's, and
   those of the earlier checkpoints the export covers (`checkpoints`). Across a signing key
   rotation, pin every key that signed a checkpoint in the range: the old and the new;
2. every event's hash over its canonical content (audit.hashing.event_hash);
3. for a contiguous (unfiltered) export: sequences without gaps, each prev_hash equal to
   the previous event's hash, the first prev_hash equal to the manifest's;
4. the manifest's event count, first/last sequence and last hash against the events; the
   checkpoint (taken when the export was made) covers the last exported event, and every
   covered checkpoint's head hash is the hash of the event at its sequence.

Exit status 0 and "OK ..." when everything holds; 1 and "FAILED: line N: ..." naming the
first problem otherwise; 2 for unusable input.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.hashing import HASHED_FIELDS, checkpoint_payload, event_hash, manifest_payload

MANIFEST_TYPE = "warden.audit.export"


class VerificationFailed(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Outcome:
    events: int
    first_sequence: int | None
    last_sequence: int | None
    last_hash: str | None
    key_id: str


def _signature_valid(public_key_b64: str, signature_b64: str, payload: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(signature_b64), payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_checkpoint(checkpoint: Any, pinned_keys: list[str], what: str) -> None:
    if not isinstance(checkpoint, dict) or not _signature_valid(
        checkpoint.get("public_key", ""),
        checkpoint.get("signature", ""),
        checkpoint_payload(checkpoint) if checkpoint else b"",
    ):
        raise VerificationFailed(1, f"{what} signature is invalid")
    if pinned_keys and checkpoint.get("public_key") not in pinned_keys:
        raise VerificationFailed(
            1, f"{what} signed with key {checkpoint.get('key_id')}, not a pinned --public-key"
        )


def check_manifest(manifest: dict[str, Any], pinned_keys: list[str]) -> None:
    if manifest.get("type") != MANIFEST_TYPE:
        raise VerificationFailed(1, "not a Warden audit export manifest")
    public_key = manifest.get("public_key", "")
    if pinned_keys and public_key not in pinned_keys:
        raise VerificationFailed(1, "signed with a different key than the pinned --public-key")
    if not _signature_valid(public_key, manifest.get("signature", ""), manifest_payload(manifest)):
        raise VerificationFailed(1, "manifest signature is invalid (manifest was altered)")
    _check_checkpoint(manifest.get("checkpoint") or {}, pinned_keys, "checkpoint")
    for covered in manifest.get("checkpoints", []):
        _check_checkpoint(covered, pinned_keys, f"checkpoint at #{covered.get('sequence')}")


def _heads_by_sequence(manifest: dict[str, Any]) -> dict[int, set[str]]:
    heads: dict[int, set[str]] = {}
    for checkpoint in manifest.get("checkpoints", []):
        heads.setdefault(checkpoint["sequence"], set()).add(checkpoint["head_hash"])
    return heads


def _check_event(
    number: int, event: dict[str, Any], previous: dict[str, Any] | None, contiguous: bool
) -> None:
    missing = [key for key in (*HASHED_FIELDS, "hash") if key not in event]
    if missing:
        raise VerificationFailed(number, f"event lacks {', '.join(missing)}")
    if event_hash(event) != event["hash"]:
        raise VerificationFailed(
            number, f"event #{event['sequence']} {event['id']}: content does not match its hash"
        )
    if previous is None or not contiguous:
        if previous is not None and event["sequence"] <= previous["sequence"]:
            raise VerificationFailed(number, f"event #{event['sequence']} out of order")
        return
    if event["sequence"] != previous["sequence"] + 1:
        raise VerificationFailed(
            number,
            f"event #{event['sequence']} follows #{previous['sequence']}: events missing",
        )
    if event["prev_hash"] != previous["hash"]:
        raise VerificationFailed(
            number,
            f"event #{event['sequence']} {event['id']}: prev_hash does not match the previous "
            "event's hash (inserted, removed or reordered)",
        )


def _check_ends(manifest: dict[str, Any], count: int, first: Any, last: Any, line: int) -> None:
    if count != manifest.get("event_count"):
        raise VerificationFailed(
            line, f"manifest says {manifest.get('event_count')} events, file has {count}"
        )
    if count == 0:
        return
    expected = {
        "first_sequence": first["sequence"],
        "last_sequence": last["sequence"],
        "last_hash": last["hash"],
    }
    if manifest.get("contiguous"):
        expected["first_prev_hash"] = first["prev_hash"]
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise VerificationFailed(line, f"manifest {key} {manifest.get(key)!r} != {value!r}")
    checkpoint = manifest["checkpoint"]
    if checkpoint["sequence"] < last["sequence"]:
        raise VerificationFailed(line, "the checkpoint predates the last exported event")
    if checkpoint["sequence"] == last["sequence"] and checkpoint["head_hash"] != last["hash"]:
        raise VerificationFailed(line, "the last event differs from the signed checkpoint")


def verify_lines(lines: Any, pinned_keys: list[str] | None = None) -> Outcome:
    iterator = iter(lines)
    try:
        manifest = json.loads(next(iterator))
    except (StopIteration, json.JSONDecodeError) as exc:
        raise VerificationFailed(1, "first line must be the JSON manifest") from exc
    try:
        check_manifest(manifest, pinned_keys or [])
        heads = _heads_by_sequence(manifest)
    except (KeyError, TypeError, AttributeError) as exc:
        raise VerificationFailed(1, f"manifest is incomplete ({exc})") from exc
    contiguous = bool(manifest.get("contiguous"))
    first = previous = None
    count = 0
    number = 1
    for number, text in enumerate(iterator, start=2):
        if not text.strip():
            continue
        try:
            event = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VerificationFailed(number, "not valid JSON") from exc
        if not isinstance(event, dict):
            raise VerificationFailed(number, "an event must be a JSON object")
        _check_event(number, event, previous, contiguous)
        if heads.get(event["sequence"], {event["hash"]}) != {event["hash"]}:
            raise VerificationFailed(
                number, f"event #{event['sequence']} differs from a signed checkpoint"
            )
        if first is None:
            first = event
        previous = event
        count += 1
    _check_ends(manifest, count, first, previous, number)
    return Outcome(
        count,
        first["sequence"] if first else None,
        previous["sequence"] if previous else None,
        previous["hash"] if previous else None,
        manifest.get("key_id", ""),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify", description="Verify a Warden audit JSONL export offline."
    )
    parser.add_argument("export", help="path to the .jsonl export")
    parser.add_argument(
        "--public-key",
        action="append",
        help="a control plane Ed25519 public key (base64); repeat it for each key of a rotation",
    )
    args = parser.parse_args(argv)
    try:
        with open(args.export, encoding="utf-8") as handle:
            outcome = verify_lines(handle, args.public_key)
    except OSError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except VerificationFailed as exc:
        print(f"FAILED: {exc}")
        return 1
    span = f"#{outcome.first_sequence}..#{outcome.last_sequence}" if outcome.events else "no events"
    print(
        f"OK: {outcome.events} events ({span}), hashes and links intact, manifest and checkpoint "
        f"signatures valid (key {outcome.key_id}), last hash {outcome.last_hash}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
