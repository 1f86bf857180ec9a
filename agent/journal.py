"""Audit write-ahead journal: every audit event reaches a file before its statement's result
reaches the client, so a SIGKILLed agent loses no event.

Without it an event waits in memory (``AuditShipper.queued``) until the next flush, and
reaches the disk spool only when a delivery fails or the agent stops on SIGTERM; a kill
loses whatever was in memory.  With it:

* **Append.**  ``catch_up`` writes the events queued since its last call as one record,
  with one ``os.write`` to a file opened ``O_APPEND``.  The Python data paths (PostgreSQL's
  and MySQL's) call it from ``record_statement``; it encodes and writes the record in C
  (``journal_append``) when the extension is built.  The native path does what it does once
  per upstream chunk that completed statements, before that chunk is written to the client
  (the bridge's ``audit_journal``), in C: the same record, byte for byte, with one
  ``write`` and no Python frame (agent/fastpath/journal.c; calling ``catch_up``
  per chunk cost more than the rest of a native round trip).  A record is
  ``(id_prefix, first_seq, events)`` in ``marshal``
  (a third of a microsecond for one event, a third of the cost of a JSON batch: this runs
  once per statement), one after the other: the events keep the shipper's tuples whatever their
  shape, and the ids the shipper will give them, so the journal and the delivered batch
  name each event the same way and the control plane's de-duplication by id
  (``audit.services._chain_and_insert``) makes replaying an acknowledged event harmless.
  The file is the agent's own (0600, in its state directory); a record cut short by a kill
  is dropped, never read.
* **No fsync per event.**  What this guards against is the process dying (SIGKILL, the
  OOM killer, a crash): a completed ``write`` is in the kernel's page cache and survives
  that.  A power loss or kernel crash can still lose what the kernel had not written back
  (seconds); an fsync per statement (a disk round trip) is not worth that case.  The spool,
  which holds events across long outages, is still fsynced.
* **Fail closed.**  A journal that cannot be written (a full disk) fails the statement's
  session instead of returning a result whose event could be lost.
* **Rotate.**  When the shipper takes the queue (``seal``), the file becomes the sealed
  journal (``….sealed``) and new events start a fresh file; once everything taken is
  delivered or spooled (fsynced), ``release`` deletes the sealed file.
* **Recover.**  At start, ``recover`` turns what a previous process left (sealed and active
  files, or a former worker's) into spool batches (fsynced) and deletes it; the shipper
  replays the spool as usual.  A record cut short (its write interrupted by the kill) is
  dropped: its statement's result had not been written to the client yet.
"""

from __future__ import annotations

import io
import logging
import marshal
import os
from array import array
from pathlib import Path
from typing import Any

from agent.audit import BATCH_SIZE, QueuedEvent, encode_batch
from agent.extension import native_function

log = logging.getLogger("agent.journal")

# catch_up's record and write in C (agent/fastpath/journal.c), when it is built.
_native_append = native_function("journal_append")

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
# Version 2: no back-references (version 3+ hashes every object it writes to find them),
# a quarter cheaper for these small records; read by every Python since 2.5.
_MARSHAL = 2
# The slots of AuditJournal.state.
FD, MARK, FIRST_SEQ = range(3)


def sealed_path(path: Path) -> Path:
    return path.with_suffix(".sealed")


class AuditJournal:
    """The write-ahead journal of one shipper's queue (one file per process)."""

    # id_prefix is read by the native path per record (a slot: straight from the instance).
    __slots__ = ("__dict__", "__weakref__", "id_prefix")

    def __init__(self, path: Path, queued: list[QueuedEvent], id_prefix: str, first_seq: int):
        self.path = path
        self.sealed = sealed_path(path)
        # The shipper's list, read (never changed) here: events queued[mark:] are not
        # journaled yet; queued[0] gets seq ``first_seq`` under ``id_prefix``.
        self._queued = queued
        self.id_prefix = id_prefix
        # The open file (-1: none), mark and first_seq, in an array the native path holds as
        # a buffer: it reads them and advances mark itself, without a Python attribute lookup
        # (agent/fastpath/journal.c), and calls ``catch_up`` while there is no file.
        self.state = array("q", [-1, 0, first_seq])

    def catch_up(self) -> None:
        """Append the events queued since the last call (one record, one write)."""
        queued = self._queued
        state = self.state
        mark = state[MARK]
        if len(queued) == mark:
            return
        if _native_append is not None and _native_append(state, queued, self.id_prefix):
            return  # the same record, with the same one write
        if state[FD] < 0:
            state[FD] = os.open(self.path, _OPEN_FLAGS, 0o600)
        data = marshal.dumps((self.id_prefix, state[FIRST_SEQ] + mark, queued[mark:]), _MARSHAL)
        written = os.write(state[FD], data)
        while written < len(data):  # a regular file takes it whole unless the disk is full
            written += os.write(state[FD], data[written:])
        state[MARK] = len(queued)

    def seal(self, id_prefix: str, first_seq: int) -> None:
        """The shipper took (and emptied) the queue, every event of it journaled by
        ``catch_up`` first: they stay in the sealed file until ``release``; the next event
        is queued[0] again, with seq ``first_seq`` under ``id_prefix``."""
        state = self.state
        fd = state[FD]
        state[FD], state[MARK], state[FIRST_SEQ] = -1, 0, first_seq
        self.id_prefix = id_prefix
        if fd < 0:
            return
        os.close(fd)
        try:
            if self.sealed.exists():  # a flush failed before releasing: keep both, in order
                with open(self.sealed, "ab") as sealed:
                    sealed.write(self.path.read_bytes())
                self.path.unlink()
            else:
                os.replace(self.path, self.sealed)
        except FileNotFoundError:  # another agent on this state directory took it
            log.warning("audit journal %s was removed by another process", self.path)

    def release(self) -> None:
        """Everything sealed is delivered or spooled: forget it."""
        self.sealed.unlink(missing_ok=True)

    def close(self) -> None:
        """Everything is delivered or spooled (the agent stops): no journal is left."""
        if self.state[FD] >= 0:
            os.close(self.state[FD])
            self.state[FD] = -1
        self.release()
        self.path.unlink(missing_ok=True)


def recover(paths: list[Path], spool_path: Path) -> int:
    """Turn the journals a previous process left into spool batches (appended, fsynced) and
    delete them; returns the events recovered."""
    # Another agent on this state directory may seal or recover a file meanwhile: a file
    # gone is one it took (its events reach the control plane under the same ids).
    found: list[Path] = []
    records: list[tuple[str, int, list[QueuedEvent]]] = []
    for path in paths:
        try:
            records += _records(path)
        except FileNotFoundError:
            continue
        found.append(path)
    runs: list[tuple[str, int, list[QueuedEvent]]] = []  # contiguous ids, in order
    for prefix, first_seq, events in records:
        last = runs[-1] if runs else None
        if last and last[0] == prefix and last[1] + len(last[2]) == first_seq:
            last[2].extend(events)
        else:
            runs.append((prefix, first_seq, list(events)))
    lines = [
        encode_batch(prefix, first_seq + start, events[start : start + BATCH_SIZE])
        for prefix, first_seq, events in runs
        for start in range(0, len(events), BATCH_SIZE)
    ]
    if lines:
        with open(spool_path, "a", encoding="utf-8") as spool:
            spool.write("\n".join(lines) + "\n")
            spool.flush()
            os.fsync(spool.fileno())
    for path in found:
        path.unlink(missing_ok=True)
    return sum(len(events) for _prefix, _seq, events in runs)


def journal_paths(path: Path) -> list[Path]:
    """A journal's files, oldest events first."""
    return [sealed_path(path), path]


def _records(path: Path) -> list[tuple[str, int, list[QueuedEvent]]]:
    """The whole records of a journal file (marshal objects one after the other: each says
    its own length); what follows one cut short is dropped."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    records: list[tuple[str, int, list[QueuedEvent]]] = []
    while stream.tell() < len(data):
        start = stream.tell()
        record = _record(stream)
        if record is None:
            dropped = len(data) - start
            log.warning(
                "%s: %s bytes after the last whole record (cut short): dropped", path, dropped
            )
            break
        records.append(record)
    return records


def _record(stream: io.BytesIO) -> tuple[str, int, list[QueuedEvent]] | None:
    try:
        record: Any = marshal.load(stream)
    except (EOFError, ValueError, TypeError):
        return None
    if (
        isinstance(record, tuple)
        and len(record) == 3
        and isinstance(record[0], str)
        and isinstance(record[1], int)
        and isinstance(record[2], list)
    ):
        return record[0], record[1], record[2]
    return None
