"""The answer to one command, from the upstream to the client: every result of a COM_QUERY
or COM_STMT_EXECUTE (multi-statement, multi-result), or the rows of a COM_STMT_FETCH,
masked where the decision says, audited per result.

``Results.advance`` runs in the upstream relay's callback on whatever packets are
buffered and returns once it needs more (or went slow: a result shape whose masks are not
cached yet needs a catalog lookup, done in a task of the upstream relay).  Every packet
goes out with the agent's own sequence ids, so a rewritten row never desynchronises client
and server; rows whose ids already match go out as they came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from agent.mysql import packets as p
from agent.mysql.rows import (
    Mask,
    NativeMask,
    mask_binary_row,
    mask_text_row,
    native_mask_binary_rows,
    native_mask_rows,
    native_whole_result,
)
from agent.mysql.state import OpenCursor, Prepared
from agent.verdicts import Decision

if TYPE_CHECKING:
    from agent.mysql.relay import PacketRelay
    from agent.mysql.server import MySqlAgent

SERVER_MORE_RESULTS_EXISTS = p.SERVER_MORE_RESULTS_EXISTS
SERVER_STATUS_CURSOR_EXISTS = 0x0040
SERVER_STATUS_LAST_ROW_SENT = 0x0080  # a FETCH read the cursor to its end
_FLUSH_BYTES = 1 << 20  # rows are written on once this much is ready
_WITHHELD = (
    "Warden withheld the database's error message: the statement touches columns "
    "restricted for you and the message may quote their values"
)
FIRST, HEADER, ROWS = 0, 1, 2
# (masks or None: none masked, types, the masks for the native path or None: not used)
Shape = tuple[list[Mask | None] | None, list[int], NativeMask | None]


class AnswerSession(Protocol):
    """What an answer needs of its session (``agent.mysql.session.MySqlSession``)."""

    agent: MySqlAgent
    client: asyncio.Transport
    native_results: bool  # whole results relayed by the native path (when built and on)
    _masks: dict[tuple[int, bytes], tuple[Decision, Shape]]  # masks.py cached_shape_of
    to_client: PacketRelay
    reply_seq: int

    def results_done(self, succeeded: bool, after: Callable[[bool], None] | None) -> None: ...

    def cached_shape(self, decision: Decision, definitions: list[bytes]) -> Shape | None: ...

    async def masks_for(self, decision: Decision, definitions: list[bytes]) -> Shape: ...

    def audit(
        self,
        decision: Decision,
        index: int,
        rows: int | None,
        duration_ms: float,
        error: bool,
        sent_bytes: int = 0,
    ) -> None: ...

    def cursor_closed(self, prepared: Prepared, *, error: bool = False) -> None: ...


def withheld(error: bytes, decision: Decision) -> bytes:
    """An upstream ERR packet, its message withheld when restricted columns are near."""
    if not decision.touches_restricted:
        return error
    failure = p.ServerError.parse(error)
    return p.err_packet(failure.code, failure.sqlstate, _WITHHELD)


class Results:
    __slots__ = (
        "after",
        "binary",
        "count",
        "decision",
        "header",
        "header_at",
        "index",
        "masks",
        "native",
        "out",
        "pending",
        "prepared",
        "rows",
        "rows_only",
        "sent_bytes",
        "seq",
        "session",
        "shape",
        "started",
        "state",
        "succeeded",
        "types",
        "whole",
    )

    def __init__(
        self,
        session: AnswerSession,
        decision: Decision,
        started: float,
        binary: bool,
        prepared: Prepared | None = None,
        rows_only: bool = False,
        after: Callable[[bool], None] | None = None,
    ) -> None:
        # Set once per command: only what every path reads.  A result's header fields
        # (count, header, header_at, shape) are set where it starts (FIRST), its masks and
        # row counters where its rows start (_header, _whole_result, or here for a FETCH).
        self.session = session
        self.decision = decision
        self.started = started
        self.binary = binary
        self.prepared = prepared
        self.rows_only = rows_only
        self.after = after  # told whether the last result succeeded, once all went out
        self.seq = session.reply_seq
        self.index = self.sent_bytes = self.pending = 0
        self.succeeded = True
        self.out: list[bytes] = []
        self.whole = session.native_results and not binary  # try _whole_result
        if rows_only:
            assert prepared is not None
            self.state, self.masks, self.types = ROWS, prepared.masks, prepared.types
            self.native: NativeMask | None = prepared.native
            self.rows = 0
        else:
            self.state = FIRST

    def advance(self, packets: p.PacketBuffer) -> bool:
        """Relay what is buffered; True once the answer is complete."""
        complete = self._advance(packets)
        if self.out:
            self._flush()
        if complete:
            self.session.results_done(self.succeeded, self.after)
        return complete

    def _flush(self) -> None:
        self.session.client.write(b"".join(self.out))
        self.out.clear()
        self.pending = 0

    def _advance(self, packets: p.PacketBuffer) -> bool:
        while True:
            state = self.state
            if state == FIRST:  # most answers: one result, read whole
                if self.whole:
                    whole = self._whole_result(packets)
                    if whole is not None:
                        if whole:
                            return True
                        continue
                self.header_at: tuple[bytes, int] = (packets.buffer, packets.pos)  # its start
                first = packets.take()
                if first is None:
                    return False
                if p.is_ok(first) or p.is_err(first):
                    if self._ok_or_error(first):
                        return True
                    continue
                if p.is_local_infile_request(first):  # never negotiated: fail closed
                    raise p.ProtocolError("the database asked for a LOCAL INFILE transfer")
                self.count: int = p.read_lenenc_int(first, 0)[0] or 0
                self.header: list[bytes] = [first]  # column count, definitions, EOF
                self.shape: Shape | None = None
                self.state = HEADER
            elif state == ROWS:
                if self._rows(packets):
                    return True
                if self.state == ROWS:
                    return False
            elif self._header(packets):
                return True
            elif self.state == HEADER:
                return False

    def _whole_result(self, packets: p.PacketBuffer) -> bool | None:
        """A text result set buffered whole and numbered as the client's, its masks cached:
        relayed at once (its rows masked by the native path: the C code a repeat's answer
        runs, agent/mysql/native.py), True when it ends the answer; None: read it packet
        by packet."""
        assert native_whole_result is not None
        session = self.session
        buffer = packets.buffer
        whole = native_whole_result(
            buffer,
            packets.pos,
            self.seq,
            session._masks,
            self.decision,
            session.agent.config.masking_key,
        )
        if whole is None:
            return None
        out, end, rows_end, rows, sent, self.seq, status = whole
        self.out.append(out)
        packets.pos, packets.seq = end, buffer[rows_end + 3]
        self.rows, self.sent_bytes = rows, sent
        if status < 0:  # its last packet is an ERR, or an EOF to number again
            return self._result_end(buffer[rows_end + 4 : end], rows)
        return self._ended(False, status, rows)

    def _ok_or_error(self, first: bytes) -> bool:
        """A result without rows; True when it ends the answer."""
        return self._result_end(first, None if p.is_err(first) else p.read_lenenc_int(first, 1)[0])

    def _header(self, packets: p.PacketBuffer) -> bool:
        """Column definitions and their EOF; False while they or their masks are pending
        (state still HEADER), or when rows follow (state ROWS)."""
        header = self.header
        while len(header) < self.count + 2:  # column count, definitions, EOF
            packet = packets.take()
            if packet is None:
                return False
            header.append(packet)
        shape = self.shape
        if shape is None:
            shape = self.session.cached_shape(self.decision, header[1:-1])
            if shape is None:  # a new result shape: its masks need the catalog
                self.session.to_client.run_slow(self._load_shape())
                return False
        self.masks, self.types, self.native = shape
        if self.prepared is not None:
            self.prepared.masks, self.prepared.types, self.prepared.native = shape
        buffer, start = self.header_at
        if (
            packets.buffer is buffer
            and buffer[start + 3] == self.seq & 0xFF
            and packets.pos - start == sum(map(len, header)) + 4 * len(header)  # none split
        ):  # read in one piece and numbered as the client's: it goes out as it came
            self.out.append(buffer[start : packets.pos])
            self.seq += len(header)
        else:
            seq = self.seq
            for packet in header:
                data, seq = p.frame(packet, seq)
                self.out.append(data)
            self.seq = seq
        self.rows = self.sent_bytes = 0
        self.state = ROWS
        if self.binary and p.status_of(header[-1]) & SERVER_STATUS_CURSOR_EXISTS:
            assert self.prepared is not None  # the rows come by COM_STMT_FETCH
            self.prepared.cursor = OpenCursor(self.decision, self.index, self.started)
            return True
        return False

    async def _load_shape(self) -> bool:
        self.shape = await self.session.masks_for(self.decision, self.header[1:-1])
        return True

    def _rows(self, packets: p.PacketBuffer) -> bool:
        """Rows until the result's EOF or ERR; True when that ends the answer."""
        masks, types = self.masks, self.types
        key = self.session.agent.config.masking_key
        binary = self.binary
        mask_row = mask_binary_row if binary else mask_text_row
        out = self.out
        native = self.native
        native_rows = native_mask_binary_rows if binary else native_mask_rows
        widths = bytes(types) if binary and native is not None else b""  # each column's type
        while True:
            if masks is None:  # unmasked rows numbered as the client's go out as they came
                verbatim, count = packets.verbatim_rows(self.seq)
                if count:
                    out.append(verbatim)
                    self.pending += len(verbatim)
                    self.sent_bytes += len(verbatim) - 4 * count  # whole packets, one per row
                    self.rows += count
                    self.seq += count
            elif native is not None and native_rows is not None:  # a run at once, in C
                if binary:
                    run = native_rows(packets.buffer, packets.pos, self.seq, native, widths, key)
                else:
                    run = native_rows(packets.buffer, packets.pos, self.seq, native, key)
                masked, packets.pos, count, self.seq, sent = run
                if masked is not None:
                    out.append(masked)
                    self.pending += len(masked)
                    self.sent_bytes += sent
                    self.rows += count
            row = packets.take()
            if row is None:
                return False
            if p.is_eof(row) or p.is_err(row):
                return self._result_end(row, self.rows)
            self.rows += 1
            if masks is not None:
                row = mask_row(row, masks, types, key)
            self.sent_bytes += len(row)
            data, self.seq = p.frame(row, self.seq)
            out.append(data)
            self.pending += len(data)
            if len(out) > 256 or self.pending > _FLUSH_BYTES:  # stream, never hold, the result
                self._flush()

    def _fetched(self, cursor_ended: bool, error: bool) -> None:
        """A FETCH's rows and bytes counted in its statement's audit event."""
        prepared = self.prepared
        assert prepared is not None
        cursor = prepared.cursor
        if cursor is None:  # its event went out already: these rows get one of their own
            cursor = prepared.cursor = OpenCursor(self.decision, self.index, self.started)
        cursor.rows += self.rows
        cursor.sent_bytes += self.sent_bytes
        if cursor_ended:
            self.session.cursor_closed(prepared, error=error)

    def _result_end(self, last: bytes, rows: int | None) -> bool:
        """The OK, EOF or ERR packet that ends a result; True when it ends the answer."""
        error = p.is_err(last)
        if error:
            last = withheld(last, self.decision)
        data, self.seq = p.frame(last, self.seq)
        self.out.append(data)
        return self._ended(error, 0 if error else p.status_of(last), rows)

    def _ended(self, error: bool, status: int, rows: int | None) -> bool:
        """A result ended (its last packet sent, with server ``status`` flags): audited;
        True when it ends the answer."""
        self.succeeded = not error
        if self.rows_only:  # COM_STMT_FETCH: one batch of a cursor's rows
            self._fetched(error or bool(status & SERVER_STATUS_LAST_ROW_SENT), error)
            return True
        duration_ms = (time.perf_counter() - self.started) * 1000.0
        self.session.audit(self.decision, self.index, rows, duration_ms, error, self.sent_bytes)
        if error or not status & SERVER_MORE_RESULTS_EXISTS:
            return True
        self.index += 1
        self.sent_bytes = 0
        self.state = FIRST
        return False
