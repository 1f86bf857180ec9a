"""A full disk under the audit spool (a real, filled tmpfs as the state directory): a spool
append the disk cuts short is cut off again, so no partial line is left to be sent first at
every later replay; the batches stay in memory (and the sealed journal on disk) until they
are delivered or spooled whole.  A spool line that will not parse (left by an older agent)
is set aside to the ``.bad`` file beside the spool instead of holding back every batch
behind it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent.audit import AuditShipper, encode_batch
from agent.controlplane import ControlPlaneClient
from agent.journal import FD, append_lines, recover
from agent.workers import adopt_orphan_spools
from tests.agent.disks import fill


def _delivered(plane: Any) -> list[str]:
    with plane.lock:
        return sorted(event["statement"].split(" ")[0] for event in plane.events.values())


def _shipper(plane: Any, state: Path) -> AuditShipper:
    return AuditShipper(ControlPlaneClient(plane.url, "agent-token"), state)


def _leave_room(disk: Path, room: int) -> Path:
    """Fill ``disk``, then give back ``room`` bytes: less than the next append needs."""
    filler = fill(disk)
    os.truncate(filler, filler.stat().st_size - room)
    return filler


def test_a_spool_append_the_full_disk_cuts_short_is_cut_off_and_delivered_later(
    small_disk: Path, control_plane: Any
) -> None:
    async def scenario() -> None:
        shipper = _shipper(control_plane, small_disk)
        journal = shipper.journal
        assert journal is not None
        for n in range(3):  # one batch of about 18 KB
            shipper.record_statement(f'"statement":"ev{n} ' + "x" * 6000 + '"', 1, 0.5, False)
        control_plane.down = True
        filler = _leave_room(small_disk, 8192)
        with pytest.raises(OSError, match="No space left"):
            await shipper.flush()
        # Nothing of the batch stays in the spool; it waits in memory, its journal kept.
        assert shipper.spool_path.stat().st_size == 0
        assert len(shipper.pending) == 1 and journal.sealed.exists()
        assert shipper.spooled_count() == 0
        filler.unlink()
        control_plane.down = False
        await shipper.flush()
        assert shipper.pending == [] and not journal.sealed.exists()
        assert not shipper.spool_path.exists()
        await shipper.close()

    asyncio.run(scenario())
    assert _delivered(control_plane) == ["ev0", "ev1", "ev2"]


def test_an_agent_on_a_nearly_full_disk_delivers_every_statement_once_there_is_room(
    agent_factory: Any, control_plane: Any, small_disk: Path
) -> None:
    agent = agent_factory(state_dir=small_disk / "state")
    agent.agent.audit.flush_interval = 3600  # flushed by the test only (after this timer)
    time.sleep(0.5)
    with agent.connect() as conn:
        control_plane.down = True  # after the login: token checks need it
        columns = ", ".join(f"1 AS c{i}" for i in range(800))  # a long statement (~9 KB)
        for n in range(3):
            conn.execute(f"SELECT {columns}, 1 AS spool_marker_{n}").fetchall()
    filler = _leave_room(small_disk, 8192)
    with pytest.raises(OSError, match="No space left"):
        agent.flush_audit()
    assert (small_disk / "state" / "audit-spool.jsonl").stat().st_size == 0
    filler.unlink()
    control_plane.down = False
    agent.flush_audit()
    with control_plane.lock:
        texts = [e["statement"] for e in control_plane.events.values()]
    assert sorted(t.split("spool_marker_")[1][0] for t in texts if "spool_marker" in t) == [
        "0",
        "1",
        "2",
    ]


def test_the_spool_after_a_cut_off_append_takes_the_next_batches_whole(
    small_disk: Path, control_plane: Any
) -> None:
    """Batches spooled after a cut-off append (the outage goes on) replay line by line."""

    async def scenario() -> None:
        shipper = _shipper(control_plane, small_disk)
        shipper.record_statement('"statement":"small"', 1, 0.5, False)
        control_plane.down = True
        await shipper.flush()  # spooled whole: room enough
        shipper.record_statement('"statement":"big ' + "x" * 20000 + '"', 1, 0.5, False)
        filler = _leave_room(small_disk, 8192)
        with pytest.raises(OSError):
            await shipper.flush()
        filler.unlink()
        await shipper.flush()  # still down: the big batch goes to the spool, behind small
        lines = shipper.spool_path.read_text().splitlines()
        assert [json.loads(line)["statements"][0]["statement"][:5] for line in lines] == [
            "small",
            "big x",
        ]
        control_plane.down = False
        await shipper.flush()
        await shipper.close()

    asyncio.run(scenario())
    assert _delivered(control_plane) == ["big", "small"]


def test_a_spool_line_that_will_not_parse_is_set_aside_and_the_rest_delivered(
    tmp_path: Path, control_plane: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """As an older agent left it: a batch cut short on a full disk, and the next batch
    appended right after it on the same line, then whole batches and legacy event lines."""
    prefix = "0" * 8 + "-0000-4000-8000-"
    first = encode_batch(prefix, 0, [('"statement":"first"', 1.0, 1, 0.5, False, 0)])
    torn = encode_batch(
        prefix, 1, [('"statement":"torn ' + "x" * 500 + '"', 1.0, 1, 0.5, False, 0)]
    )
    merged = encode_batch(prefix, 2, [('"statement":"merged"', 1.0, 1, 0.5, False, 0)])
    after = encode_batch(prefix, 3, [('"statement":"after"', 1.0, 1, 0.5, False, 0)])
    legacy = [
        json.dumps(
            {"id": f"{prefix}{seq:012x}", "time": "2026-01-01T00:00:00+00:00", "statement": text}
        )
        for seq, text in [(10, "legacy1"), (11, "legacy2")]
    ]
    broken_legacy = legacy[0][:30]
    spool = tmp_path / "audit-spool.jsonl"
    spool.write_text(
        "\n".join([first, torn[:200] + merged, after, legacy[0], broken_legacy, legacy[1]]) + "\n"
    )

    async def scenario() -> None:
        shipper = _shipper(control_plane, tmp_path)
        assert shipper.spooled_count() == 4  # the metric still counts the rest
        await shipper.flush()
        await shipper.flush()  # nothing is sent again
        await shipper.close()

    asyncio.run(scenario())
    # the batch glued onto the cut-short one is whole: delivered, only the cut start set aside
    assert _delivered(control_plane) == ["after", "first", "legacy1", "legacy2", "merged"]
    assert control_plane.duplicate_events == 0
    assert (tmp_path / "audit-spool.bad").read_text().splitlines() == [torn[:200], broken_legacy]
    assert not spool.exists() and not spool.with_suffix(".replaying").exists()
    assert "set aside to" in caplog.text


def test_a_line_that_will_not_parse_is_set_aside_during_an_outage_too(
    tmp_path: Path, control_plane: Any
) -> None:
    prefix = "0" * 8 + "-0000-4000-8000-"
    good = encode_batch(prefix, 0, [('"statement":"good"', 1.0, 1, 0.5, False, 0)])
    spool = tmp_path / "audit-spool.jsonl"
    spool.write_text(good[:40] + "\n" + good + "\n")
    control_plane.down = True

    async def scenario() -> None:
        shipper = _shipper(control_plane, tmp_path)
        await shipper.flush()
        assert spool.read_text() == good + "\n"  # the good line waits in the spool
        control_plane.down = False
        await shipper.flush()
        await shipper.close()

    asyncio.run(scenario())
    assert _delivered(control_plane) == ["good"]
    assert (tmp_path / "audit-spool.bad").read_text() == good[:40] + "\n"


def test_recovery_into_the_spool_on_a_full_disk_leaves_no_partial_line(
    small_disk: Path, control_plane: Any
) -> None:
    """A journal recovered at start on a nearly full disk: the spool append is cut off and
    the journal kept, so the next start recovers it whole."""

    async def killed() -> None:
        shipper = _shipper(control_plane, small_disk)
        for n in range(3):
            shipper.record_statement(f'"statement":"ev{n} ' + "x" * 6000 + '"', 1, 0.5, False)
        assert shipper.journal is not None
        os.close(shipper.journal.state[FD])  # as a SIGKILL leaves it: the journal on disk

    asyncio.run(killed())
    journal = small_disk / "audit-journal.bin"
    spool = small_disk / "audit-spool.jsonl"
    filler = _leave_room(small_disk, 8192)
    with pytest.raises(OSError):
        recover([journal], spool)
    assert spool.stat().st_size == 0 and journal.exists()
    filler.unlink()
    assert recover([journal], spool) == 3

    async def restarted() -> None:
        shipper = _shipper(control_plane, small_disk)
        await shipper.flush()
        await shipper.close()

    asyncio.run(restarted())
    assert _delivered(control_plane) == ["ev0", "ev1", "ev2"]


def test_worker_0_takes_over_former_spools_but_not_their_set_aside_lines(tmp_path: Path) -> None:
    (tmp_path / "audit-spool.worker-3.jsonl").write_text('{"a":1}\n')
    (tmp_path / "audit-spool.worker-3.bad").write_text('{"a":\n')
    spool = tmp_path / "audit-spool.jsonl"
    assert adopt_orphan_spools(tmp_path, 1, spool) == 1
    assert spool.read_text() == '{"a":1}\n'
    assert (tmp_path / "audit-spool.worker-3.bad").exists()


def test_append_lines_is_all_or_nothing(small_disk: Path) -> None:
    target = small_disk / "lines"
    append_lines(target, ["kept"])
    filler = _leave_room(small_disk, 4096)
    with pytest.raises(OSError, match="No space left"):
        append_lines(target, ["y" * 20000, "z"])
    assert target.read_text() == "kept\n"
    filler.unlink()


def test_an_agent_stopping_on_a_full_disk_keeps_its_journal_for_the_next_start(
    small_disk: Path, control_plane: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """At stop the control plane is away and the spool cannot take the batch: close()
    stops in order (it used to raise out of the server's stop) and leaves the sealed
    journal, which the next start recovers and delivers, every event once."""

    async def stopped_on_a_full_disk() -> None:
        shipper = _shipper(control_plane, small_disk)
        for n in range(3):
            shipper.record_statement(f'"statement":"ev{n} ' + "x" * 6000 + '"', 1, 0.5, False)
        control_plane.down = True
        filler = _leave_room(small_disk, 8192)
        await shipper.close()
        assert shipper.journal is not None and shipper.journal.sealed.exists()
        assert shipper.spool_path.stat().st_size == 0
        filler.unlink()

    asyncio.run(stopped_on_a_full_disk())
    assert "neither delivered nor spooled" in caplog.text
    control_plane.down = False

    async def started_again() -> None:
        shipper = _shipper(control_plane, small_disk)
        assert shipper.recover_journal() == 3
        await shipper.flush()
        await shipper.close()
        assert not list(small_disk.glob("audit-journal*"))

    asyncio.run(started_again())
    assert _delivered(control_plane) == ["ev0", "ev1", "ev2"]
