"""What one client connection knows: its prepared statements and portals, the responses it
expects from upstream, the row masks in force.  ``SessionState`` holds it; the handler
classes (frontend, backend, holds, audit trail, native bridge) are built on it and
``agent.postgres.session.Session`` combines them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.logins import ReportedLogin
from agent.postgres import codec
from agent.postgres.upstream import UpstreamConnection
from agent.relations import SessionRelations
from agent.verdicts import ALLOW, MASK, Decision, Identity

if TYPE_CHECKING:
    from agent.postgres.proxy import PostgresAgent

# Per-column mask spec: (method, param, type oid, binary format)
MaskSpec = tuple[str, int | None, int, bool]
# Per masked column of a result: (column index, its mask spec)
RowMask = list[tuple[int, MaskSpec]]

# A handler's answer "this needs the async (slow) handler"; given before any state changes.
SLOW: Any = object()
# The name was not bound before (see ``agent.postgres.names``).
ABSENT: Any = object()
PASS = frozenset({ALLOW, MASK})


class ClientGone(Exception):
    pass


class SessionRefused(Exception):
    """The session cannot go on safely; the client gets this FATAL error."""

    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate, self.text = sqlstate, text


@dataclass(slots=True)
class Prepared:
    """A protocol-level prepared statement (Parse)."""

    sql: str
    decision: Decision
    fields: list[codec.FieldDescription] | None = None
    # The RowDescription bytes ``fields`` came from (the agent's own Describe).
    described: bytes | None = None
    # Agent.generation when ``decision`` was made: a new bundle or DDL decides again.
    generation: int = -1
    masks: dict[tuple[int, ...], list[MaskSpec | None] | None] = field(default_factory=dict)


@dataclass(slots=True)
class Pending:
    """One expected response (or response group) from upstream."""

    kind: str  # P B D DS E C S Q
    prepared: Prepared | None = None
    decision: Decision | None = None
    formats: tuple[int, ...] = ()
    started: float = 0.0
    inject: list[bytes] | tuple[()] = ()
    error_seen: bool = False
    statement_index: int = 0
    rows: int | None = None
    # Parse/Bind: (statements or portals, name, the entry it replaced or _ABSENT), undone
    # when the server refuses the message or skips it after an earlier error.
    undo: tuple[dict[str, Any], str, Any] | None = None
    # A named statement or portal bound again while the agent knows an older one: the
    # server refuses that (42P05/42P03) unless the older one is gone.  Past this message's
    # Sync, until the answer comes, the agent cannot tell which one the server holds, so
    # the name stays unknown (refused) until then; this is the new value to install.
    confirm: Any = None
    # A Sync sent after a COPY ... FROM STDIN (this entry) and before the client's CopyDone or
    # CopyFail: the server ignores it if it did enter copy-in mode (CopyInResponse).
    copy_of: Any = None


class SessionState:
    """One connection's state, shared by the handler classes built on it."""

    # Read by the native data path every round trip (a slot is read straight from the
    # instance: fastpath field_get); other attributes as usual.
    __slots__ = ("__dict__", "__weakref__", "discarding", "origin_engine")

    agent: PostgresAgent

    def __init__(
        self,
        agent: PostgresAgent,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.agent = agent
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.identity: Identity | None = None
        self.upstream: UpstreamConnection | None = None
        # expect, statements, portals, _origin_masks and _audit_fragments are changed in
        # place, never rebound: the native data path holds on to them.
        self.expect: deque[Pending] = deque()
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, tuple[Prepared | None, tuple[int, ...]]] = {}
        self.discarding = False
        self.discard_error: list[bytes] = []
        self.row_mask: list[tuple[int, MaskSpec]] | None = None
        # COPY … TO STDOUT in progress with masked columns: (row masks, its CopyFormat), and
        # whether its HEADER line (column names, not masked) is still to come.
        self.copy_mask: tuple[list[tuple[int, MaskSpec]], Any] | None = None
        self.copy_header_pending = False
        # Result data sent to the client for the statement in flight (DataRows or CopyData,
        # and their payload bytes after masking): its audit event records them.
        self.sent_rows = 0
        self.sent_bytes = 0
        self.search_path: tuple[str, ...] | None = None
        self.cancel_key: tuple[int, int] | None = None
        # A login the control plane audited as accepted, until the session starts (if it
        # never does, the login is followed up as abandoned), and the last FATAL's text.
        self.reported_login: ReportedLogin | None = None
        self.refusal = ""
        self._audit_fragments: dict[tuple[int, int, str], tuple[Decision, str]] = {}
        self._origin_masks: dict[
            tuple[int, bytes], tuple[Decision, list[tuple[int, MaskSpec]] | None]
        ] = {}
        # The engine _origin_masks were computed under (read by the native path too).
        self.origin_engine: Any = None
        self._described: dict[bytes, list[codec.FieldDescription]] = {}
        self.fast: Any = None  # the native data path, when built and enabled
        # COPY FROM STDIN: the entry whose copy-in a Sync may fall into, and whether the
        # server is in copy-in mode now (it ignores Sync and Flush there).
        self._copy_owner: Pending | None = None
        self._copy_in_active = False
        # SQL PREPAREs made through the agent: name -> (the text that prepared it, its
        # decision, the engine that made it). EXECUTE re-runs a plan the agent checked only
        # then: that decision must still hold.
        self._sql_prepared: dict[str, tuple[str, Decision, Any]] = {}
        self._sql_cursors: dict[str, tuple[str, Decision, Any]] = {}  # DECLAREd, likewise
        # Relations this session created, renamed or moved: the agent's catalog connection
        # does not see them while its transaction is open (agent/relations.py).
        self.session_relations = SessionRelations()

    def _fatal(self, code: str, text: str) -> None:
        self.refusal = text
        self.writer.write(codec.error_response(code, text, severity="FATAL"))

    async def _decide(self, sql: str) -> Decision:
        assert self.identity is not None
        decision = await self.agent.decide(
            self.identity, sql, self.search_path, self.session_relations
        )
        return await self.agent.row_limits_checked(decision, sql, self.search_path)
