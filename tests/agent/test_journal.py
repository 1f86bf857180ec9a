"""The audit write-ahead journal (agent/journal.py): a SIGKILLed agent, or worker, loses no
audit event and sends none twice under two ids; the journal's files come and go with the
shipper's batches.  The PostgreSQL agent against Warden's real control plane is in
tests/integration/test_agent_journal.py; the MySQL agent in tests/agent_mysql."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.audit import AuditShipper, expand_batch
from agent.controlplane import ControlPlaneClient
from agent.journal import FD, MARK, TORN, recover
from agent.workers import adopt_orphan_journals
from tests.agent.conftest import wait_for
from tests.agent.disks import fill
from tests.agent.worker_clients import WORKER_ARGS, connections_on_each_worker, worker_pids

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


def _records_of(state: Path, *texts: str) -> list[bytes]:
    """The journal record of each statement, recorded one at a time."""
    shipper = _shipper(state)
    assert shipper.journal is not None
    records: list[bytes] = []
    for text in texts:
        _record(shipper, text)
        records.append(shipper.journal.path.read_bytes()[sum(map(len, records)) :])
    return records


def _spooled_statements(spool: Path) -> list[str]:
    return [
        event["statement"]
        for line in spool.read_text().splitlines()
        for event in expand_batch(json.loads(line))
    ]


def test_a_record_cut_short_anywhere_is_dropped_whole(tmp_path: Path) -> None:
    whole, second = _records_of(tmp_path, "whole", "cut short")
    for cut in range(1, len(second)):
        path = tmp_path / f"cut-{cut}.bin"
        path.write_bytes(whole + second[:cut])
        spool = tmp_path / f"spool-{cut}.jsonl"
        assert recover([path], spool) == 1, cut
        assert [e["statement"] for e in expand_batch(json.loads(spool.read_text()))] == ["whole"]


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_a_write_the_full_disk_cut_short_is_cut_off_and_later_records_recover(
    small_disk: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import journal as journal_module

    if not native:
        monkeypatch.setattr(journal_module, "_native_append", None)
    shipper = _shipper(small_disk)
    for n in range(3):
        _record(shipper, f"before {n}")
    assert shipper.journal is not None
    path = shipper.journal.path
    whole = path.read_bytes()
    filler = fill(small_disk)
    # Its record fills the journal's last page (a short write), then finds the disk full.
    with pytest.raises(OSError) as failed:
        _record(shipper, "x" * 9000)
    assert failed.value.errno == errno.ENOSPC
    assert path.read_bytes() == whole  # the part that went in is cut off again
    assert shipper.journal.state[MARK] == 3 and len(shipper.queued) == 4  # queued, not journaled
    filler.unlink()
    _record(shipper, "after 0")  # journals the failed statement's event too
    _record(shipper, "after 1")

    restarted = _shipper(small_disk)
    assert restarted.recover_journal() == 6
    assert _spooled_statements(restarted.spool_path) == [
        "before 0",
        "before 1",
        "before 2",
        "x" * 9000,
        "after 0",
        "after 1",
    ]


def test_recovery_skips_a_torn_record_between_whole_ones_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, torn, third = _records_of(tmp_path, "first", "torn", "third")
    for cut in range(1, len(torn)):  # what an older agent's failed write left
        path = tmp_path / f"torn-{cut}.bin"
        path.write_bytes(first + torn[:cut] + third + torn[:cut])
        spool = tmp_path / f"spool-{cut}.jsonl"
        caplog.clear()
        tracemalloc.start()
        with caplog.at_level(logging.WARNING, logger="agent.journal"):
            assert recover([path], spool) == 2, cut
        # A torn count can claim 671 M items (5 GB): nothing allocates what is not there.
        assert tracemalloc.get_traced_memory()[1] < 1 << 20, cut
        tracemalloc.stop()
        assert _spooled_statements(spool) == ["first", "third"], cut
        reports = [r.getMessage() for r in caplog.records]
        assert len(reports) == 2 and f"{cut} bytes at offset {len(first)}" in reports[0], reports
        assert "the last ones" in reports[1]


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_two_writers_on_one_journal_file_both_keep_every_record(
    tmp_path: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old worker still draining beside its successor writes the same file: appends (not
    writes at each one's own offset) keep both writers' records whole."""
    from agent import journal as journal_module

    if not native:
        monkeypatch.setattr(journal_module, "_native_append", None)
    old, new = _shipper(tmp_path), _shipper(tmp_path)
    assert old.journal is not None and new.journal is not None
    assert old.journal.path == new.journal.path
    for n in range(5):
        _record(old, f"old {n}")
        _record(new, f"new {n}")

    restarted = _shipper(tmp_path)
    assert restarted.recover_journal() == 10
    assert sorted(_spooled_statements(restarted.spool_path)) == sorted(
        [f"old {n}" for n in range(5)] + [f"new {n}" for n in range(5)]
    )


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_torn_bytes_are_cut_off_before_the_next_record_goes_in(
    tmp_path: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short native write leaves its size in state[TORN]; whichever writer appends next
    cuts those bytes off first, so a later cut never takes a whole record with it."""
    from agent import journal as journal_module

    if not native:
        monkeypatch.setattr(journal_module, "_native_append", None)
    shipper = _shipper(tmp_path)
    _record(shipper, "first")
    journal = shipper.journal
    assert journal is not None
    whole = journal.path.read_bytes()
    os.write(journal.state[FD], b"torn!")  # what a short write left at the end
    journal.state[TORN] = 5
    _record(shipper, "second")
    assert journal.state[TORN] == 0
    data = journal.path.read_bytes()
    assert data.startswith(whole) and b"torn!" not in data
    restarted = _shipper(tmp_path)
    assert restarted.recover_journal() == 2
    assert _spooled_statements(restarted.spool_path) == ["first", "second"]
