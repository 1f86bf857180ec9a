"""The native data path (agent/postgres/_fastpath.c): round trips whose decisions are all
cached run in C, from "tickets" this module registers; anything else is handed back to the
Python handlers with the state they would hold at that point (``_fast_resume``)."""

from __future__ import annotations

import logging
from typing import Any

from agent import masking
from agent.audit import BATCH_SIZE
from agent.decision import MASK, Decision
from agent.metrics import LATENCY_BUCKETS
from agent.postgres.audit_trail import AuditTrail
from agent.postgres.normalize import template_key
from agent.postgres.relay import Relay
from agent.postgres.state import ABSENT, Pending, Prepared

log = logging.getLogger("agent.session")

try:  # built by ``python setup.py build_ext --inplace`` (scripts/bootstrap.sh)
    from agent.postgres import _fastpath
except ImportError:  # pragma: no cover - exercised where the extension is not built
    _fastpath = None  # type: ignore[assignment]

_MAX_TICKETS = 1000


def native_path_available() -> bool:
    """Whether the native data path extension is built and importable."""
    return _fastpath is not None


class NativeBridge(AuditTrail):
    """Hands round trips to the native data path and takes them back."""

    def attach_fast_path(self, to_upstream: Relay, to_client: Relay) -> None:
        """Let the native data path handle round trips whose decisions are all cached."""
        if _fastpath is None or not self.agent.config.native:
            return
        self.fast = _fastpath.FastPath(
            self,
            self.agent,
            to_upstream,
            to_client,
            masking.mask_wire_value,
            self.agent.config.masking_key,
            self._fast_resume,
            self.agent.metrics.statements,
            LATENCY_BUCKETS,
            self.agent.audit._wakeup.set,
            BATCH_SIZE,
            Relay.data_received,
        )
        to_upstream.fast = self.fast.client
        to_client.fast = self.fast.backend
        # The transports call these directly: no Python frame per chunk.
        to_upstream.data_received = self.fast.client_received  # type: ignore[method-assign]
        to_client.data_received = self.fast.backend_received  # type: ignore[method-assign]

    def _fast_resume(self, state: tuple[Any, ...]) -> None:
        """The native path hands back the rest of a round trip: the Pending entries the
        Python path would hold at this point, and the armed row masks."""
        if state[0] == "Q":
            _, decision, started, stage, row_mask = state
            entry = Pending("Q", decision=decision, started=started)
            entry.statement_index = 1 if stage == 2 else 0
            self.expect.append(entry)
            self.row_mask = row_mask
            return
        _, remaining, prepared, decision, formats, started, row_mask, portal = state
        if "d" in remaining:
            # The agent's own Describe answered with a new shape (or not yet): a fresh
            # statement learns it, so the shared one's cached masks are never applied to it.
            fresh = Prepared(prepared.sql, decision, generation=prepared.generation)
            for name, known in list(self.statements.items()):
                if known is prepared:
                    self.statements[name] = fresh
            self.portals[portal] = (fresh, formats)
            tickets = self.fast.p_tickets
            for key in [k for k, t in tickets.items() if t[1] is prepared]:
                del tickets[key]
            prepared = fresh
        for kind in remaining:
            if kind == "E":
                entry = Pending("E", prepared, decision, formats, started)
            elif kind == "d":
                entry = Pending("DS", prepared)
            elif kind == "P":  # the native path handles the unnamed statement only
                entry = Pending("P", undo=(self.statements, "", ABSENT))
            elif kind == "B":  # and the unnamed portal
                entry = Pending("B", undo=(self.portals, "", ABSENT))
            else:
                entry = Pending(kind)
            self.expect.append(entry)
        self.row_mask = row_mask

    def _fast_ticket_query(self, text: str, decision: Decision) -> None:
        """Let the native path replay this simple-protocol decision for texts that
        normalize the same way (the Normalizer's template), or for this exact text."""
        if len(decision.statements) > 1 or decision.counted_grants:
            return
        raw = text.encode()
        key = template_key(raw)
        fixed = self.agent.normalizer.fixed_pieces(raw, key)
        tickets = self.fast.q_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[key] = (fixed or ((0, len(raw), raw),), decision, self.agent.generation)

    def _fast_ticket_parse(self, payload: bytes, name: str, prepared: Prepared) -> None:
        """Let the native path replay this Parse (same bytes) with the same statement.
        Only the unnamed statement: a named Parse can fail (the name exists) and leave
        the server's statement in place, which Python undoes (see ``_on_error``)."""
        decision = prepared.decision
        if name or len(decision.statements) > 1 or decision.counted_grants:
            return
        tickets = self.fast.p_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[payload] = (
            name,
            prepared,
            decision,
            self.agent.generation,
            decision.action == MASK,
        )
