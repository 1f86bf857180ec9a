"""What a decision says: the identity asking, per-column verdicts, the decision for one
statement and the row-limit guardrails it carries (no policy logic: see agent/decision.py).

Precedence everywhere: deny > require_approval (hold) > mask > allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.analysis import CreatedRelation

ALLOW, MASK, HOLD, DENY = "allow", "mask", "hold", "deny"
ACTION_STRENGTH = {ALLOW: 0, MASK: 1, HOLD: 2, DENY: 3}
RULE_ACTIONS = {"allow": ALLOW, "mask": MASK, "require_approval": HOLD, "deny": DENY}
DECISION_TTL = 30.0
# The guardrail kind judged on the planner's estimate of the rows a write changes
# (agent/row_limits.py); analysers mark UPDATE/DELETE/MERGE statements with it.
ROWS_OVER_LIMIT = "rows_over_limit"


@dataclass(frozen=True)
class RowLimit:
    """A rows_over_limit guardrail in force for a decision: more than ``max_rows`` estimated
    changed rows is refused with ``action`` (DENY or HOLD) under ``rule``."""

    max_rows: int
    action: str
    rule: str
    name: str


@dataclass(frozen=True)
class Identity:
    name: str
    kind: str = "user"
    groups: frozenset[str] = frozenset()
    # Part of every decision-cache key: hashed once, not per statement.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.name, self.kind, self.groups)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class Verdict:
    action: str
    method: str = "redact"
    param: int | None = None
    rule: str = ""
    valid_until: float = float("inf")
    counted_grant: int | None = None  # a grant with max_runs this verdict relies on
    # The masking rule lets the column be compared for equality with given values.
    lookups: bool = False


ALLOWED = Verdict(ALLOW)


# slots: the native data path reads action and valid_until straight from the instance
# every round trip (fastpath field_get).
@dataclass(slots=True, weakref_slot=True)
class Decision:
    action: str
    rule: str = ""
    message: str = ""
    kind: str = ""
    tables_read: list[str] = field(default_factory=list)
    tables_written: list[str] = field(default_factory=list)
    columns_read: list[str] = field(default_factory=list)
    masked_columns: list[str] = field(default_factory=list)
    # Output positions without a direct origin that must be redacted; None = all of them.
    derived_positions: frozenset[int] | None = frozenset()
    # Output positions of masked columns read directly: one that arrives without an origin
    # was not direct after all (a FULL JOIN ... USING merge) and is redacted; None = any.
    direct_masked_positions: frozenset[int] | None = frozenset()
    valid_until: float = float("inf")
    search_path: list[str] | None = None
    fingerprint: str = ""
    statement: str = ""
    statements: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    invalidates_catalog: bool = False
    # Never reused for another text with the same normalized form (see StatementInfo).
    depends_on_literals: bool = False
    # COPY ... FROM STDIN: the server may enter copy-in mode, where it ignores Sync.
    copies_in: bool = False
    # COPY … TO STDOUT: the format of its rows (agent.postgres.copy.CopyFormat), to mask them.
    copy_out: Any = None
    # It reads or writes a table with columns restricted for this identity: the server's
    # error messages and details (which may quote row values) are withheld.
    touches_restricted: bool = False
    # SQL PREPARE / EXECUTE / DEALLOCATE names in it (see ClientHandlers._sql_prepared_check).
    sql_prepares: tuple[str, ...] = ()
    sql_executes: tuple[str, ...] = ()
    sql_deallocates: tuple[str, ...] = ()
    sql_declares: tuple[str, ...] = ()
    sql_fetches: tuple[str, ...] = ()
    sql_closes: tuple[str, ...] = ()
    sqlstate: str = "42501"
    # Grants limited to max_runs this decision used a run of (the control plane counts them).
    counted_grants: tuple[int, ...] = ()
    # Column masks per result shape, shared by every session using this decision.
    mask_cache: dict[tuple[object, ...], list[tuple[str, int | None, int, bool] | None]] = field(
        default_factory=dict
    )
    # Masked columns compared for equality under a rule allowing exact lookups (audited).
    lookups: list[str] = field(default_factory=list)
    # rows_over_limit guardrails to judge on the planner's estimate before it runs.
    row_limits: tuple[RowLimit, ...] = ()
    # Held: the tables its access request names when it reads some held table through a view
    # (schema.table; empty: the control plane takes them from the statement's own tables).
    request_tables: tuple[str, ...] = ()
    # Relations it creates, renames or moves, for the session to remember (agent/relations.py).
    creates: tuple[CreatedRelation, ...] = ()

    @property
    def has_side_effects(self) -> bool:
        """Whether forwarding it changes agent state (search_path, catalog caches), or it
        holds only for its own literals: either way no cache or native ticket keeps it."""
        return (
            self.search_path is not None
            or self.invalidates_catalog
            or bool(self.creates)
            or self.depends_on_literals
            or bool(self.sql_prepares or self.sql_executes or self.sql_deallocates)
            or bool(self.sql_declares or self.sql_fetches or self.sql_closes)
        )
