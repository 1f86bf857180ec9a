"""The audit write-ahead journal (agent/journal.py): a SIGKILLed agent, or worker, loses no
audit event and sends none twice under two ids; the journal's files come and go with the
shipper's batches.  The PostgreSQL agent against Warden's real control plane is in
tests/integration/test_agent_journal.py; the MySQL agent in tests/agent_mysql."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import psycopg

from agent.audit import AuditShipper, expand_batch
from agent.controlplane import ControlPlaneClient
from agent.journal import recover
from agent.workers import adopt_orphan_journals
from tests.agent.conftest import wait_for
from tests.agent.test_workers import WORKER_ARGS, connections_on_each_worker, worker_pids

NEVER_FLUSHES = ("--audit-flush-interval", "3600")


def _statements(plane: Any, needle: str) -> list[str]:
    with plane.lock:
        events = list(plane.events.values())
    return [e["statement"] for e in events if needle in e.get("statement", "")]


def _shipper(state: Path, url: str = "http://127.0.0.1:9") -> AuditShipper:
    return AuditShipper(ControlPlaneClient(url, "agent-token"), state)


def _record(shipper: AuditShipper, text: str) -> None:
    shipper.record_statement(f'"statement":"{text}"', 1, 0.5, False)


def test_a_killed_agent_delivers_every_statement_once_after_restart(
    agent_process_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    state = tmp_path / "killed"
    process = agent_process_factory(*NEVER_FLUSHES, state_dir=state)
    sent = []
    with psycopg.connect(process.dsn("alice"), autocommit=True) as conn:
        for n in range(30):
            sent.append(f"SELECT id AS kill_marker FROM orders WHERE id = {n}")
            conn.execute(sent[-1])
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=10)
    assert _statements(control_plane, "kill_marker") == []  # all of them in memory only
    assert (state / "audit-journal.bin").stat().st_size > 0

    restarted = agent_process_factory(state_dir=state)

    try:
        wait_for(lambda: len(_statements(control_plane, "kill_marker")) >= len(sent), timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"the restarted agent printed:\n{restarted.output()}") from exc
    # Audited as normalized text (constants are not logged): one event per statement.
    assert _statements(control_plane, "kill_marker") == [
        "SELECT id AS kill_marker FROM orders WHERE id = $1"
    ] * len(sent)
    assert control_plane.duplicate_events == 0


def test_each_killed_worker_replays_its_own_journal(
    agent_process_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    state = tmp_path / "workers"
    process = agent_process_factory(*WORKER_ARGS, *NEVER_FLUSHES, state_dir=state)
    sent = []
    for worker, conn in connections_on_each_worker(process).items():
        for n in range(10):
            sent.append(f"SELECT id AS worker_{worker}_marker FROM orders WHERE id = {n}")
            conn.execute(sent[-1])
        conn.close()
    assert sorted(p.name for p in state.glob("audit-journal*")) == [
        "audit-journal.bin",
        "audit-journal.worker-1.bin",
    ]
    assert _statements(control_plane, "_marker") == []  # all of them in memory only
    for pid in worker_pids(process):
        os.kill(pid, signal.SIGKILL)

    # The supervisor starts both again; each replays its own journal at once.
    wait_for(lambda: len(_statements(control_plane, "_marker")) >= len(sent), timeout=60)
    assert sorted(_statements(control_plane, "_marker")) == sorted(
        f"SELECT id AS worker_{worker}_marker FROM orders WHERE id = $1"
        for worker in (0, 1)
        for _ in range(10)
    )
    assert control_plane.duplicate_events == 0
    wait_for(lambda: not list(state.glob("audit-journal*.sealed")), timeout=10)


def test_the_journal_is_released_once_its_batch_is_delivered(
    control_plane: Any, tmp_path: Path
) -> None:
    async def scenario() -> None:
        shipper = _shipper(tmp_path, control_plane.url)
        _record(shipper, "one")
        journal = shipper.journal
        assert journal is not None and journal.path.stat().st_size > 0
        shipper._encode_queued()  # the flush takes the queue: the file is sealed
        assert not journal.path.exists() and journal.sealed.exists()
        _record(shipper, "two")  # recorded while the batch is on its way: a new file
        await shipper._deliver()
        assert journal.path.exists() and journal.sealed.exists()  # not released yet
        await shipper.flush()  # delivered: sealed released (and "two" sealed, released)
        assert not journal.path.exists() and not journal.sealed.exists()
        _record(shipper, "three")
        await shipper.close()
        assert not journal.path.exists() and not journal.sealed.exists()

    asyncio.run(scenario())
    assert sorted(_statements(control_plane, "")) == ["one", "three", "two"]


def test_a_failed_delivery_spools_the_batch_and_releases_the_journal(tmp_path: Path) -> None:
    shipper = _shipper(tmp_path)  # nothing listens on port 9
    _record(shipper, "spooled")
    asyncio.run(shipper.flush())
    assert shipper.spooled_count() == 1  # on disk, fsynced: the journal is not needed
    assert not list(tmp_path.glob("audit-journal*"))


def test_recovery_keeps_the_ids_the_shipper_gave_and_drops_a_record_cut_short(
    tmp_path: Path,
) -> None:
    shipper = _shipper(tmp_path)
    for n in range(3):
        _record(shipper, f"taken {n}")
    shipper._encode_queued()  # sealed: the ids the delivered batch carries
    delivered = [e["id"] for e in expand_batch(json.loads(shipper.pending[0]))]
    for n in range(2):
        _record(shipper, f"after {n}")
    assert shipper.journal is not None
    active = shipper.journal.path
    record = active.read_bytes()
    with open(active, "ab") as journal:  # the kill cut a last write short
        journal.write(record[: len(record) // 4])

    restarted = _shipper(tmp_path)
    assert restarted.recover_journal() == 5
    spooled = [
        event
        for line in restarted.spool_path.read_text().splitlines()
        for event in expand_batch(json.loads(line))
    ]
    assert [e["statement"] for e in spooled] == [
        "taken 0",
        "taken 1",
        "taken 2",
        "after 0",
        "after 1",
    ]
    assert [e["id"] for e in spooled[:3]] == delivered  # a replay is a duplicate, not new
    assert len(restarted.spool_path.read_text().splitlines()) == 1  # contiguous: one batch
    assert not active.exists() and not shipper.journal.sealed.exists()


def test_worker_zero_recovers_the_journals_of_workers_that_no_longer_exist(
    tmp_path: Path,
) -> None:
    for name in ("audit-journal.worker-1.bin", "audit-journal.worker-3.bin"):
        shipper = AuditShipper(
            ControlPlaneClient("http://127.0.0.1:9", "t"), tmp_path, journal_name=name
        )
        _record(shipper, name)
    shipper._encode_queued()  # worker 3's events sit in its sealed file
    own = tmp_path / "audit-spool.jsonl"
    assert adopt_orphan_journals(tmp_path, 2, own) == 1  # worker 1 still exists
    assert [e["statement"] for e in expand_batch(json.loads(own.read_text()))] == [
        "audit-journal.worker-3.bin"
    ]
    assert sorted(p.name for p in tmp_path.glob("audit-journal*")) == ["audit-journal.worker-1.bin"]
    assert recover([tmp_path / "absent.bin"], own) == 0


def test_without_the_journal_no_file_is_written(tmp_path: Path) -> None:
    shipper = AuditShipper(
        ControlPlaneClient("http://127.0.0.1:9", "t"), tmp_path, journal_name=None
    )
    _record(shipper, "memory only")
    assert shipper.journal is None and shipper.recover_journal() == 0
    assert list(tmp_path.iterdir()) == []


def test_a_record_cut_short_anywhere_is_dropped_whole(tmp_path: Path) -> None:
    shipper = _shipper(tmp_path)
    _record(shipper, "whole")
    assert shipper.journal is not None
    whole = shipper.journal.path.read_bytes()
    _record(shipper, "cut short")
    second = shipper.journal.path.read_bytes()[len(whole) :]
    for cut in range(1, len(second)):
        path = tmp_path / f"cut-{cut}.bin"
        path.write_bytes(whole + second[:cut])
        spool = tmp_path / f"spool-{cut}.jsonl"
        assert recover([path], spool) == 1, cut
        assert [e["statement"] for e in expand_batch(json.loads(spool.read_text()))] == ["whole"]
