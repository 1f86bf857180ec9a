"""The masks of a result's columns, per result shape (its column definitions) and decision:
each column's origin (MySQL's definitions name schema, table and column) checked against
the policy, then the static flow analysis for outputs without a base-table origin.
Computed once per shape and decision, then served from the cache without awaiting.
"""

from __future__ import annotations

import logging

from agent.mysql.results import Shape
from agent.mysql.rows import REDACT, ColumnDef, Mask, native_mask_rows, native_row_mask
from agent.mysql.server import CATALOG_ERRORS
from agent.mysql.state import SessionState
from agent.verdicts import DENY, HOLD, MASK, Decision

log = logging.getLogger("agent.mysql")


class ResultMasks(SessionState):
    def cached_shape(self, decision: Decision, definitions: list[bytes]) -> Shape | None:
        """The masks and types of a result shape seen before under this decision."""
        return self.cached_shape_of(decision, b"\x00".join(definitions))

    def cached_shape_of(self, decision: Decision, key: bytes) -> Shape | None:
        """``cached_shape`` by the definitions joined with b"\\x00"."""
        cached = self._masks.get((id(decision), key))
        if cached is not None and cached[0] is decision:
            return cached[1]
        return None

    async def masks_for(self, decision: Decision, definitions: list[bytes]) -> Shape:
        key = (id(decision), b"\x00".join(definitions))
        columns = [ColumnDef.parse(d) for d in definitions]
        types = [c.type for c in columns]
        masks = [
            await self._column_mask(decision, position, c) for position, c in enumerate(columns)
        ]
        found = masks if any(m is not None for m in masks) else None
        native = None
        if found is not None and native_mask_rows is not None and self.agent.config.native:
            native = native_row_mask(found, types)
        if len(self._masks) > 1000:
            self._masks.clear()
        shape = self._masks[key] = (decision, (found, types, native))
        return shape[1]

    async def _column_mask(
        self, decision: Decision, position: int, column: ColumnDef
    ) -> Mask | None:
        """Origin first (the column definition names schema, table and column), then the
        static flow analysis for outputs without a base-table origin."""
        engine = self.agent.engine
        assert engine is not None and self.identity is not None
        base = bool(column.org_table and column.org_name and column.schema) and (
            f"{column.schema}.{column.org_table}" in decision.tables_read
        )
        if base:
            try:
                base = not await self.agent.mysql_catalog.is_view(column.schema, column.org_table)
            except CATALOG_ERRORS as exc:
                # The rows already come: without the catalog, redact (fail closed) rather
                # than end the session or trust a view's column as a base table's.
                log.error("catalog lookup failed while masking a result: %r", exc)
                return REDACT
        origin: Mask | None = None
        if base:
            verdict = engine.column_verdict(
                self.identity,
                column.schema,
                column.org_table,
                column.org_name,
                decision.fingerprint,
            )
            if verdict.action == MASK:
                origin = Mask(verdict.method, verdict.param)
            elif verdict.action in (DENY, HOLD):
                origin = REDACT  # the analysis should have refused; fail closed
        derived = decision.derived_positions
        direct = decision.direct_masked_positions
        if derived is None or position in derived:
            return REDACT if origin is None or derived is not None else origin
        if not base and (direct is None or position in direct):
            return REDACT
        return origin
