"""The native path's audit journal records (agent/fastpath/journal.c): the bytes
``AuditJournal.catch_up`` would write (marshal version 2, compared over random events), and
the journal's guarantee kept on both data paths: every event is in the file before the
chunk holding its statement's result reaches the client, and a journal that cannot be
written ends the session before that result goes out."""

from __future__ import annotations

import marshal
import os
import random
from pathlib import Path
from typing import Any

import pytest

from agent import _fastpath
from agent.journal import FD, FIRST_SEQ, MARK, _records
from agent.postgres import codec
from agent.testing import MemoryTransport, detached_relays
from agent.verdicts import Identity
from tests.agent.disks import fill
from tests.agent.native_doubles import (
    FakeServer,
    feed,
    offline_postgres_agent,
    round_trip,
    split,
)

INTEGERS = [0, 1, -1, 2**15 - 1, 2**15, 2**30, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1]
INTEGERS += [2**45, -(2**45) - 7, 2**62, 2**63 - 1, -(2**63), 2**63, -(2**64), 2**100]
FLOATS = [0.0, -0.0, 1.5, 1e-300, 1.7e308, float("inf"), float("-inf"), float("nan")]
TEXTS = ["", "a", '"statement":"SELECT 1"', "é€😀", "\ud800 lone", "x" * 70_000]


def _atom(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(INTEGERS) if rng.random() < 0.5 else rng.randrange(-(10**6), 10**12)
    if kind == 1:
        return rng.choice(FLOATS) if rng.random() < 0.3 else rng.uniform(-1e12, 1e12)
    if kind == 2:
        return rng.choice(TEXTS) + "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(9))
    return [None, True, False][kind - 3]


def _event(rng: random.Random) -> Any:
    """Mostly a queued event's shape (agent.audit.QueuedEvent), sometimes another one."""
    if rng.random() < 0.8:  # an ASCII fragment half the time (the native writer's usual case)
        fragment = (
            _atom(rng)
            if rng.random() < 0.5
            else "".join(chr(rng.randrange(0, 128)) for _ in range(rng.randrange(300)))
        )
        rows = rng.choice([None, rng.randrange(99), rng.choice(INTEGERS), 1.5])
        sent = rng.randrange(10**7) if rng.random() < 0.8 else rng.choice(INTEGERS)
        return (fragment, rng.uniform(1e9, 2e9), rows, rng.random(), rng.random() < 0.1,
                sent)  # fmt: skip
    shape = rng.randrange(4)
    atoms = tuple(_atom(rng) for _ in range(rng.randrange(9)))
    return [atoms, list(atoms), {"a": 1}, (atoms, 1.0)][shape]


@pytest.mark.parametrize("seed", range(40))
def test_native_journal_records_are_the_bytes_marshal_writes(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        prefix = rng.choice(["3f9a0c12", "", "é-prefix", "\udcff"])
        first_seq = rng.choice([0, rng.randrange(2**31), 2**31, rng.randrange(2**47)])
        events = [_event(rng) for _ in range(rng.randrange(6))]
        record = (prefix, first_seq, events)
        assert _fastpath.journal_record(*record) == marshal.dumps(record, 2), record


@pytest.fixture
def journaling_agent(pg_database: str, tmp_path: Path) -> Any:
    return offline_postgres_agent(pg_database, tmp_path)


def _journaled(journal: Any) -> list[Any]:
    """The events the journal's active file holds (every record, in order)."""
    if not journal.path.exists():
        return []
    return [event for _prefix, _seq, events in _records(journal.path) for event in events]


class JournalCheckingTransport(MemoryTransport):
    """A client connection that, at every write, finds every event queued so far (since the
    shipper last took the queue) in the journal's file, under the ids the shipper gives."""

    def __init__(self, agent: Any) -> None:
        super().__init__()
        self.shipper = agent.audit
        self.checked = 0

    def write(self, data: bytes) -> None:
        journal = self.shipper.journal
        assert _journaled(journal) == self.shipper.queued, "a result went out before its event"
        if journal.path.exists():
            (first_prefix, first_seq, _events), *_ = _records(journal.path)
            assert (first_prefix, first_seq) == (journal.id_prefix, journal.state[FIRST_SEQ])
        self.checked += 1
        super().write(data)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
async def test_every_event_is_journaled_before_its_result_reaches_the_client(
    journaling_agent: Any, native: bool
) -> None:
    agent, table_oid = journaling_agent
    rng = random.Random(7)
    server = FakeServer(table_oid, random.Random(8))
    client, upstream = JournalCheckingTransport(agent), MemoryTransport()
    to_upstream, to_client = detached_relays(
        agent, Identity("alice", "user", frozenset()), client, upstream, native=native
    )
    journal = agent.audit.journal
    python_records = 0
    python_catch_up = journal.catch_up

    def counted_catch_up() -> None:  # the Python writer, wherever it is called from
        nonlocal python_records
        before = journal.state[MARK]
        python_catch_up()
        python_records += journal.state[MARK] != before

    journal.catch_up = counted_catch_up
    records = 0
    for trip in range(80):
        if trip % 25 == 24:  # the shipper takes the queue: sealed, a new file next
            records += len(_records(journal.path))
            agent.audit._encode_queued()
            assert journal.state[FD] == -1 and journal.sealed.exists()
        sent = len(upstream.data)
        for chunk in split(round_trip(rng), rng):
            await feed(to_upstream, chunk)
        for chunk in split(server.answer(bytes(upstream.data[sent:])), rng):
            await feed(to_client, chunk)
    records += len(_records(journal.path))
    assert client.checked > 80 and records > 60
    if native:  # the native path wrote most records itself, no Python frame
        assert records - python_records > 25, (records, python_records)
    else:
        assert python_records == records
    await agent.catalog.close()


def _nearly_full_journal(journal: Any, disk: Path) -> tuple[int, Path, bytes]:
    """A copy of the journal's file on ``disk``, with a record that leaves 40 bytes of its last
    page free, and the rest of the disk taken (by the returned filler): the next record
    goes in part-way, then finds the disk full."""
    records = journal.path.read_bytes()
    pad = marshal.dumps((journal.id_prefix, 0, [("", 1.0, 1, 1.0, False, 0)]), 2)
    pad_text = (-len(records) - len(pad) - 40) % 4096
    records += marshal.dumps((journal.id_prefix, 0, [("p" * pad_text, 1.0, 1, 1.0, False, 0)]), 2)
    path = disk / "journal.bin"
    path.write_bytes(records)
    filler = fill(disk)
    return os.open(path, os.O_WRONLY | os.O_APPEND), filler, records


@pytest.mark.parametrize("disk", ["/dev/full", "small disk"])
@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
async def test_a_journal_that_cannot_be_written_ends_the_session_before_the_result(
    journaling_agent: Any, native: bool, disk: str, small_disk: Path
) -> None:
    agent, table_oid = journaling_agent
    server = FakeServer(table_oid, random.Random(1))
    server.rng.random = lambda: 0.5  # type: ignore[method-assign]  # no errors, no notices
    client, upstream = MemoryTransport(), MemoryTransport()
    to_upstream, to_client = detached_relays(
        agent, Identity("alice", "user", frozenset()), client, upstream, native=native
    )
    query = codec.query("SELECT id, name FROM customers WHERE id = 3")
    for _ in range(3):  # decided by Python once, then (native) from the session's caches
        sent = len(upstream.data)
        await feed(to_upstream, query)
        await feed(to_client, server.answer(bytes(upstream.data[sent:])))
    journal = agent.audit.journal
    assert journal.state[FD] >= 0 and _journaled(journal) == agent.audit.queued
    os.close(journal.state[FD])
    if disk == "/dev/full":
        journal.state[FD] = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    else:  # a real file system, full part-way through the record
        journal.state[FD], filler, whole = _nearly_full_journal(journal, small_disk)
    handled = _native_stats(to_upstream)
    answered, queued = len(client.data), len(agent.audit.queued)
    sent = len(upstream.data)
    await feed(to_upstream, query)
    to_client.data_received(server.answer(bytes(upstream.data[sent:])))
    if to_client.task is not None:
        await to_client.task
    assert to_client.done.done() and isinstance(to_client.done.result(), OSError)
    assert len(client.data) == answered, "the result went out without its event"
    assert len(agent.audit.queued) == queued + 1 and journal.state[MARK] == queued
    if native:
        assert _native_stats(to_upstream)["client"] == handled["client"] + 1  # really native
    if disk == "small disk":
        path = small_disk / "journal.bin"
        assert path.read_bytes() == whole  # what went in part-way is cut off again
        filler.unlink()
        journal.catch_up()  # the failed statement's event, journaled once there is room
        assert _records(path)[-1][2] == agent.audit.queued[queued:]
    os.close(journal.state[FD])
    journal.state[FD] = -1
    await agent.catalog.close()


def _marshalled(path: Path) -> list[Any]:
    """Every marshal object of a file, whatever its shape (recovery takes only events)."""
    with open(path, "rb") as file:
        objects = []
        while file.peek(1):
            objects.append(marshal.load(file))
    return objects


def _native_stats(relay: Any) -> dict[str, int]:
    fast = relay.session.fast
    return dict(fast.stats) if fast is not None else {"client": 0}


def test_journal_record_refuses_what_is_not_a_record() -> None:
    with pytest.raises(TypeError):
        _fastpath.journal_record("p", 0, ("not", "a list"))
    with pytest.raises(ValueError):  # what marshal.dumps refuses, this refuses
        _fastpath.journal_record("p", 0, [(object(),)])


@pytest.mark.parametrize("seed", range(6))
def test_catch_up_writes_the_same_file_with_and_without_the_native_append(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import journal as journal_module

    assert journal_module._native_append is not None, "build the extension"
    files = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(journal_module, "_native_append", None)
        rng = random.Random(seed)
        queued: list[Any] = []
        path = tmp_path / f"native-{native}.journal"
        journal = journal_module.AuditJournal(path, queued, "3f9a0c12", 17)
        for _ in range(30):
            queued.extend(_event(rng) for _ in range(rng.randrange(3)))
            journal.catch_up()
            assert journal.state[MARK] == len(queued)
        files.append(path.read_bytes())
        assert sum(len(events) for _, _, events in _marshalled(path)) == len(queued) > 0
        os.close(journal.state[FD])
    assert files[0] == files[1]
