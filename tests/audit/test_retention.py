"""Retention: archive, then prune through a signed checkpoint; the rest still verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.models import AuditCheckpoint, AuditEvent, AuditEventTag
from audit.schedule import AUDIT_BEAT_SCHEDULE
from audit.services import audit_prune, event_record
from audit.tasks import checkpoint_task, monthly_report_task, prune_task
from audit.verification import chain_walk
from config.errors import StateConflict
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _age(sequences: tuple[int, int], days: int) -> None:
    moment = timezone.now() - timedelta(days=days)
    tamper(
        "UPDATE audit_auditevent SET recorded_at = %s, occurred_at = %s "
        "WHERE sequence BETWEEN %s AND %s",
        [moment, moment, *sequences],
    )


@pytest.fixture
def aged_chain(admin):
    """Ten events, the first six recorded 100 days ago (hashes re-chained to stay valid)."""
    for index in range(10):
        event_record(actor=admin, action="tag.added", details={"i": index, "tag": "PII.Email"})
    _age((1, 6), 100)
    _rehash_all()


def _rehash_all() -> None:
    from audit.hashing import GENESIS_HASH, event_hash
    from audit.selectors import event_hashed_content

    prev = GENESIS_HASH
    for event in AuditEvent.objects.order_by("sequence"):
        content = {**event_hashed_content(event), "prev_hash": prev}
        prev = event_hash(content)
        tamper(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE sequence = %s",
            [content["prev_hash"], prev, event.sequence],
        )


def test_retention_zero_keeps_everything(aged_chain, settings):
    settings.WARDEN_AUDIT_RETENTION_DAYS = 0

    assert audit_prune() is None
    assert prune_task() == 0
    assert AuditEvent.objects.count() == 10


def test_pruning_archives_then_removes_old_events_and_the_chain_still_verifies(
    aged_chain, tmp_path, settings
):
    settings.WARDEN_AUDIT_RETENTION_DAYS = 30
    settings.WARDEN_AUDIT_ARCHIVE_DIR = tmp_path
    pruned_head = AuditEvent.objects.get(sequence=6).hash

    result = audit_prune()

    assert (result.through_sequence, result.events_pruned) == (6, 6)
    assert not AuditEvent.objects.filter(sequence__lte=6).exists()
    assert (result.checkpoint.kind, result.checkpoint.sequence) == ("prune", 6)
    assert result.checkpoint.head_hash == pruned_head
    record = AuditEvent.objects.get(action="audit.pruned")
    assert record.details["through_sequence"] == 6
    assert record.details["archive"] == result.archive.name
    report = chain_walk()
    assert report.ok, report.summary()
    assert report.started_from == "prune checkpoint #6"
    archive = result.archive.read_text().splitlines()
    assert json.loads(archive[0])["last_sequence"] == 6
    assert len(archive) == 7
    outcome = subprocess.run(
        [sys.executable, "-m", "audit.verify", str(result.archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert outcome.returncode == 0, outcome.stdout


def test_pruning_removes_the_pruned_events_from_the_tag_index(aged_chain, tmp_path):
    audit_prune(retention_days=30, archive_dir=tmp_path)

    kept = AuditEventTag.objects.filter(tag="PII.Email").values_list("sequence", flat=True)
    assert sorted(kept) == [7, 8, 9, 10]


def test_pruning_leaves_the_trigger_on(aged_chain, tmp_path):
    audit_prune(retention_days=30, archive_dir=tmp_path)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_event_no_update_delete'"
        )
        assert cursor.fetchone()[0] == "O"


def test_pruning_refuses_a_chain_that_does_not_verify(aged_chain, tmp_path):
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 3")

    with pytest.raises(StateConflict, match="does not verify"):
        audit_prune(retention_days=30, archive_dir=tmp_path)
    assert AuditEvent.objects.filter(sequence=3).exists()


def test_the_prune_command_refuses_a_chain_that_does_not_verify_with_a_message(
    aged_chain, tmp_path, settings
):
    settings.WARDEN_AUDIT_ARCHIVE_DIR = str(tmp_path)
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 3")

    with pytest.raises(CommandError, match="Refusing to prune: the chain does not verify"):
        call_command("audit_prune", "--days", "30")
    assert AuditEvent.objects.filter(sequence=3).exists()
    assert list(tmp_path.iterdir()) == []


def test_new_events_continue_the_chain_after_pruning(aged_chain, tmp_path, admin):
    audit_prune(retention_days=30, archive_dir=tmp_path)

    event = event_record(actor=admin, action="tag.removed", details={})

    # 1-10 the events, 11 audit.exported (the archive), 12 audit.pruned.
    assert event.sequence == 13
    assert event.prev_hash == AuditEvent.objects.get(action="audit.pruned").hash
    assert chain_walk().ok


def test_the_hourly_task_signs_a_checkpoint(aged_chain):
    checkpoint = AuditCheckpoint.objects.get(pk=checkpoint_task())

    assert (checkpoint.kind, checkpoint.sequence) == ("scheduled", 10)


def test_the_monthly_task_writes_the_evidence_pack(admin, settings, tmp_path):
    settings.WARDEN_AUDIT_REPORT_DIR = tmp_path
    event_record(actor=admin, action="policy.created", details={})

    paths = monthly_report_task(timezone.now().date().isoformat())

    month = timezone.now().date().strftime("%Y-%m")
    assert sorted(Path(path).name for path in paths) == [
        f"warden-audit-{month}.{ext}" for ext in ("csv", "json", "jsonl", "pdf")
    ]
    assert all(Path(path).parent == tmp_path for path in paths)


def test_the_beat_schedule_names_registered_tasks():
    from celery import current_app

    import audit.tasks  # noqa: F401

    assert {entry["task"] for entry in AUDIT_BEAT_SCHEDULE.values()} <= set(current_app.tasks)
    assert AUDIT_BEAT_SCHEDULE["audit-checkpoint-hourly"]["schedule"].minute == {0}


def test_the_verify_command_reports_ok_and_exits_1_on_a_broken_chain(admin, capsys):
    for _ in range(4):
        event_record(actor=admin, action="tag.added", details={})
    call_command("audit_verify")
    assert "OK: 4 events" in capsys.readouterr().out

    call_command("audit_verify", "--from", "2", "--to", "3")
    assert "OK: 2 events (#2..#3)" in capsys.readouterr().out

    tamper("UPDATE audit_auditevent SET details = '{\"x\":1}' WHERE sequence = 3")
    with pytest.raises(SystemExit) as exited:
        call_command("audit_verify", "--from", date.today().isoformat())
    assert exited.value.code == 1
    assert "BROKEN (edited) at event #3" in capsys.readouterr().err
