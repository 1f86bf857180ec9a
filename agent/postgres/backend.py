"""Upstream → client: an ordered queue of expected responses (one entry per forwarded message
that the server answers) tells which result a DataRow belongs to, so rows are rewritten only
for result sets that contain masked columns."""

from __future__ import annotations

from typing import Any

from agent.postgres import codec
from agent.postgres.audit_trail import AuditTrail
from agent.postgres.masks import ResultMasks, active_masks
from agent.postgres.messages import (
    BIND_COMPLETE,
    CLOSE_COMPLETE,
    COMMAND_COMPLETE,
    COPY_DATA,
    COPY_IN_RESPONSE,
    COPY_OUT_DONE,
    COPY_OUT_RESPONSE,
    DATA_ROW,
    EMPTY_QUERY_RESPONSE,
    ERROR_RESPONSE,
    NO_DATA,
    NOTICE_RESPONSE,
    PARAMETER_DESCRIPTION,
    PARAMETER_STATUS,
    PARSE_COMPLETE,
    PORTAL_SUSPENDED,
    READY_FOR_QUERY,
    ROW_DESCRIPTION,
)
from agent.postgres.names import settle_accepted, undo_refused
from agent.postgres.pinned import check_pinned_setting
from agent.postgres.state import SLOW, Pending
from agent.postgres.withhold import withheld_error, withheld_notice

_SIMPLE_COMPLETIONS = frozenset({PARSE_COMPLETE, BIND_COMPLETE, CLOSE_COMPLETE, NO_DATA})
_COMPLETIONS = _SIMPLE_COMPLETIONS | {PORTAL_SUSPENDED, EMPTY_QUERY_RESPONSE}
# Handled by _on_backend_fast (the rest of the messages a response entry ends with)
_HANDLED = _COMPLETIONS | {
    READY_FOR_QUERY,
    ERROR_RESPONSE,
    COMMAND_COMPLETE,
    ROW_DESCRIPTION,
    PARAMETER_DESCRIPTION,
}


class BackendHandlers(ResultMasks, AuditTrail):
    """The server's messages."""

    def _backend_step(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        if kind == DATA_ROW:  # the hot path (without the native extension)
            if self.row_mask is not None:
                masked = self._mask_row(data[pos + 5 : end], self.row_mask)
                self.count_sent(1, len(masked) - 5)
                return masked
            self.count_sent(1, end - pos - 5)
            return None
        if kind in _HANDLED:
            return self._on_backend_fast(kind, data, pos, end)
        if kind == COPY_DATA:
            line = self._mask_copy_data(data[pos + 5 : end])
            self.count_sent(1, (end - pos if line is None else len(line)) - 5)
            return line
        if kind == COPY_OUT_RESPONSE:
            self._on_copy_out(data[pos + 5 : end])
        elif kind == COPY_OUT_DONE:
            self.copy_mask = None
        if kind == PARAMETER_STATUS:
            check_pinned_setting(data[pos + 5 : end])
        elif kind == NOTICE_RESPONSE and self.expect:  # warnings quote values too
            return withheld_notice(self.expect[0].decision, data[pos + 5 : end])
        elif kind == COPY_IN_RESPONSE:
            self._on_copy_in()
        return None

    async def _backend_slow(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        return await self._on_backend_message(kind, data, pos, end)

    def _on_copy_in(self) -> None:
        """The server entered copy-in mode: the Syncs the client sent into it are ignored."""
        expect = self.expect
        if not expect:
            return
        head = expect[0]
        kept = [entry for entry in expect if entry.copy_of is not head]
        if len(kept) != len(expect):
            expect.clear()
            expect.extend(kept)
        if self._copy_owner is head:
            self._copy_in_active = True

    def _on_backend_fast(self, kind: int, data: bytes, pos: int, end: int) -> Any:
        """Responses that need no masking work, without a coroutine (see _on_client_fast).
        Returns ``SLOW`` before changing any state when the async handler is needed."""
        expect = self.expect
        if not expect:
            return None
        head = expect[0]
        head_kind = head.kind
        if kind == COMMAND_COMPLETE:
            rows = codec.rows_from_tag(codec.command_tag(data[pos + 5 : end]))
            if head_kind == "E":
                armed = self._armed_after_head()
                if armed is SLOW:
                    return SLOW
                expect.popleft()
                self._execute_done(head, rows, error=False)
                self.row_mask = armed
                return None
            self.row_mask = None
            if head_kind == "Q":
                self._statement_done(head, rows, error=False)
            return None
        if kind == READY_FOR_QUERY:
            if head.inject:
                return SLOW
            return self._pop_head()
        if kind == ROW_DESCRIPTION:
            if head_kind == "Q" and head.decision is not None:
                # Every simple-protocol result set gets its columns' origins checked, also
                # for allowed statements (defence in depth); cached per RowDescription.
                if self.origin_engine is not self.agent.engine:
                    return SLOW
                cached = self._origin_masks.get((id(head.decision), data[pos + 5 : end]))
                if cached is None or cached[0] is not head.decision:
                    return SLOW
                self.row_mask = cached[1]
                return None
            if head_kind == "D":  # the client's Describe
                return self._pop_head()
            if head_kind == "DS":  # the agent's own Describe: learn the shape, swallow it
                armed = self._armed_after_head()
                if armed is SLOW:
                    return SLOW
                expect.popleft()
                assert head.prepared is not None
                head.prepared.fields = self._row_description(data[pos + 5 : end])
                head.prepared.described = data[pos + 5 : end]
                self.row_mask = armed
                return b""
            return SLOW
        if kind == PARAMETER_DESCRIPTION and head_kind == "DS":  # of the agent's own Describe
            return b""
        if kind in _SIMPLE_COMPLETIONS and head_kind in ("P", "B", "C", "D"):
            if head.confirm is not None:
                return SLOW
            return self._pop_head()
        return SLOW

    def _row_description(self, payload: bytes) -> list[codec.FieldDescription]:
        """Parsed RowDescription, cached by its bytes: a re-prepared statement's shape
        comes back identical every time (the agent Describes it after each Parse)."""
        described = self._described
        fields = described.get(payload)
        if fields is None:
            if len(described) > 256:
                described.clear()
            fields = described[payload] = codec.parse_row_description(payload)
        return fields

    def _pop_head(self) -> Any:
        """Pop the head entry and arm the next one's row masks (``SLOW`` if not cached)."""
        armed = self._armed_after_head()
        if armed is SLOW:
            return SLOW
        self.expect.popleft()
        self.row_mask = armed
        return None

    async def _on_backend_message(self, kind: int, data: bytes, pos: int, end: int) -> bytes | None:
        expect = self.expect
        head = expect[0] if expect else None
        if head is None:
            return None
        if kind == READY_FOR_QUERY:
            expect.popleft()
            self.row_mask = None
            if head.inject and not head.error_seen:
                return b"".join(head.inject) + data[pos:end]
            return None
        if kind == ERROR_RESPONSE:
            self._on_error(head)
            return withheld_error(head.decision, data[pos + 5 : end])
        if kind == COMMAND_COMPLETE:
            tag = codec.command_tag(data[pos + 5 : end])
            rows = codec.rows_from_tag(tag)
            self.row_mask = None
            if head.kind == "Q":
                self._statement_done(head, rows, error=False)
            elif head.kind == "E":
                expect.popleft()
                self._execute_done(head, rows, error=False)
                await self._advance()
            return None
        if kind == ROW_DESCRIPTION:
            return await self._on_row_description(head, data[pos + 5 : end])
        if kind in _COMPLETIONS:
            if kind == NO_DATA and head.kind == "DS":
                expect.popleft()
                assert head.prepared is not None
                head.prepared.fields = []
                await self._advance()
                return b""
            if kind == EMPTY_QUERY_RESPONSE and head.kind == "Q":
                self._statement_done(head, 0, error=False)
                return None
            expect.popleft()
            settle_accepted(head)
            self.row_mask = None
            if head.kind == "E":  # suspended: the batch was the Execute's row limit
                rows = head.rows if kind == PORTAL_SUSPENDED else None
                self._execute_done(head, rows, error=False)
            await self._advance()
            return None
        if kind == PARAMETER_DESCRIPTION and head.kind == "DS":  # of our own Describe
            return b""
        return None

    def _on_error(self, head: Pending) -> bytes | None:
        expect = self.expect
        self.row_mask = self.copy_mask = None
        if head.kind == "Q":
            head.error_seen = True
            self._statement_done(head, None, error=True)
            return None
        if head.kind == "S":
            head.error_seen = True
            return None
        # Extended protocol: the server now skips messages until Sync.
        expect.popleft()
        if head.kind == "E":
            self._execute_done(head, None, error=True)
        refused = [head]
        while expect and expect[0].kind != "S":
            refused.append(expect.popleft())
        if expect:
            expect[0].error_seen = True
        undo_refused(refused)
        return None

    async def _on_row_description(self, head: Pending, payload: bytes) -> bytes | None:
        if head.kind == "DS":
            self.expect.popleft()
            assert head.prepared is not None
            head.prepared.fields = self._row_description(payload)
            head.prepared.described = payload
            await self._advance()
            return b""
        if head.kind == "D":
            self.expect.popleft()
            await self._advance()
            return None
        if head.kind == "Q" and head.decision is not None:
            fields = codec.parse_row_description(payload)
            binary = [f.format_code == 1 for f in fields]
            self.row_mask = active_masks(await self._column_masks(fields, head.decision, binary))
            if self.origin_engine is not self.agent.engine or len(self._origin_masks) > 500:
                self._origin_masks.clear()
                self.origin_engine = self.agent.engine
            self._origin_masks[(id(head.decision), payload)] = (head.decision, self.row_mask)
        return None
