"""Which columns of a result are masked, and how: from each output column's origin (the
table OID and attribute number RowDescription names) and the decision's analysis, cached
per result shape; and the DataRow rewrite that applies them."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time
from typing import Any

from agent import masking
from agent.postgres import codec
from agent.postgres.catalog import BASE_RELKINDS
from agent.postgres.copy import mask_copy_row
from agent.postgres.messages import COPY_DATA, DATA_ROW
from agent.postgres.state import SLOW, MaskSpec, Pending, SessionRefused, SessionState
from agent.postgres.upstream import UpstreamError
from agent.verdicts import ALLOW, DENY, MASK, Decision

_UNPACK_INT = struct.Struct("!i").unpack_from
_UNPACK_SHORT = struct.Struct("!h").unpack_from
_PACK_INT = struct.Struct("!i").pack
_PACK_HEADER = struct.Struct("!Bi").pack  # a message's type code and length
_NULL_VALUE = b"\xff\xff\xff\xff"
MAX_RESULT_COLUMNS = 1664  # PostgreSQL's limit on a result's columns
COPY_SHAPE = ("copy",)  # the key of a COPY's column masks in Decision.mask_cache


class ResultMasks(SessionState):
    """Row masks of the results this session relays."""

    def _portal_mask_if_head(self, payload: bytes) -> Any:
        """Row masks for an Execute that will be the head entry (a portal run in a later
        round trip of a transaction block, or after a suspension): from caches only, else
        ``SLOW``; None when it needs none."""
        prepared, formats = self.portals.get(codec.parse_execute(payload), (None, ()))
        if prepared is None or prepared.decision.action != MASK:
            return None
        return self._cached_portal_mask(Pending("E", prepared, prepared.decision, formats))

    def _armed_after_head(self) -> Any:
        """Row masks for the entry after the head, when it is a masked Execute: from
        caches only, else ``SLOW``; None when it needs none."""
        expect = self.expect
        if len(expect) < 2:
            return None
        following = expect[1]
        if (
            following.kind == "E"
            and following.decision is not None
            and following.decision.action == MASK
        ):
            return self._cached_portal_mask(following)
        return None

    def _cached_portal_mask(self, entry: Pending) -> Any:
        """Row masks for a masked Execute from caches only, else ``SLOW``."""
        prepared = entry.prepared
        if prepared is None or prepared.fields is None:
            return SLOW
        masks = prepared.masks.get(entry.formats)
        if masks is None:
            fields = prepared.fields
            binary = tuple(result_format(entry.formats, i) == 1 for i in range(len(fields)))
            shape = (tuple((f.table_oid, f.attnum, f.type_oid) for f in fields), binary)
            masks = prepared.decision.mask_cache.get(shape)
            if masks is None:
                return SLOW
            prepared.masks[entry.formats] = masks
        return active_masks(masks)

    async def _advance(self) -> None:
        """A new head entry: arm DataRow masking for an Execute that needs it."""
        if not self.expect:
            return
        head = self.expect[0]
        if head.kind == "E" and head.decision is not None and head.decision.action == MASK:
            self.row_mask = await self._portal_mask(head)

    async def _portal_mask(self, entry: Pending) -> list[tuple[int, MaskSpec]] | None:
        prepared = entry.prepared
        if prepared is None or prepared.fields is None:
            # The result shape was never learned (the agent Describes every masked statement
            # after Parse, so this is defence in depth): no column goes out unmasked.
            return [
                (index, ("redact", None, 0, result_format(entry.formats, index) == 1))
                for index in range(MAX_RESULT_COLUMNS)
            ]
        formats = entry.formats
        if formats not in prepared.masks:
            fields = prepared.fields
            binary = [result_format(formats, i) == 1 for i in range(len(fields))]
            prepared.masks[formats] = await self._column_masks(fields, prepared.decision, binary)
        return active_masks(prepared.masks[formats])

    async def _column_masks(
        self,
        fields: list[codec.FieldDescription],
        decision: Decision,
        binary: list[bool],
    ) -> list[MaskSpec | None]:
        """Per output column: how to mask it, from its origin or, without one, the analysis."""
        shape = (tuple((f.table_oid, f.attnum, f.type_oid) for f in fields), tuple(binary))
        cached = decision.mask_cache.get(shape)
        if cached is None:
            cached = await self._compute_column_masks(fields, decision, binary)
            decision.mask_cache[shape] = cached
        return cached

    async def _compute_column_masks(
        self,
        fields: list[codec.FieldDescription],
        decision: Decision,
        binary: list[bool],
    ) -> list[MaskSpec | None]:
        agent, identity = self.agent, self.identity
        engine = agent.engine
        assert identity is not None
        keys = {(f.table_oid, f.attnum) for f in fields if f.table_oid}
        origins = await agent.catalog.origins(keys) if keys else {}
        view_oids = {oid for (oid, _), o in origins.items() if o.relkind not in BASE_RELKINDS}
        view_deps = await agent.catalog.view_deps_for_oids(view_oids) if view_oids else {}
        derived = decision.derived_positions
        direct = decision.direct_masked_positions
        specs: list[MaskSpec | None] = []
        for index, f in enumerate(fields):
            method: str | None = None
            param: int | None = None
            if f.table_oid:
                origin = origins.get((f.table_oid, f.attnum))
                if origin is None or engine is None:
                    method = "redact"
                else:
                    verdict = engine.column_verdict(
                        identity, origin.schema, origin.table, origin.column, decision.fingerprint
                    )
                    known = (origin.schema, origin.table, origin.column) in engine.bundle.columns
                    if origin.relkind not in BASE_RELKINDS and not known:
                        for schema, table, column in view_deps.get(f.table_oid, []):
                            dep = (
                                engine.relation_verdict(
                                    identity, schema, table, decision.fingerprint, time.time()
                                )[0]
                                if column is None
                                else engine.column_verdict(
                                    identity, schema, table, column, decision.fingerprint
                                )
                            )
                            if dep.action != ALLOW:
                                verdict = dep
                                break
                        if verdict.action != ALLOW:
                            method = "redact"
                    elif verdict.action == MASK:
                        method, param = verdict.method, verdict.param
                    elif verdict.action != ALLOW:
                        method = "null"
            elif derived is None or index in derived or direct is None or index in direct:
                method = "redact"
            specs.append(None if method is None else (method, param, f.type_oid, binary[index]))
        return specs

    async def _copy_decision(self, decision: Decision) -> Decision:
        """A masked COPY … TO STDOUT: its column masks learned (Describe of its query on the
        catalog connection, under this session's search_path) and cached on the decision
        for the rows (see ``_on_copy_out``); or the refusal saying why they cannot be."""
        form = decision.copy_out
        why = form.refusal()
        if why is not None:  # say which columns the policy masks, and by which rule
            masked = ", ".join(decision.masked_columns) or "a masked column"
            why = f"{why} ({masked}: masked by {decision.rule or 'policy'})"
        if why is None and len(decision.statements) > 1:
            why = "a COPY of masked columns must be sent as a statement of its own"
        if why is not None:
            return refused(decision, why, "42501")
        if COPY_SHAPE in decision.mask_cache:
            return decision
        try:
            fields = await self.agent.catalog.describe(form.describe_sql, self.search_path)
        except (UpstreamError, OSError, asyncio.IncompleteReadError) as exc:
            why = f"the columns of this COPY could not be learned to mask them ({exc})"
            return refused(decision, why, "42501")
        binary = [False] * len(fields)
        decision.mask_cache[COPY_SHAPE] = await self._column_masks(fields, decision, binary)
        return decision

    def _on_copy_out(self, payload: bytes) -> None:
        """CopyOutResponse: arm the row masks of a masked COPY (every column redacted when
        the shape learned does not match: fail closed); binary rows cannot be masked."""
        self.copy_mask, self.copy_header_pending = None, False
        decision = self.expect[0].decision if self.expect else None
        if decision is None or decision.action != MASK or decision.copy_out is None:
            return
        columns = _UNPACK_SHORT(payload, 1)[0]
        if payload[0] != 0:
            raise SessionRefused("0A000", "binary COPY output of masked columns cannot be masked")
        specs = decision.mask_cache.get(COPY_SHAPE)
        if specs is None or len(specs) != columns:
            specs = [("redact", None, 0, False)] * columns
        row_mask = active_masks(specs)
        if row_mask is not None:
            self.copy_mask = (row_mask, decision.copy_out)
            self.copy_header_pending = decision.copy_out.header

    def _mask_copy_data(self, payload: bytes) -> bytes | None:
        """One CopyData row of a masked COPY, rewritten (the header line passes)."""
        if self.copy_mask is None:
            return None
        if self.copy_header_pending:
            self.copy_header_pending = False
            return None
        row_mask, form = self.copy_mask
        line = mask_copy_row(payload, row_mask, form, self.agent.config.masking_key)
        return _PACK_HEADER(COPY_DATA, len(line) + 4) + line

    def _mask_row(self, payload: bytes, row_mask: list[tuple[int, MaskSpec]]) -> bytes:
        """The DataRow with its masked columns rewritten; the other values are copied as
        byte ranges, not decoded (NULL stays NULL)."""
        key = self.agent.config.masking_key
        count = _UNPACK_SHORT(payload, 0)[0]
        parts: list[bytes] = []
        span, offset = 0, 2
        column = 0
        for index, (method, param, type_oid, binary) in row_mask:
            if index >= count:
                break
            while column < index:  # skip to the masked column
                length = _UNPACK_INT(payload, offset)[0]
                offset += 4 + (length if length > 0 else 0)
                column += 1
            length = _UNPACK_INT(payload, offset)[0]
            column += 1
            if length < 0:
                offset += 4
                continue
            raw = payload[offset + 4 : offset + 4 + length]
            masked = masking.mask_wire_value(method, raw, type_oid, param, key, binary)
            parts.append(payload[span:offset])
            parts.append(_NULL_VALUE if masked is None else _PACK_INT(len(masked)) + masked)
            offset += 4 + length
            span = offset
        parts.append(payload[span:])
        body = b"".join(parts)
        return _PACK_HEADER(DATA_ROW, len(body) + 4) + body


def result_format(formats: tuple[int, ...], index: int) -> int:
    if not formats:
        return 0
    if len(formats) == 1:
        return formats[0]
    return formats[index] if index < len(formats) else 0


def active_masks(specs: list[MaskSpec | None] | None) -> list[tuple[int, MaskSpec]] | None:
    if not specs:
        return None
    active = [(i, spec) for i, spec in enumerate(specs) if spec is not None]
    return active or None


def refused(decision: Decision, why: str, sqlstate: str) -> Decision:
    """A copy of ``decision`` (the statement it audits) refusing it for ``why``."""
    return dataclasses.replace(
        decision, action=DENY, rule="masked_copy", message=why, sqlstate=sqlstate, mask_cache={}
    )
