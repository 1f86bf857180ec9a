"""Audit shipper: batches events to the control plane; spools them to disk when it is down.

Events travel in compact batches (``BATCH_FORMAT``): the fields that repeat for a
statement (identity, statement text, tables, columns, decision, rule…) are sent once per
batch in ``statements``, and each event is a short row pointing at one of them::

    {"format": 3, "id_prefix": "1f0c…-4a1b-9c2d-",
     "statements": [{"identity": "alice", "statement": "SELECT …", …}, …],
     "events": [[statement_index, seq, epoch_seconds, rows, duration_ms, error, bytes], …]}

``bytes`` is the result data the client was sent (DataRow or CopyData payloads, after
masking; 0 when none).  Format 2 (spooled by older agents) has no ``bytes``: it expands to
None.

Event ``seq`` numbers are unique per ``id_prefix`` (74 random bits drawn per agent run),
and an event's id is the UUID ``id_prefix + "%012x" % seq``: the control plane
de-duplicates by it, so replaying the spool after a partial failure never creates
duplicates.  Nothing is dropped: a batch leaves memory only after the control plane
accepted it or it is on disk (fsynced); before that, every event is in the write-ahead
journal (``agent.journal``) from the moment it is recorded, so a killed agent loses none.
``expand_batch`` turns a batch back into one dict per event; the control plane and the
tests use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.controlplane import AuditBatchRefused, ControlPlaneClient, ControlPlaneUnavailable
from agent.extension import native_function

if TYPE_CHECKING:
    from agent.journal import AuditJournal

log = logging.getLogger("agent.audit")

BATCH_FORMAT = 3
_OLDER_FORMAT = 2  # no bytes
BATCH_SIZE = 5000
_SEQ_LIMIT = 1 << 48
# Beside the spool: batches the control plane will never take (AuditShipper._set_aside).
SET_ASIDE_SUFFIX = ".bad"

# (statement fragment, epoch seconds, rows, duration ms, error, bytes sent to the client);
# the native data path queues the same tuples (fastpath/backend.c).
QueuedEvent = tuple[str, float, int | None, float, bool, int]


class BatchError(ValueError):
    """A malformed audit batch; the message names the field."""


def _new_id_prefix() -> str:
    h = os.urandom(10).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-"


# The same encoding in C (agent/fastpath/events.c): about a tenth of the cost per
# event.
_encode_events = native_function("encode_events")


def encode_batch(id_prefix: str, first_seq: int, queued: list[QueuedEvent]) -> str:
    """One compact batch document (JSON text) for these queued events."""
    if _encode_events is not None:
        try:
            fragments, events = _encode_events(queued, first_seq)
        except (ValueError, OverflowError, TypeError):  # odd values: the Python encoder
            return encode_batch_python(id_prefix, first_seq, queued)
        statements = ",".join("{" + fragment + "}" for fragment in fragments)
        return (
            f'{{"format":{BATCH_FORMAT},"id_prefix":"{id_prefix}","statements":[{statements}],'
            f'"events":{events}}}'
        )
    return encode_batch_python(id_prefix, first_seq, queued)


def encode_batch_python(id_prefix: str, first_seq: int, queued: list[QueuedEvent]) -> str:
    """encode_batch without the native extension."""
    index: dict[str, int] = {}
    rows: list[tuple[int, int, float, int | None, float, int, int]] = []
    seq = first_seq
    for fragment, moment, row_count, duration_ms, error, sent_bytes in queued:
        position = index.get(fragment)
        if position is None:
            position = index[fragment] = len(index)
        rows.append(
            (position, seq, moment, row_count, round(duration_ms, 3), 1 if error else 0, sent_bytes)
        )
        seq += 1
    statements = ",".join("{" + fragment + "}" for fragment in index)
    return (
        f'{{"format":{BATCH_FORMAT},"id_prefix":"{id_prefix}","statements":[{statements}],'
        f'"events":{json.dumps(rows, separators=(",", ":"))}}}'
    )


def expand_batch(document: Any) -> list[dict[str, Any]]:
    """The events of a compact batch as one dict each (id, time as ISO-8601 text, the
    statement's fields, rows, bytes, duration_ms, error).  Raises BatchError naming the
    field."""
    if not isinstance(document, dict) or document.get("format") not in (
        BATCH_FORMAT,
        _OLDER_FORMAT,
    ):
        raise BatchError(f"format: must be {BATCH_FORMAT} (or {_OLDER_FORMAT})")
    prefix = document.get("id_prefix")
    if not isinstance(prefix, str) or len(prefix) != 24:
        raise BatchError("id_prefix: must be the first 24 characters of a UUID")
    statements = document.get("statements")
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise BatchError("statements: must be a list of objects")
    events = document.get("events")
    if not isinstance(events, list):
        raise BatchError("events: must be a list")
    width = 7 if document["format"] == BATCH_FORMAT else 6
    return [
        _expand_event(row, index, prefix, statements, width) for index, row in enumerate(events)
    ]


def _expand_event(
    row: Any, index: int, prefix: str, statements: list[dict[str, Any]], width: int
) -> dict[str, Any]:
    where = f"events[{index}]"
    if not isinstance(row, list) or len(row) != width:
        fields = "statement, seq, time, rows, duration_ms, error" + (", bytes" * (width == 7))
        raise BatchError(f"{where}: must be [{fields}]")
    position, seq, moment, rows, duration_ms, error, *sent = row
    if not isinstance(position, int) or not 0 <= position < len(statements):
        raise BatchError(f"{where}[0]: not an index into statements")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < _SEQ_LIMIT:
        raise BatchError(f"{where}[1]: seq must be an integer in [0, 2**48)")
    if not isinstance(moment, int | float) or isinstance(moment, bool):
        raise BatchError(f"{where}[2]: time must be epoch seconds")
    try:
        when = datetime.fromtimestamp(moment, UTC).isoformat()
    except (OverflowError, OSError, ValueError) as exc:
        raise BatchError(f"{where}[2]: time out of range") from exc
    event = {
        **statements[position],
        "id": f"{prefix}{seq:012x}",
        "time": when,
        "rows": rows,
        "bytes": sent[0] if sent else None,
        "duration_ms": duration_ms,
    }
    if error:
        event["error"] = True
    return event


def batch_event_count(line: str) -> int:
    """Events in one spool line (a compact batch, or one legacy single-event line); 0 for
    one that is not JSON (cut short: the replay sets it aside)."""
    try:
        document = json.loads(line)
    except ValueError:
        return 0
    if isinstance(document, dict) and document.get("format") in (BATCH_FORMAT, _OLDER_FORMAT):
        return len(document.get("events") or [])
    return 1


class AuditShipper:
    def __init__(
        self,
        client: ControlPlaneClient,
        state_dir: Path,
        *,
        flush_interval: float = 1.0,
        spool_name: str = "audit-spool.jsonl",
        journal_name: str | None = "audit-journal.bin",
    ) -> None:
        self.client = client
        # One spool file per process (agent/workers.py: each worker has its own).
        self.spool_path = state_dir / spool_name
        self.flush_interval = flush_interval
        # The proxy's hot path only appends a tuple; batches are encoded at flush time.
        # Emptied in place, never rebound: the native data path appends to this list.
        self.queued: list[QueuedEvent] = []
        # Encoded batch documents waiting to be sent, oldest first.
        self.pending: list[str] = []
        self._id_prefix = _new_id_prefix()
        self._next_seq = 0
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self.accepted = 0
        self.duplicates = 0
        self.refused = 0  # events the control plane refused alone: set aside (.bad)
        # The write-ahead journal (None: events wait in memory only, see agent/journal.py).
        self.journal: AuditJournal | None = None
        if journal_name is not None:
            from agent.journal import AuditJournal  # it encodes with this module's encoder

            self.journal = AuditJournal(state_dir / journal_name, self.queued, self._id_prefix, 0)

    def recover_journal(self) -> int:
        """At start, before any event is recorded: what a killed predecessor journaled goes
        to the spool (delivered at the first flush, which comes at once); the events."""
        from agent.journal import journal_paths, recover

        if self.journal is None:
            return 0
        recovered = recover(journal_paths(self.journal.path), self.spool_path)
        if recovered:
            self._wakeup.set()
        return recovered

    def record_statement(
        self,
        fragment: str,
        rows: int | None,
        duration_ms: float,
        error: bool,
        sent_bytes: int = 0,
    ) -> None:
        """Queue one statement event.  ``fragment`` is the JSON text (without braces) of
        the fields that repeat for a statement; id and time are added here and at flush.
        ``sent_bytes``: the result data the client was sent."""
        queued = self.queued
        queued.append((fragment, time.time(), rows, duration_ms, error, sent_bytes))
        if self.journal is not None:  # before the caller writes the result to the client
            self.journal.catch_up()
        if len(queued) >= BATCH_SIZE:
            self._wakeup.set()

    def wake(self) -> None:
        """Flush now (a full batch is queued) instead of at the next interval."""
        self._wakeup.set()

    def _encode_queued(self, *, everything: bool = False) -> None:
        """Take the queued events into pending batches: those journaled, or whose statements
        failed closed (agent/journal.py, ``takeable``), so a full disk stops no delivery; an
        event whose result may still go out only once it is journaled stays queued for its
        writer.  ``everything``: the agent stops, no session is left to release a result."""
        journal = self.journal
        taken = len(self.queued)
        if journal is not None and not everything:
            taken = journal.takeable()
        queued = self.queued[:taken]
        del self.queued[:taken]  # in place: the native data path appends to this list
        for start in range(0, len(queued), BATCH_SIZE):
            chunk = queued[start : start + BATCH_SIZE]
            self.pending.append(encode_batch(self._id_prefix, self._next_seq, chunk))
            self._next_seq += len(chunk)
        # A new prefix only between takes: the journal numbered the queued events already.
        if self._next_seq >= _SEQ_LIMIT // 2:
            self._id_prefix, self._next_seq = _new_id_prefix(), 0
        if journal is not None:
            journal.seal(self._id_prefix, self._next_seq)

    def spooled_count(self) -> int:
        if not self.spool_path.exists():
            return 0
        with open(self.spool_path, encoding="utf-8") as handle:
            return sum(batch_event_count(line) for line in handle if line.strip())

    async def run(self) -> None:
        # A timer that sets the event, not wait_for: an idle interval creates no task and
        # throws no CancelledError, and one with nothing to send or replay does no more.
        loop = asyncio.get_running_loop()
        while True:
            timer = loop.call_later(self.flush_interval, self._wakeup.set)
            await self._wakeup.wait()
            timer.cancel()
            self._wakeup.clear()
            if not (self.queued or self.pending or self._spool_waiting()):
                continue
            try:
                await self.flush()
            except Exception:
                log.exception("audit flush failed")

    def _spool_waiting(self) -> bool:
        """Spooled batches (or a replay a crash interrupted) wait to be sent."""
        return self.spool_path.exists() or self.spool_path.with_suffix(".replaying").exists()

    async def flush(self) -> None:
        async with self._lock:
            self._encode_queued()
            await self._deliver()
            if self.journal is not None and not self.pending:  # all delivered or spooled
                self.journal.release()

    async def _deliver(self) -> None:
        """Send the spool, then the pending batches; what cannot be sent is spooled."""
        if not await self._replay_spool():
            if self.pending:  # keep ordering: new events go behind the spooled ones
                self._spool(self.pending)
                self.pending = []
            return
        while self.pending:
            left = await self._send(self.pending[0])
            if left:
                self._spool(_spool_lines_of(left) + self.pending[1:])
                self.pending = []
                return
            self.pending.pop(0)

    async def _send(self, body: str) -> list[str]:
        """Deliver one request body; what is left to deliver, in order, when the control
        plane is unavailable (the caller spools it), else [].  A body it refuses is split
        until the events it refuses are alone: those are set aside, the rest delivered."""
        try:
            result = await self.client.post_audit(body)
        except AuditBatchRefused as exc:
            return await self._send_refused(body, exc)
        except ControlPlaneUnavailable as exc:
            log.warning("audit delivery failed, spooling: %s", exc)
            return [body]
        self.accepted += int(result.get("accepted", 0))
        self.duplicates += int(result.get("duplicates", 0))
        return []

    async def _send_refused(self, body: str, refusal: AuditBatchRefused) -> list[str]:
        """A batch the control plane refuses (an event it names that it cannot take, from an
        agent newer than it or a damaged spool; a body too large) is sent again in halves,
        down to single events: only what it refuses alone goes to the ``.bad`` file, and
        sent first at every replay it would otherwise hold back every batch behind it for
        ever (a spool line an older agent's cut-short append glued to the next batch is split
        there).  2k·log n requests for k refused events of n; each half carries only its own
        statements.  An outage part-way leaves only the halves not sent yet."""
        halves = await asyncio.to_thread(split_batch, body) or _unglued(body)
        if len(halves) < 2:
            self.refused += batch_event_count(body)
            self._set_aside([body], f"refused by the control plane ({refusal})")
            return []
        for index, half in enumerate(halves):
            left = await self._send(half)
            if left:
                return left + halves[index + 1 :]
        return []

    def _spool(self, documents: list[str]) -> None:
        """Append to the spool, fsynced, all or nothing: a write a full disk cuts short is cut
        off again and raised (``append_lines``), and the caller keeps the documents."""
        from agent.journal import append_lines

        append_lines(self.spool_path, documents)

    async def _replay_spool(self) -> bool:
        """Send spooled batches; False (and everything unsent still on disk) if that failed."""
        from agent.journal import append_lines

        replaying = self.spool_path.with_suffix(".replaying")
        if not self.spool_path.exists() and not replaying.exists():
            return True
        if not replaying.exists():
            os.replace(self.spool_path, replaying)
        elif self.spool_path.exists():
            # A crash mid-replay: fold the newer spool lines in behind the older ones.
            append_lines(replaying, _spool_lines(self.spool_path))
            self.spool_path.unlink()
        lines = _spool_lines(replaying)
        sent = 0  # lines[:sent] are delivered
        while sent < len(lines):
            body, end = _next_body(lines, sent)
            left = await self._send(body)
            if not left:
                sent = end
                continue
            if left != [body]:  # part of it delivered or set aside before the outage
                self._spool(_spool_lines_of(left) + lines[end:])
                replaying.unlink()
                return False
            # Checked only when a send failed: a replay during an outage parses nothing.
            pieces = [piece for line in lines[sent:end] for piece in _unglued(line)]
            bad = [piece for piece in pieces if not _parses(piece)]
            if not bad:
                self._spool(lines[sent:])
                replaying.unlink()
                return False
            self._set_aside(bad, "that will not parse")
            lines[sent:end] = [piece for piece in pieces if _parses(piece)]
        replaying.unlink()
        return True

    def _set_aside(self, lines: list[str], why: str) -> None:
        """Move batches the control plane will never take (spool lines that will not parse,
        cut short by an older agent on a full disk or damaged; events it refuses) to the
        ``.bad`` file beside the spool, for a person to read (and, once the cause is fixed,
        to move back into the spool): sent first at every replay they would hold back every
        batch behind them for ever."""
        from agent.journal import append_lines

        bad = self.spool_path.with_suffix(SET_ASIDE_SUFFIX)
        append_lines(bad, lines)
        log.error(
            "audit spool %s: %s line(s) %s (%s bytes) set aside to %s",
            self.spool_path,
            len(lines),
            why,
            sum(len(line) for line in lines),
            bad,
        )

    async def close(self) -> None:
        """Final flush; whatever cannot be delivered is spooled.  On a full disk (neither
        delivered nor spooled) the journal's files are kept, not raised about: the next start
        recovers them under the same ids, and the agent still stops in order."""
        try:
            await self.flush()
            self._encode_queued(everything=True)
            if self.pending:
                self._spool(self.pending)
                self.pending = []
        except OSError as exc:
            log.error(
                "audit at stop: %s batch(es) neither delivered nor spooled (%s); the journal "
                "files in %s keep what they hold for the next start",
                len(self.pending),
                exc,
                self.spool_path.parent,
            )
            return
        if self.journal is not None:
            self.journal.close()


def _spool_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def _next_body(lines: list[str], start: int) -> tuple[str, int]:
    """The request body for the spool lines from ``start``, and the index after its last
    line.  A batch line goes as it is; a run of legacy one-event lines (older agents) as
    {"events": [...]}."""
    if lines[start].startswith('{"format":'):
        return lines[start], start + 1
    end = start
    while end < len(lines) and end - start < BATCH_SIZE and not lines[end].startswith('{"format":'):
        end += 1
    return '{"events":[' + ",".join(lines[start:end]) + "]}", end


def split_batch(body: str) -> list[str] | None:
    """A request body of two or more events as two bodies of half the events each, every
    event keeping its id (a compact batch keeps its id prefix and each row its seq; each half
    carries only the statements its rows use); None for one event, or a body that is not a
    batch."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list) or len(events) < 2:
        return None
    middle = len(events) // 2
    return [_compact_json(_part(document, rows)) for rows in (events[:middle], events[middle:])]


def _part(document: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
    statements = document.get("statements")
    if "format" not in document or not isinstance(statements, list):
        return {**document, "events": rows}  # {"events": [...]}: events whole
    if not all(
        isinstance(row, list) and row and type(row[0]) is int and 0 <= row[0] < len(statements)
        for row in rows
    ):
        return {**document, "events": rows}  # the control plane names what is wrong
    used = sorted({row[0] for row in rows})
    renumbered = {old: new for new, old in enumerate(used)}
    return {
        **document,
        "statements": [statements[old] for old in used],
        "events": [[renumbered[row[0]], *row[1:]] for row in rows],
    }


def _compact_json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _spool_lines_of(bodies: list[str]) -> list[str]:
    """Request bodies as spool lines: a compact batch is one; ``{"events": [...]}`` (a run of
    older agents' one-event lines, or half of one) is its events, a line each."""
    lines = []
    for body in bodies:
        try:
            events = json.loads(body)["events"] if body.startswith('{"events":[') else None
        except ValueError:  # a piece cut short: the next replay sets it aside
            events = None
        if isinstance(events, list):
            lines += [_compact_json(event) for event in events]
        else:
            lines.append(body)
    return lines


def _unglued(line: str) -> list[str]:
    """``line``, or the cut-short start and the whole batch glued onto it: an older agent's
    append cut short by a full disk left no newline, so its next append began on the same
    line.  Only a line that will not parse is split, where a batch object begins."""
    if _parses(line):
        return [line]
    start = line.find('{"format":', 1)
    while start != -1:
        if _parses(line[start:]):
            return [line[:start], line[start:]]
        start = line.find('{"format":', start + 1)
    return [line]


def _parses(line: str) -> bool:
    """Whether a spool line is one the control plane can read: a compact batch, or a legacy
    one-event object."""
    try:
        document = json.loads(line)
        if isinstance(document, dict) and "format" in document:
            expand_batch(document)
    except ValueError:  # JSONDecodeError, BatchError
        return False
    return isinstance(document, dict)


def statement_fragment(
    *,
    identity: str,
    datasource: str,
    client_address: str,
    decision: Any,
    index: int,
    action: str,
) -> str:
    """The JSON fields (without braces) that repeat for one decided statement, as
    ``AuditShipper.record_statement`` takes them.  Protocol-neutral; ``decision`` is an
    ``agent.decision.Decision`` (not imported: decision imports nothing from here)."""
    statements = decision.statements or [decision.statement]
    kinds = decision.kinds or [decision.kind]
    static = {
        "identity": identity,
        "datasource": datasource,
        "client_address": client_address,
        "fingerprint": decision.fingerprint,
        "statement": statements[min(index, len(statements) - 1)],
        "kind": kinds[min(index, len(kinds) - 1)],
        "tables_read": decision.tables_read,
        "tables_written": decision.tables_written,
        "columns_read": decision.columns_read,
        "masked_columns": decision.masked_columns,
        "decision": action,
        "rule": decision.rule,
    }
    return json.dumps(static, separators=(",", ":"), ensure_ascii=False)[1:-1]
