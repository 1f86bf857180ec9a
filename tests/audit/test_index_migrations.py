"""Upgrades of the trail's indexes: an interrupted concurrent build can be run again, and
events the old release appended during an upgrade get their tag rows from one command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from audit.migration_operations import index_validity
from audit.models import AuditEventTag
from audit.services import events_append_count

INDEX = "audit_datasource_sequence_idx"  # built by 0010


def _validity() -> bool | None:
    return index_validity(connection, INDEX)


def _index_definition() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [INDEX])
        return cursor.fetchone()[0]


@pytest.fixture
def before_0010():
    call_command("migrate", "audit", "0009", verbosity=0)
    try:
        yield
    finally:
        call_command("migrate", "audit", verbosity=0)


def _interrupted_build() -> None:
    """What a failed CREATE INDEX CONCURRENTLY leaves: an INVALID index of that name (made to
    fail here by a UNIQUE index over two events of one datasource)."""
    event = {"actor": "ann", "action": "query.executed", "datasource_name": "shop"}
    events_append_count(entries=[{**event, "actor_kind": "user"}] * 2)
    with (
        pytest.raises(Exception, match="could not create unique index"),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON audit_auditevent (datasource_name)"
        )


@pytest.mark.django_db(transaction=True)  # CONCURRENTLY cannot run in a transaction
def test_migrate_again_after_an_interrupted_concurrent_build_replaces_the_invalid_index(
    before_0010,
):
    _interrupted_build()
    assert _validity() is False

    call_command("migrate", "audit", "0010", verbosity=0)

    assert _validity() is True
    assert "(datasource_name, sequence)" in _index_definition()
    assert "UNIQUE" not in _index_definition()


@pytest.mark.django_db(transaction=True)
def test_migrate_again_keeps_an_index_an_interrupted_run_finished(before_0010):
    with connection.cursor() as cursor:  # the run built the index, then died before recording
        cursor.execute(f"CREATE INDEX {INDEX} ON audit_auditevent (datasource_name, sequence)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_class WHERE relname = %s", [INDEX])
        built = cursor.fetchone()[0]

    call_command("migrate", "audit", "0010", verbosity=0)

    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_class WHERE relname = %s", [INDEX])
        assert cursor.fetchone()[0] == built
    assert _validity() is True


@pytest.mark.django_db
def test_the_tag_index_command_indexes_events_the_old_release_appended():
    read = {"actor": "ann", "action": "query.executed", "details": {"tags": ["PII.SSN"]}}
    events_append_count(entries=[{**read, "actor_kind": "user"}] * 5)
    first = AuditEventTag.objects.order_by("sequence").first().sequence
    with transaction.atomic():  # the old release's appends wrote no tag rows
        AuditEventTag.objects.filter(sequence__gte=first + 2).delete()
    out = StringIO()

    call_command("audit_tag_index", "--from-sequence", str(first + 1), stdout=out)
    call_command("audit_tag_index", stdout=out)  # a second run adds nothing

    assert sorted(AuditEventTag.objects.values_list("sequence", flat=True)) == list(
        range(first, first + 5)
    )
    assert out.getvalue().splitlines() == ["Indexed 3 event tags.", "Indexed 0 event tags."]


def test_the_tag_index_command_refuses_a_negative_start():
    with pytest.raises(Exception, match="--from-sequence must be 0 or more"):
        call_command("audit_tag_index", "--from-sequence", "-1")
