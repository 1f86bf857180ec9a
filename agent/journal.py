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
  session instead of returning a result whose event could be lost: ``catch_up`` raises
  ``AuditNotJournaled``, which the session answers with a protocol error naming the rule
  (``audit_journal``; PostgreSQL 53100, MySQL 1021) before it ends.  Those events are
  *settled*: their results never went out, so the flush takes them with the journaled ones
  (``takeable``) and delivery goes on while the disk stays full; an event neither journaled
  nor settled (its writer has not caught up yet, its result not released) stays queued for
  that writer.  A record whose write fails part-way is cut off again (``append_whole``, or
  ``catch_up`` for the native writer's: the file truncated to where the record began), so no
  partial record stays in the file to hide the ones after it.  The cut checks the file's end,
  then truncates: no other writer can append in between, since every process writes its own
  file (a worker its own, agent/workers.py, started again only once the old one has exited;
  one agent per state directory, agent/__main__.py's lock); ``O_APPEND`` would still keep
  whole records of a second writer.
* **Rotate.**  When the shipper takes the queue (``seal``), the file becomes the sealed
  journal (``….sealed``) and new events start a fresh file; once everything taken is
  delivered or spooled (fsynced), ``release`` deletes the sealed file.
* **Recover.**  At start, ``recover`` turns what a previous process left (sealed and active
  files, or a former worker's) into spool batches (fsynced) and deletes it; the shipper
  replays the spool as usual.  A record cut short (its write interrupted by the kill) is
  dropped, and logged: its statement's result had not been written to the client yet.
  Recovery goes on at the next record's start, so a torn record in the middle (left by an
  agent older than the cut-off rule) hides nothing after it.
"""

from __future__ import annotations

import errno
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
# How every record begins: marshal's 3-tuple, then its str (the id prefix); recovery goes on
# from the next one after bytes that are not a whole record.
_RECORD_START = b"(\x03\x00\x00\x00u"
# The slots of AuditJournal.state; TORN: the bytes of a record the native writer could not
# write whole, at the file's end until catch_up cuts them off.
FD, MARK, FIRST_SEQ, TORN = range(4)


class AuditNotJournaled(OSError):
    """A statement's audit event could not be journaled (a full disk, EIO): its result is
    withheld and its session ends with this error (rule ``audit_journal``)."""

    rule = "audit_journal"

    def __init__(self, cause: OSError) -> None:
        self.text = (
            f"{self.rule}: the statement's audit event could not be written to the agent's "
            f"journal ({cause.strerror or cause}); its result is withheld and the session ends"
        )
        super().__init__(cause.errno, self.text)

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT)

    @property
    def sqlstate(self) -> str:
        """PostgreSQL's SQLSTATE for it: disk_full, else io_error."""
        return "53100" if self.disk_full else "58030"


def sealed_path(path: Path) -> Path:
    return path.with_suffix(".sealed")


def _open_journal(path: Path) -> int:
    return os.open(path, _OPEN_FLAGS, 0o600)


def _cut_off(fd: int, written: int, path: Path) -> None:
    """Truncate the ``written`` bytes a failed append left at the file's end (O_APPEND: the
    offset is just past them), back to the size the file had before.  When another writer
    appended after them the file is left as it is: recovery skips bytes that are not a whole
    record."""
    try:
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - written)
        else:
            log.error("audit file %s: a failed append is followed by another writer's", path)
    except OSError as cut:
        log.error("audit file %s: cannot cut a failed append off: %s", path, cut)


def append_whole(fd: int, data: bytes, path: Path, *, sync: bool = False) -> None:
    """Append one whole record, or none: a write that fails part-way (a full disk, EIO) is
    cut off again and its error raised, so the session fails and the next record takes this
    one's place.  A partial record left in the file would hide every record after it from
    ``recover``.  The native writer (agent/fastpath/journal.c) leaves the size of a record
    it could not write whole in ``state[TORN]`` and hands it to ``catch_up``, which cuts it
    off (this rule, once) and writes it again here.  ``sync``: fsync it too (the spool); a
    failed fsync cuts the append off as well, since its pages may never reach the disk."""
    written = 0
    try:
        while written < len(data):  # a regular file takes it whole unless the disk is full
            count = os.write(fd, data[written:])
            if count == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += count
        if sync:
            os.fsync(fd)
    except OSError as exc:
        if written:
            _cut_off(fd, written, path)
        log.error("audit file %s: an append could not be written whole (%s)", path, exc)
        raise


def append_lines(path: Path, lines: list[str]) -> None:
    """Append text lines to a spool file (created 0600) and fsync them, all or none
    (``append_whole``): a line cut short by a full disk would be sent first at every replay,
    and rejected, for ever."""
    fd = os.open(path, _OPEN_FLAGS, 0o600)
    try:
        append_whole(fd, "".join(line + "\n" for line in lines).encode(), path, sync=True)
    finally:
        os.close(fd)


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
        self.state = array("q", [-1, 0, first_seq, 0])
        # queued[:settled] not journaled belong to statements that failed closed (their
        # writer's catch_up raised): the flush takes them all the same.
        self.settled = 0

    def catch_up(self) -> None:
        """Append the events queued since the last call (one record, one write).  Raises
        AuditNotJournaled when it cannot: the caller fails its statement closed (its result
        never goes out), so the events queued so far are settled."""
        try:
            self._append()
        except OSError as exc:
            self.settled = len(self._queued)
            raise AuditNotJournaled(exc) from exc

    def takeable(self) -> int:
        """How many queued events (from the start) a flush may take: every one journaled or
        settled.  It journals what it can first; a journal that cannot be written (a full
        disk) stops no delivery: the statements whose events it could not take failed closed
        already, and an event of a writer that has not caught up yet stays queued, for that
        writer to journal before its result goes out (or to fail closed)."""
        try:
            self._append()
        except OSError as exc:
            log.error(
                "audit journal %s not written (%s): delivering what is settled", self.path, exc
            )
        return max(self.state[MARK], self.settled)

    def _append(self) -> None:
        queued = self._queued
        state = self.state
        mark = state[MARK]
        if len(queued) == mark:
            return
        self._cut_torn()  # a later append would go after them, and they are no record
        if _native_append is not None and _native_append(state, queued, self.id_prefix):
            return  # the same record, with the same one write
        self._cut_torn()  # the native writer's own short write, just now
        if state[FD] < 0:
            state[FD] = _open_journal(self.path)
        data = marshal.dumps((self.id_prefix, state[FIRST_SEQ] + mark, queued[mark:]), _MARSHAL)
        append_whole(state[FD], data, self.path)
        state[MARK] = len(queued)

    def _cut_torn(self) -> None:
        """Cut off the bytes a short native write left at the file's end (state[TORN])."""
        state = self.state
        if state[TORN]:
            torn, state[TORN] = state[TORN], 0
            _cut_off(state[FD], torn, self.path)

    def seal(self, id_prefix: str, first_seq: int) -> None:
        """The shipper took the ``takeable`` events from the queue's start (those journaled
        stay in the sealed file until ``release``); what is still queued is not journaled
        yet, and queued[0] gets seq ``first_seq`` under ``id_prefix``."""
        state = self.state
        fd = state[FD]
        state[FD], state[MARK], state[FIRST_SEQ], state[TORN] = -1, 0, first_seq, 0
        self.settled = 0
        self.id_prefix = id_prefix
        if fd < 0:
            return
        os.close(fd)
        try:
            if self.sealed.exists():  # a flush failed before releasing: keep both, in order
                sealed = _open_journal(self.sealed)
                try:
                    append_whole(sealed, self.path.read_bytes(), self.sealed)
                finally:
                    os.close(sealed)
                self.path.unlink()
            else:
                os.replace(self.path, self.sealed)
        except FileNotFoundError:  # another agent on this state directory took it
            log.warning("audit journal %s was removed by another process", self.path)
        except OSError as exc:
            # A full disk: the file stays the active one, new records go after its own (they
            # are replayed at a restart under their ids: duplicates the control plane drops).
            log.error("audit journal %s not sealed (%s): it stays active", self.path, exc)

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
        append_lines(spool_path, lines)
    for path in found:
        path.unlink(missing_ok=True)
    return sum(len(events) for _prefix, _seq, events in runs)


def journal_paths(path: Path) -> list[Path]:
    """A journal's files, oldest events first."""
    return [sealed_path(path), path]


def _records(path: Path) -> list[tuple[str, int, list[QueuedEvent]]]:
    """The whole records of a journal file (marshal objects one after the other: each says
    its own length).  Bytes that are not a whole record (a write cut short by a kill, or one
    an older agent left after a failed write) are skipped up to the next record's start,
    and reported: they never hide the records around them."""
    data = path.read_bytes()
    records: list[tuple[str, int, list[QueuedEvent]]] = []
    start = 0
    while start < len(data):
        end = _record_end(data, start)
        record = None if end is None else _record(data[start:end])
        # A record cut short can read the next one's first bytes as its own last ones: no
        # record's bytes hold another's start (events are 6-tuples, their text JSON without
        # NUL bytes).
        resume = data.find(_RECORD_START, start + 1)
        if end is not None and record is not None and not start < resume < end:
            records.append(record)
            start = end
            continue
        skipped = (len(data) if resume < 0 else resume) - start
        log.warning(
            "audit journal %s: %s bytes at offset %s are not a whole record (a write cut "
            "short): skipped, %s",
            path,
            skipped,
            start,
            "the last ones" if resume < 0 else "records after them kept",
        )
        start += skipped
    return records


# marshal's codes that a record is made of, with the bytes that follow them (sized: -1).
_FIXED_SIZE = {b"N": 0, b"T": 0, b"F": 0, b"i": 4, b"g": 8, b"u": -1, b"l": -1}
_CONTAINERS = (b"(", b"[")
_DEPTH = 3  # the record's tuple, its events' list, an event's tuple


def _record_end(data: bytes, at: int, depth: int = 1) -> int | None:
    """Where the record (or, deeper, the object) at ``at`` ends; None when it is not made of
    a record's codes or claims more bytes than there are.  Checked before marshal reads it:
    marshal allocates whatever size a torn record's bytes claim (gigabytes) before it finds
    they are not there."""
    code, at = data[at : at + 1], at + 1
    if code in _CONTAINERS and depth <= _DEPTH:
        if at + 4 > len(data):
            return None
        count = int.from_bytes(data[at : at + 4], "little", signed=True)
        at += 4
        if not 0 <= count <= len(data) - at:
            return None
        for _ in range(count):
            end = _record_end(data, at, depth + 1)
            if end is None:
                return None
            at = end
        return at
    size = _FIXED_SIZE.get(code)
    if size is None:
        return None
    if size < 0:  # a str's UTF-8 bytes, or an int's 15-bit digits (2 bytes each)
        count = abs(int.from_bytes(data[at : at + 4], "little", signed=True))
        size = 4 + count * (2 if code == b"l" else 1)
    return at + size if at + size <= len(data) else None


def _record(data: bytes) -> tuple[str, int, list[QueuedEvent]] | None:
    try:
        record: Any = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if (
        isinstance(record, tuple)
        and len(record) == 3
        and isinstance(record[0], str)
        and isinstance(record[1], int)
        and isinstance(record[2], list)
        and all(map(_is_event, record[2]))  # not a torn record read into the next one
    ):
        return record[0], record[1], record[2]
    return None


def _is_event(event: Any) -> bool:
    """Whether ``event`` has agent.audit.QueuedEvent's shape."""
    return (
        isinstance(event, tuple)
        and len(event) == 6
        and isinstance(event[0], str)
        and isinstance(event[1], int | float)
        and isinstance(event[2], int | None)
        and isinstance(event[3], int | float)
        and isinstance(event[4], bool)
        and isinstance(event[5], int)
    )
