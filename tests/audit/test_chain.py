"""The chain: gap-free, hash-linked, and any tampering is found at the first broken link."""

from __future__ import annotations

import itertools

import django.db.utils
import psycopg
import pytest
from django.db import connection, transaction

from audit.hashing import GENESIS_HASH, canonical_time, event_hash
from audit.models import AppendOnlyError, AuditCheckpoint, AuditEvent
from audit.services import checkpoint_create
from audit.verification import chain_walk, checkpoint_signature_valid
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db
COLUMNS = (
    "id, sequence, occurred_at, recorded_at, actor, actor_kind, action, target_type, target_id, "
    "target_repr, datasource_name, decision, details, source_address, prev_hash, hash"
)


def test_events_form_a_gap_free_chain_from_genesis(record_events, admin):
    events = record_events(5, actor=admin)

    stored = list(AuditEvent.objects.order_by("sequence"))
    assert [event.sequence for event in stored] == [1, 2, 3, 4, 5]
    assert stored[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert [event.id for event in events] == [event.id for event in stored]


def test_an_untouched_chain_verifies(record_events):
    record_events(20)

    report = chain_walk()

    assert report.ok, report.summary()
    assert report.checked == 20
    assert (report.first_sequence, report.last_sequence) == (1, 20)


def test_an_edited_event_is_found_with_its_id_and_sequence(record_events):
    events = record_events(10)
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 4")

    report = chain_walk()

    assert not report.ok
    assert report.kind == "edited"
    assert report.broken_sequence == 4
    assert report.broken_event_id == str(events[3].id)


def test_a_deleted_event_is_found_at_the_gap(record_events):
    events = record_events(10)
    tamper("DELETE FROM audit_auditevent WHERE sequence = 6")

    report = chain_walk()

    assert not report.ok
    assert report.kind == "deleted"
    assert report.broken_sequence == 7
    assert report.broken_event_id == str(events[6].id)


def test_reordered_events_are_found(record_events):
    events = record_events(10)
    tamper("UPDATE audit_auditevent SET sequence = 1000003 WHERE sequence = 3")
    tamper("UPDATE audit_auditevent SET sequence = 3 WHERE sequence = 5")
    tamper("UPDATE audit_auditevent SET sequence = 5 WHERE sequence = 1000003")

    report = chain_walk()

    assert not report.ok
    assert report.kind == "reordered"
    assert report.broken_sequence == 3
    assert report.broken_event_id == str(events[4].id)


def test_an_inserted_event_is_found(record_events):
    events = record_events(5)
    forged = events[2]
    tamper("UPDATE audit_auditevent SET sequence = sequence + 1000 WHERE sequence >= 3")
    tamper("UPDATE audit_auditevent SET sequence = sequence - 999 WHERE sequence >= 1003")
    # A copy of event #3 (valid on its own) slipped in at #3, everything after moved down.
    tamper(
        f"INSERT INTO audit_auditevent ({COLUMNS}) SELECT gen_random_uuid(), 3, occurred_at, "
        "recorded_at, actor, actor_kind, action, target_type, target_id, target_repr, "
        "datasource_name, decision, details, source_address, prev_hash, hash "
        "FROM audit_auditevent WHERE id = %s",
        [str(forged.id)],
    )

    report = chain_walk()

    assert not report.ok
    assert report.broken_sequence == 3


def test_a_forged_event_appended_with_a_wrong_link_is_reported_as_inserted(record_events):
    record_events(3)
    forged = {
        "id": "0b0e1f0c-0000-4000-8000-000000000001",
        "sequence": 4,
        "occurred_at": "2026-11-24T00:00:00.000000Z",
        "recorded_at": "2026-11-24T00:00:00.000000Z",
        "actor": "mallory",
        "actor_kind": "user",
        "action": "tag.removed",
        "target_type": "",
        "target_id": "",
        "target_repr": "",
        "datasource_name": "",
        "decision": "",
        "details": {},
        "source_address": "",
        "prev_hash": "f" * 64,
    }
    forged_hash = event_hash(forged)
    tamper(
        f"INSERT INTO audit_auditevent ({COLUMNS}) VALUES "
        "(%s, 4, %s, %s, 'mallory', 'user', 'tag.removed', '', '', '', '', '', '{}', '', %s, %s)",
        [forged["id"], forged["occurred_at"], forged["recorded_at"], "f" * 64, forged_hash],
    )

    report = chain_walk()

    assert (report.ok, report.kind, report.broken_sequence) == (False, "inserted", 4)
    assert report.broken_event_id == forged["id"]


def test_removing_the_newest_events_is_caught_by_a_signed_checkpoint(record_events):
    record_events(5)
    checkpoint_create(kind=AuditCheckpoint.Kind.SCHEDULED)
    tamper("DELETE FROM audit_auditevent WHERE sequence >= 4")

    report = chain_walk()

    assert not report.ok
    assert report.kind == "deleted"
    assert "checkpoint" in report.problem


def test_a_rewritten_chain_differs_from_the_signed_checkpoint(record_events):
    record_events(3)
    checkpoint = checkpoint_create(kind=AuditCheckpoint.Kind.SCHEDULED)
    # A full rewrite (every hash recomputed) passes the hash checks; the signature does not.
    rows = list(AuditEvent.objects.order_by("sequence"))
    prev = GENESIS_HASH
    for event in rows:
        content = {
            "id": str(event.id),
            "sequence": event.sequence,
            "occurred_at": canonical_time(event.occurred_at),
            "recorded_at": canonical_time(event.recorded_at),
            "actor": "mallory",
            "actor_kind": event.actor_kind,
            "action": event.action,
            "target_type": "",
            "target_id": "",
            "target_repr": "",
            "datasource_name": "",
            "decision": "",
            "details": event.details,
            "source_address": "",
            "prev_hash": prev,
        }
        prev = event_hash(content)
        tamper(
            "UPDATE audit_auditevent SET actor = 'mallory', prev_hash = %s, hash = %s "
            "WHERE sequence = %s",
            [content["prev_hash"], prev, event.sequence],
        )

    report = chain_walk()

    assert not report.ok
    assert report.kind == "checkpoint_mismatch"
    assert report.broken_sequence == checkpoint.sequence


def test_checkpoints_are_signed_with_the_control_plane_key(record_events):
    from governance import crypto

    record_events(2)

    checkpoint = checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL)

    assert checkpoint.sequence == 2
    assert checkpoint.head_hash == AuditEvent.objects.get(sequence=2).hash
    assert checkpoint.public_key == crypto.public_key_b64()
    assert checkpoint.key_id == crypto.signing_key_id()
    assert checkpoint_signature_valid(checkpoint)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET actor = 'mallory'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_the_database_refuses_to_change_or_remove_events(record_events, statement):
    record_events(2)

    with (
        pytest.raises(django.db.utils.DatabaseError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)

    assert isinstance(caught.value.__cause__, psycopg.errors.InsufficientPrivilege)
    assert "append-only" in str(caught.value)


def test_the_database_refuses_to_change_checkpoints(record_events):
    record_events(1)
    checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL)

    with (
        pytest.raises(django.db.utils.DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE audit_auditcheckpoint SET head_hash = 'x'")


def test_the_application_refuses_to_change_or_remove_events(record_events):
    event = record_events(1)[0]
    stored = AuditEvent.objects.get(pk=event.pk)

    with pytest.raises(AppendOnlyError):
        stored.save()
    with pytest.raises(AppendOnlyError):
        stored.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.create(actor="x", actor_kind="user", action="x", sequence=99)
    assert AuditEvent.objects.get(pk=event.pk).actor == event.actor


def test_verification_can_cover_a_range_of_sequences(record_events):
    record_events(10)
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 9")

    assert chain_walk(from_sequence=3, to_sequence=8).ok
    report = chain_walk(from_sequence=3)
    assert (report.ok, report.broken_sequence) == (False, 9)


def test_an_altered_checkpoint_fails_verification(record_events):
    record_events(3)
    checkpoint = checkpoint_create(kind=AuditCheckpoint.Kind.SCHEDULED)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditcheckpoint SET sequence = 2 WHERE id = %s", [checkpoint.pk]
        )
        cursor.execute("ALTER TABLE audit_auditcheckpoint ENABLE TRIGGER USER")

    report = chain_walk()

    assert (report.ok, report.kind) == (False, "bad_checkpoint")
    assert f"checkpoint {checkpoint.pk} at #2: bad signature" in report.problem
