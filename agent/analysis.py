"""What a statement does, independent of its SQL dialect: the types a protocol's analyser
produces and ``agent.decision`` consumes (see ``agent/postgres/sql.py`` for PostgreSQL).

Each column reference carries *where* its value can flow (its context):

``output``     a bare column (or ``*``) in the top-level select list: the result names its
               origin, so it is masked per column at runtime.
``derived``    inside an expression of an output column: the output has no direct origin, so
               it is fully redacted.  ``position`` is the output index when known, else None.
``predicate``  WHERE/JOIN/GROUP/ORDER/HAVING/LIMIT/DISTINCT/window, or a select-list
               expression that can fail or branch on the value: it decides which rows come
               back, how many, in which order, or whether the statement fails (``clause``
               names which), so a masked column there is refused (inference).
``plan``       named in a plan (EXPLAIN without ANALYZE): neither returned nor deciding.
``write``      flows into stored data: cannot be masked, so masked columns are denied.
``copy``       flows into a bulk export: cannot be masked per row, so masked columns are denied.
``target``     a column an INSERT/UPDATE/MERGE stores into.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OUTPUT, DERIVED, PREDICATE, WRITE, COPY = "output", "derived", "predicate", "write", "copy"
# A column an INSERT/UPDATE/MERGE stores into: denied or held columns stop the write.
TARGET = "target"
# Named in a plan (EXPLAIN without ANALYZE), neither returned nor deciding anything.
PLAN = "plan"


class SqlError(Exception):
    """The text is not valid SQL for PostgreSQL's parser."""


@dataclass(frozen=True)
class Relation:
    schema: str | None
    name: str

    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class ColumnUse:
    """A reference to ``column`` (None = every column: ``*`` or a whole-row reference)."""

    candidates: tuple[Relation, ...]
    column: str | None
    context: str
    position: int | None = None
    # Written ``alias.name`` with the alias naming a table: PostgreSQL reads it as the
    # function call ``name(alias)`` when the table has no such column (field notation).
    qualified: bool = False
    # For a predicate: the clause that makes it one (WHERE, ORDER BY, a CASE, ...).
    clause: str = ""
    # A predicate that only compares for equality with constants or parameters.
    lookup: bool = False


@dataclass(frozen=True)
class CreatedRelation:
    """A relation a statement creates, renames or moves, as later statements of the session
    see it: what its columns are derived from, so that reading it is checked as reading what
    it reads (agent/relations.py).  ``uses`` are those of its defining query read as a
    top-level SELECT: output uses by position (None: any column), and predicates (what chose
    its rows), which decide every read of it."""

    relation: Relation
    temporary: bool = False
    # Its column names in order, when known (else any column may be any output).
    columns: tuple[str, ...] | None = None
    uses: tuple[ColumnUse, ...] = ()
    # The relations its defining query names (a table it reads no column of still decides
    # how many rows it has, and a table rule on it covers every read of this one).
    reads: frozenset[Relation] = frozenset()
    # The functions a database view's definition calls: a user function there is opaque, as
    # in the statement itself (those of the session's own definitions were checked when made).
    functions: frozenset[str] = frozenset()
    # Why what it reads cannot be known (a restricted identity may not use it), else "".
    unknown: str = ""
    # ALTER ... RENAME COLUMN: the column names earlier definitions gave no longer hold.
    renames_columns: bool = False


@dataclass
class StatementInfo:
    kind: str
    guardrails: set[str] = field(default_factory=set)
    relations: set[Relation] = field(default_factory=set)
    written: set[Relation] = field(default_factory=set)
    uses: list[ColumnUse] = field(default_factory=list)
    opaque: bool = False
    search_path: list[str] | None = None
    functions: set[str] = field(default_factory=set)
    # Why no identity may run this statement (it would desynchronise the agent's parser).
    refusal: str | None = None
    # Its verdict rests on literal values (which setting set_config changes, to what), which
    # a decision cached by normalized text would not see.
    depends_on_literals: bool = False
    # SQL-level prepared statements: the name PREPAREd, EXECUTEd or DEALLOCATEd ("" = ALL).
    prepares: str | None = None
    executes: str | None = None
    deallocates: str | None = None
    # SQL cursors: the name DECLAREd, FETCHed or MOVEd in, or CLOSEd ("" = ALL).
    declares: str | None = None
    fetches: str | None = None
    closes: str | None = None
    # Server catalogs showing other sessions or credentials it reads, as (schema, name):
    # refused unless a rule allows that table (agent/private_catalogs.py).
    private_catalogs: set[tuple[str, str]] = field(default_factory=set)
    # COPY … TO STDOUT: how its rows are written (agent.postgres.copy.CopyFormat).
    copy_out: Any = None
    # Relations it creates, renames or moves (the session remembers them).
    creates: list[CreatedRelation] = field(default_factory=list)
    # Relations it renames or moves, or renames columns of (name "*": every relation of the
    # schema): a classified table moved away from the names its policy uses.
    moves: set[Relation] = field(default_factory=set)


@dataclass
class Analysis:
    statements: list[StatementInfo]
    guardrails: set[str]

    @property
    def kind(self) -> str:
        return self.statements[0].kind if len(self.statements) == 1 else "multi"

    @property
    def relations(self) -> set[Relation]:
        return {r for s in self.statements for r in s.relations}

    @property
    def written(self) -> set[Relation]:
        return {r for s in self.statements for r in s.written}

    @property
    def functions(self) -> set[str]:
        return {f for s in self.statements for f in s.functions}

    @property
    def private_catalogs(self) -> set[tuple[str, str]]:
        return {c for s in self.statements for c in s.private_catalogs}
