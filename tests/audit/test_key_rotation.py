"""The audit trail across a signing key rotation: checkpoints signed by the old key still
verify (online and offline) while its public half is trusted; a tampered one does not."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from audit.hashing import checkpoint_payload, event_hash, manifest_payload
from audit.models import AuditCheckpoint
from audit.services import checkpoint_create
from audit.verification import chain_walk
from governance import crypto

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = crypto.new_signing_key(), crypto.new_signing_key()


def public(private: str) -> str:
    return crypto.public_key_of(crypto.private_key_load(private, "test"))


@pytest.fixture
def use_keys(settings) -> Iterator[Callable[..., None]]:
    def configure(current: str, retired: tuple[str, ...] = ()) -> None:
        settings.SIGNING_KEY, settings.SIGNING_KEY_NEXT = current, ""
        settings.SIGNING_KEYS_RETIRED = list(retired)
        crypto.signing_keys_cache_clear()

    yield configure
    crypto.signing_keys_cache_clear()


@pytest.fixture
def rotated_trail(record_events, use_keys) -> tuple[AuditCheckpoint, AuditCheckpoint]:
    """Events and a checkpoint under the old key, then the same under the new one."""
    use_keys(OLD)
    record_events(3)
    before = checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL)
    use_keys(NEW, retired=(public(OLD),))
    record_events(3)
    after = checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL)
    return before, after


def test_the_chain_verifies_across_a_rotation_with_the_old_key_retired(rotated_trail):
    before, after = rotated_trail

    report = chain_walk()

    assert before.key_id == crypto.key_id_for(public(OLD)) != after.key_id
    assert report.ok, report.problem
    assert report.checkpoints_checked == 2


def test_a_checkpoint_under_a_key_nobody_trusts_fails_verification(rotated_trail, use_keys):
    before, _after = rotated_trail
    use_keys(NEW)  # the old key's public half was forgotten

    report = chain_walk()

    assert (report.ok, report.kind) == (False, "bad_checkpoint")
    assert f"checkpoint {before.pk} at #3: signed by key {before.key_id}" in report.problem
    assert "WARDEN_SIGNING_KEYS_RETIRED" in report.problem


def test_a_tampered_checkpoint_under_the_old_key_fails_verification(rotated_trail):
    before, _after = rotated_trail
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditcheckpoint SET head_hash = %s WHERE id = %s", ["0" * 64, before.pk]
        )
        cursor.execute("ALTER TABLE audit_auditcheckpoint ENABLE TRIGGER USER")

    report = chain_walk()

    assert (report.ok, report.kind) == (False, "bad_checkpoint")
    assert f"checkpoint {before.pk} at #3: bad signature" in report.problem


def _verify(path: Path, *keys: str) -> subprocess.CompletedProcess:
    pinned = [argument for key in keys for argument in ("--public-key", key)]
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", str(path), *pinned],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_offline_verifier_checks_an_export_across_a_rotation(rotated_trail, tmp_path):
    before, after = rotated_trail
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))
    manifest = json.loads(path.read_text().splitlines()[0])

    both = _verify(path, public(OLD), public(NEW))
    new_only = _verify(path, public(NEW))

    covered = [
        (checkpoint["sequence"], checkpoint["key_id"]) for checkpoint in manifest["checkpoints"]
    ]
    assert covered == [(3, before.key_id), (6, after.key_id)]
    assert both.returncode == 0 and both.stdout.startswith("OK: "), both.stdout + both.stderr
    assert new_only.returncode == 1
    assert f"checkpoint at #3 signed with key {before.key_id}, not a pinned" in new_only.stdout


def test_the_offline_verifier_refuses_an_export_whose_old_checkpoint_was_altered(
    rotated_trail, tmp_path
):
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))
    lines = path.read_text().splitlines()
    manifest = json.loads(lines[0])
    manifest["checkpoints"][0]["head_hash"] = "0" * 64
    lines[0] = json.dumps(manifest)
    path.write_text("\n".join(lines) + "\n")

    outcome = _verify(path, public(OLD), public(NEW))

    assert outcome.returncode == 1 and outcome.stdout.startswith("FAILED: line 1")


def _resign(document: dict, payload: bytes) -> None:
    document["signature"] = base64.b64encode(
        crypto.private_key_load(NEW, "test").sign(payload)
    ).decode()


def test_history_rewritten_by_a_holder_of_the_new_key_is_caught_by_the_old_keys_checkpoint(
    rotated_trail, tmp_path
):
    """Someone with the new key rewrites event #2, re-links and re-hashes everything after
    it and re-signs what the new key signed. Only the checkpoint the old key signed before
    the rotation still holds the true head at #3: the verifier must check it."""
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))
    manifest, *events = (json.loads(line) for line in path.read_text().splitlines())
    events[1]["actor"] = "mallory"
    for previous, event in zip([None, *events], events, strict=False):
        if previous is not None:
            event["prev_hash"] = previous["hash"]
        event["hash"] = event_hash(event)
    manifest["last_hash"] = events[-1]["hash"]
    for checkpoint in [manifest["checkpoint"], *manifest["checkpoints"]]:
        if checkpoint["public_key"] == public(NEW):
            checkpoint["head_hash"] = events[checkpoint["sequence"] - 1]["hash"]
            _resign(checkpoint, checkpoint_payload(checkpoint))
    _resign(manifest, manifest_payload(manifest))
    path.write_text("".join(json.dumps(line) + "\n" for line in [manifest, *events]))

    outcome = _verify(path, public(OLD), public(NEW))

    assert outcome.returncode == 1
    assert "event #3 differs from a signed checkpoint" in outcome.stdout
