"""A full disk under the audit journal (a real, filled tmpfs as the state directory): the
statement whose event cannot be journaled fails closed with a protocol error naming the rule
(53100, ``audit_journal``), its result withheld, and delivery to a reachable control plane
goes on: the flush takes every event journaled or of a statement that failed closed, and
leaves an event whose writer has not journaled it yet (its result not released) queued for
that writer.  The MySQL agent: tests/agent_mysql/test_mysql_journal_full_disk.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.audit import AuditShipper
from agent.controlplane import ControlPlaneClient
from agent.journal import MARK, AuditNotJournaled
from tests.agent.disks import fill


def _statements(plane: Any, needle: str) -> list[str]:
    with plane.lock:
        events = list(plane.events.values())
    return [e["statement"] for e in events if needle in e.get("statement", "")]


def _record(shipper: AuditShipper, text: str) -> None:
    shipper.record_statement(f'"statement":"{text}"', 1, 0.5, False)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_a_full_disk_fails_the_statement_with_53100_and_delivery_goes_on(
    agent_factory: Any, control_plane: Any, small_disk: Path, native: bool
) -> None:
    # Delivered only by the test's own flushes: the journal's records are read between them.
    agent = agent_factory(state_dir=small_disk / "state", native=native, audit_flush_interval=3600)
    stats = agent.agent.metrics.statements
    with agent.connect() as conn:
        for n in range(3):  # decided once, then (native) from the session's caches
            conn.execute(f"SELECT id AS full_marker FROM orders WHERE id = {n + 1}").fetchall()
        agent.flush_audit()  # the journal's file released: the next record needs a new page
        native_before = stats.native_statements
        filler = fill(small_disk)
        with pytest.raises(psycopg.errors.DiskFull, match="audit_journal") as refused:
            conn.execute("SELECT id AS full_marker FROM orders WHERE id = 4").fetchall()
        assert "result is withheld" in str(refused.value)
        assert conn.closed or conn.broken
    if native:
        assert stats.native_statements == native_before + 1  # the native writer's failure
    with agent.connect() as other, pytest.raises(psycopg.errors.DiskFull):
        other.execute("SELECT id AS full_marker FROM orders WHERE id = 5")
    agent.flush_audit()  # the disk is still full: delivery does not wait for it
    assert agent.agent.audit.queued == [] and agent.agent.audit.pending == []
    # The refused ones ran upstream: audited all the same.
    assert len(_statements(control_plane, "full_marker")) == 5
    filler.unlink()
    with agent.connect() as conn:  # room again: statements run and are journaled
        assert conn.execute("SELECT id AS full_marker FROM orders WHERE id = 6").fetchall()
        assert agent.agent.audit.journal.state[MARK] == 1
    agent.flush_audit()
    assert len(_statements(control_plane, "full_marker")) == 6


def test_a_flush_on_a_full_disk_leaves_an_event_its_writer_has_not_journaled(
    small_disk: Path, control_plane: Any
) -> None:
    """An event queued by a writer that has not caught up yet (its result not released) is
    not the flush's to take: taken unjournaled, the writer's catch_up would find nothing to
    write and let its result out while the event sits in memory.  It stays queued, and that
    writer's catch_up fails its statement closed."""

    async def scenario() -> None:
        shipper = AuditShipper(ControlPlaneClient(control_plane.url, "agent-token"), small_disk)
        journal = shipper.journal
        assert journal is not None
        _record(shipper, "journaled")
        filler = fill(small_disk)
        with pytest.raises(AuditNotJournaled, match="No space left on device"):
            _record(shipper, "failed closed " + "x" * 9000)  # its session ends: settled
        in_flight = '"statement":"in flight ' + "y" * 9000 + '"'
        shipper.queued.append((in_flight, 1.0, 1, 0.5, False, 0))
        await shipper.flush()
        assert [event[0] for event in shipper.queued] == [in_flight]
        with pytest.raises(AuditNotJournaled):  # its writer's catch_up: still no room
            journal.catch_up()
        await shipper.flush()  # now settled: taken
        assert shipper.queued == []
        filler.unlink()
        await shipper.close()

    asyncio.run(scenario())
    delivered = sorted(
        text.split(" x")[0].split(" y")[0] for text in _statements(control_plane, "")
    )
    assert delivered == ["failed closed", "in flight", "journaled"]


def test_a_sealed_journal_the_full_disk_cannot_grow_stops_no_delivery(
    small_disk: Path, control_plane: Any
) -> None:
    """A flush whose batch could be neither delivered nor spooled keeps the sealed file; the
    next flush cannot append the active file to it on a full disk: the file stays active
    and the batches go out all the same."""

    async def scenario() -> None:
        shipper = AuditShipper(ControlPlaneClient(control_plane.url, "agent-token"), small_disk)
        journal = shipper.journal
        assert journal is not None
        _record(shipper, "first")
        control_plane.down = True
        filler = fill(small_disk)
        with pytest.raises(OSError):  # not delivered, and the spool cannot take it
            await shipper.flush()
        assert journal.sealed.exists() and len(shipper.pending) == 1
        filler.unlink()
        _record(shipper, "second " + "x" * 9000)  # in a new active file, pages of its own
        filler = fill(small_disk)
        control_plane.down = False
        await shipper.flush()
        assert shipper.pending == [] and not journal.sealed.exists()
        filler.unlink()
        await shipper.close()

    asyncio.run(scenario())
    assert sorted(text[:6] for text in _statements(control_plane, "")) == ["first", "second"]
