"""The native data path (agent/fastpath/, the extension ``_fastpath``): round trips
whose decisions are all cached run in C, from tickets this module registers; anything else
is handed back to the Python handlers with the state they would hold at that point.

This module owns everything the extension may touch: ``Bridge`` is the one object the C
code reads Python state from, ``QueryTicket`` and ``ParseTicket`` are what it replays, and
``agent.extension.ABI_VERSION`` names that contract (the extension is loaded there, for
every protocol, only when built for it).
"""

from __future__ import annotations

import logging
from collections import deque
from functools import partial
from typing import NamedTuple

from agent import masking
from agent.audit import BATCH_SIZE
from agent.extension import ABI_VERSION, extension
from agent.metrics import (
    DECISIONS,
    LATENCY_BUCKETS,
    NATIVE_BUCKETS,
    NATIVE_HANDBACKS,
    NATIVE_STATEMENTS,
)
from agent.normalize import Template
from agent.postgres.audit_trail import AuditTrail
from agent.postgres.messages import COPY_DATA
from agent.postgres.normalize import template_key
from agent.postgres.relay import Relay
from agent.postgres.state import ABSENT, Pending, Prepared, RowMask
from agent.relay_core import socket_fd
from agent.verdicts import MASK, Decision

log = logging.getLogger("agent.native")

_MAX_TICKETS = 1000
_DIGITS = b"0123456789"


_fastpath = extension


def _unpinned(template: Template) -> Template:
    """The template's pieces its key does not pin already: those with a digit.  The ticket
    is found by key, which holds every other byte of the text as it is (only digits 1-9
    read as 0), so a piece without digits always matches; checking it cost ~40
    instructions a piece on every statement (a TPC-B-like round trip has three to nine)."""
    return tuple(piece for piece in template if piece[2].translate(None, _DIGITS) != piece[2])


class QueryTicket(NamedTuple):
    """A simple Query the native path may run: a text whose template (digits read as 0) is
    the ticket's key and whose bytes match ``fixed`` (the (start, end, bytes) pieces around
    the integer constants that hold a digit: see ``_unpinned``) runs under ``decision``
    while ``generation`` is the agent's."""

    fixed: tuple[tuple[int, int, bytes], ...]
    decision: Decision
    generation: int


class ParseTicket(NamedTuple):
    """A Parse of the unnamed statement (its exact payload is the key) the native path may
    run with ``prepared``; ``describe``: the agent Describes it (masked results)."""

    name: str
    prepared: Prepared
    decision: Decision
    generation: int
    describe: bool


class Bridge:
    """The one object the native data path reads Python state from.

    Read once, when ``FastPath(bridge)`` is built (never rebound afterwards):
    ``abi_version``; the session's ``expect`` deque and ``statements``, ``portals``,
    ``origin_masks``, ``audit_fragments`` dicts (the extension adds statements and portals
    like the Python fast path does); ``audit_queue`` (the shipper's list it appends events
    to: agent.audit.QueuedEvent tuples, bytes sent included), ``audit_wakeup`` and
    ``batch_size``; ``audit_journal`` (the shipper's AuditJournal, None without one; its
    ``state`` array, fd, mark and first_seq, held as a buffer: once per upstream chunk that
    completed statements, before that chunk goes to the client, the extension appends the
    record of ``queued[mark:]`` under its ``id_prefix`` to the fd itself and advances mark,
    or calls its ``catch_up`` while the fd is -1); ``native_counts`` and ``native_seconds``
    (agent.metrics.StatementStats' native counters, arrays it holds as buffers and counts a
    statement in as ``observe`` would: ``native_layout`` gives the slots of allow, mask, the
    first of the ``latency_buckets``, native statements and hand-backs); ``mask_value`` and
    ``masking_key`` (cells it cannot mask itself); ``upstream_write`` and ``client_write``
    (the transports' write methods), ``upstream_fd`` and ``client_fd`` (a plain TCP
    transport's socket, else -1: while ``*_closing()`` (is_closing) is False and
    ``*_pending()`` (get_write_buffer_size) is 0 the extension sends on it itself, and hands
    what the socket does not take to ``*_write``); ``hand_back_simple`` /
    ``hand_back_extended`` (a round trip goes back to Python, with the rows and bytes its
    statement sent so far);
    ``client_python`` / ``backend_python`` (a relay's Python data_received), ``client_rest``
    / ``backend_rest`` (what is left of a chunk), ``client_failed`` / ``backend_failed`` (an
    error ends the session).

    Read per round trip: plain fields their owners write, no Python code runs: of
    ``client_relay`` and ``backend_relay`` (the two relays) ``buffer`` (bytes held back)
    and ``busy`` (a slow handler runs); of ``session`` ``discarding`` and
    ``origin_engine`` (the engine ``origin_masks`` were computed under); of ``agent``
    ``generation`` (bumped by a new bundle or DDL: tickets of an older generation are not
    used) and ``engine``.  A relay with bytes held back or busy goes to Python first; a
    session is idle (a round trip may start natively) with nothing in ``expect``, nothing
    discarded and neither relay busy.  Of the objects tickets carry it reads
    ``Decision.action`` and ``.valid_until``, ``Prepared.decision``, ``.described``,
    ``.masks`` and ``.generation``.  These per-trip fields are ``__slots__`` of their classes
    (RelayCore, SessionState, Agent, Decision, Prepared; AuditJournal.id_prefix too): the
    extension reads a slot straight from the instance, and anything else (another type, a
    property) with an ordinary attribute lookup.
    """

    abi_version = ABI_VERSION
    batch_size = BATCH_SIZE
    latency_buckets = LATENCY_BUCKETS

    def __init__(self, session: NativePath, to_upstream: Relay, to_client: Relay) -> None:
        agent = session.agent
        self.session, self.agent = session, agent
        self.client_relay, self.backend_relay = to_upstream, to_client
        self.expect: deque[Pending] = session.expect
        self.statements = session.statements
        self.portals = session.portals
        self.origin_masks = session._origin_masks
        self.audit_fragments = session._audit_fragments
        self.audit_queue = agent.audit.queued
        self.audit_wakeup = agent.audit.wake
        self.audit_journal = agent.audit.journal
        stats = agent.metrics.statements
        self.native_counts = stats.native
        self.native_seconds = stats.native_seconds
        self.native_layout = (
            DECISIONS.index("allow"),
            DECISIONS.index("mask"),
            NATIVE_BUCKETS,
            NATIVE_STATEMENTS,
            NATIVE_HANDBACKS,
        )
        self.mask_value = masking.mask_wire_value
        self.masking_key = agent.config.masking_key
        self.upstream_write = to_upstream.sink.write
        self.client_write = to_client.sink.write
        self.upstream_fd = socket_fd(to_upstream.sink)
        self.client_fd = socket_fd(to_client.sink)
        if self.upstream_fd >= 0:
            self.upstream_pending = to_upstream.sink.get_write_buffer_size
            self.upstream_closing = to_upstream.sink.is_closing
        if self.client_fd >= 0:
            self.client_pending = to_client.sink.get_write_buffer_size
            self.client_closing = to_client.sink.is_closing
        self.hand_back_simple = session.hand_back_simple
        self.hand_back_extended = session.hand_back_extended
        # The relays' own data_received, before the extension's replaces them.
        self.client_python = to_upstream.data_received
        self.backend_python = to_client.data_received
        self.client_rest = to_upstream.process_safely
        self.backend_rest = to_client.process_safely
        self.client_failed = to_upstream.finish
        self.backend_failed = to_client.finish


class NativePath(AuditTrail):
    """Hands round trips to the native data path and takes them back."""

    def attach_fast_path(self, to_upstream: Relay, to_client: Relay) -> None:
        """Let the native data path handle round trips whose decisions are all cached."""
        if _fastpath is None or not self.agent.config.native:
            return
        try:
            self.fast = _fastpath.FastPath(Bridge(self, to_upstream, to_client))
        except RuntimeError as exc:  # another bridge ABI: never run a different contract
            log.warning("native data path not used: %s", exc)
            return
        to_upstream.fast = self.fast.client
        to_client.fast = self.fast.backend
        # The transports call these directly: no Python frame per chunk.
        to_upstream.data_received = self.fast.client_received  # type: ignore[method-assign]
        to_client.data_received = self.fast.backend_received  # type: ignore[method-assign]

    def read_sockets(self, to_upstream: Relay, to_client: Relay) -> None:
        """Once the relays are their transports' protocols: the native path reads plain
        sockets itself (one recv() into a C buffer per wake-up, not uvloop's read callback,
        a bytes object, a context and a protocol call; ~1,600 instructions a chunk) and
        feeds the same entry as ``*_received``.  TLS transports keep their own reading."""
        fast = self.fast
        if fast is None:
            return
        to_upstream.read_itself(fast.client_readable, partial(fast.read_from, False))
        to_client.read_itself(fast.backend_readable, partial(fast.read_from, True))

    def _masked_run(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """The run of DataRows (or COPY rows) of ``data`` from ``pos``, masked with the
        armed row masks in one native call (None: no masks, the rows pass as they are), and
        its end; the Python data path's rows (``Relay.rows``).  Counted as sent."""
        assert _fastpath is not None
        key = self.agent.config.masking_key
        masked: bytes | None
        if data[pos] == COPY_DATA:
            copy_mask = self.copy_mask
            if copy_mask is None:
                masked, end, rows = _fastpath.mask_copy_rows(data, pos, None, (), key)
            elif self.copy_header_pending:  # the header line goes through the step
                return None, pos
            else:
                row_mask, form = copy_mask
                masked, end, rows = _fastpath.mask_copy_rows(
                    data, pos, row_mask, form.native(), key
                )
        else:
            masked, end, rows = _fastpath.mask_rows(data, pos, self.row_mask, key)
        self.count_sent(rows, (end - pos if masked is None else len(masked)) - 5 * rows)
        return masked, end

    def hand_back_simple(
        self,
        decision: Decision,
        started: float,
        stage: int,
        row_mask: RowMask | None,
        sent_rows: int,
        sent_bytes: int,
    ) -> None:
        """The native path hands back a simple Query: ``stage`` 2 means its CommandComplete
        (and audit event) came already; ``sent_*``: its result data sent so far."""
        self.count_sent(sent_rows, sent_bytes)
        entry = Pending("Q", decision=decision, started=started)
        entry.statement_index = 1 if stage == 2 else 0
        self.expect.append(entry)
        self.row_mask = row_mask

    def hand_back_extended(
        self,
        remaining: str,
        prepared: Prepared,
        decision: Decision,
        formats: tuple[int, ...],
        started: float,
        row_mask: RowMask | None,
        portal: str,
        sent_rows: int,
        sent_bytes: int,
    ) -> None:
        """The native path hands back the rest of an extended round trip: the Pending
        entries the Python path would hold at this point (``remaining``: P d B D E S, with d
        the agent's own Describe), the armed row masks and the Execute's result data sent
        so far."""
        self.count_sent(sent_rows, sent_bytes)
        if "d" in remaining:
            prepared = self._fresh_statement(prepared, decision, formats, portal)
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

    def _fresh_statement(
        self, prepared: Prepared, decision: Decision, formats: tuple[int, ...], portal: str
    ) -> Prepared:
        """The agent's own Describe answered with a new shape (or not yet): a fresh statement
        learns it, so the shared one's cached masks are never applied to it."""
        fresh = Prepared(prepared.sql, decision, generation=prepared.generation)
        for name, known in list(self.statements.items()):
            if known is prepared:
                self.statements[name] = fresh
        self.portals[portal] = (fresh, formats)
        tickets = self.fast.p_tickets
        for key in [k for k, t in tickets.items() if t.prepared is prepared]:
            del tickets[key]
        return fresh

    def _fast_ticket_query(self, text: str, decision: Decision) -> None:
        """Let the native path replay this simple-protocol decision for texts that
        normalize the same way (the Normalizer's template), or for this exact text."""
        if len(decision.statements) > 1 or decision.counted_grants:
            return
        raw = text.encode()
        key = template_key(raw)
        template = self.agent.normalizer.fixed_pieces(raw, key) or ((0, len(raw), raw),)
        fixed = _unpinned(template)
        tickets = self.fast.q_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[key] = QueryTicket(fixed, decision, self.agent.generation)

    def _fast_ticket_parse(self, payload: bytes, name: str, prepared: Prepared) -> None:
        """Let the native path replay this Parse (same bytes) with the same statement.
        Only the unnamed statement: a named Parse can fail (the name exists) and leave
        the server's statement in place, which Python undoes (see ``names.undo_refused``)."""
        decision = prepared.decision
        if name or len(decision.statements) > 1 or decision.counted_grants:
            return
        tickets = self.fast.p_tickets
        if len(tickets) >= _MAX_TICKETS:
            tickets.clear()
        self._fragment(decision, 0, decision.action)
        tickets[payload] = ParseTicket(
            name, prepared, decision, self.agent.generation, decision.action == MASK
        )
