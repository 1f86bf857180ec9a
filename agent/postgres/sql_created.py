"""Relations a statement creates, renames or moves (the PostgreSQL half of
``agent/relations.py``).

The agent's catalog lookups run on a connection of their own, which cannot see what a client
creates inside its open transaction, nor its temporary objects until they are committed.  So
the session remembers what its statements create: a view, a table made AS SELECT or SELECT
INTO, a rule ON SELECT, a renamed or moved relation, each with what its columns are derived
from (the defining query's uses), so that a later read through that name is checked as a
read of what it reads.  What cannot be known (a foreign table's rows) is remembered with the
reason, and a restricted identity may not read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pglast import ast
from pglast.enums import ObjectType

from agent.analysis import DERIVED, ColumnUse, CreatedRelation, Relation
from agent.postgres.sql_walk import node_name

# The defining query's column uses, read as a top-level SELECT, and the relations it names
# (``sql.defining_uses``).
DefiningUses = Callable[[Any], tuple[tuple[ColumnUse, ...], frozenset[Relation]]]

_RELATION_OBJECTS = frozenset(
    {
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
        ObjectType.OBJECT_FOREIGN_TABLE,
        ObjectType.OBJECT_SEQUENCE,
    }
)


def creations(node: Any, defining: DefiningUses) -> tuple[list[CreatedRelation], set[Relation]]:
    """(the relations ``node`` creates, renames or moves; the relations it renames or moves,
    or renames columns of)."""
    if isinstance(node, ast.ViewStmt):
        return [_defined(node.view, node.query, node.aliases, defining)], set()
    if isinstance(node, ast.CreateTableAsStmt):
        into: Any = node.into
        if isinstance(node.query, ast.ExecuteStmt):
            # Filled from a SQL PREPARE, whose reads were checked as writes when prepared.
            return [CreatedRelation(_relation(into.rel), _temporary(into.rel))], set()
        return [_defined(into.rel, node.query, into.colNames, defining)], set()
    if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        return [_defined(node.intoClause.rel, node, node.intoClause.colNames, defining)], set()
    if isinstance(node, ast.CreateForeignTableStmt):
        why = "it is a foreign table, whose rows come from outside the database"
        base: Any = node.base
        return [CreatedRelation(_relation(base.relation), unknown=why)], set()
    if isinstance(node, ast.CreateStmt):
        return [_table(node)], set()
    if isinstance(node, ast.CreateSeqStmt | ast.CompositeTypeStmt):
        target = node.sequence if isinstance(node, ast.CreateSeqStmt) else node.typevar
        return [CreatedRelation(_relation(target), _temporary(target))], set()
    if isinstance(node, ast.RuleStmt):
        # A rule's SELECT actions are what reads (ON SELECT) or writes of the table return.
        actions = [defining(a) for a in node.actions or () if isinstance(a, ast.SelectStmt)]
        uses = tuple(u for found, _ in actions for u in found)
        reads = frozenset(r for _, named in actions for r in named)
        rule = CreatedRelation(_relation(node.relation), uses=uses, reads=reads)
        return [rule], set()
    if isinstance(node, ast.RenameStmt):
        return _renamed(node)
    if isinstance(node, ast.AlterObjectSchemaStmt) and node.objectType in _RELATION_OBJECTS:
        old = _relation(node.relation)
        moved = Relation(node.newschema, old.name)
        return [_reading_all_of(old, moved, temporary=False)], {old}
    return [], set()


def _renamed(node: ast.RenameStmt) -> tuple[list[CreatedRelation], set[Relation]]:
    if node.renameType == ObjectType.OBJECT_SCHEMA:
        return [], {Relation(node.subname, "*")}
    if node.relation is None:
        return [], set()
    old = _relation(node.relation)
    if node.renameType in _RELATION_OBJECTS:
        renamed = Relation(old.schema, node.newname or "")
        return [_reading_all_of(old, renamed, _temporary(node.relation))], {old}
    if node.renameType == ObjectType.OBJECT_COLUMN and node.relationType in _RELATION_OBJECTS:
        return [CreatedRelation(old, renames_columns=True)], {old}
    return [], set()


def _reading_all_of(old: Relation, new: Relation, temporary: bool) -> CreatedRelation:
    """A renamed or moved relation reads what it read under its old name, in any column."""
    every_column = ColumnUse((old,), None, DERIVED)
    return CreatedRelation(new, temporary, uses=(every_column,), reads=frozenset({old}))


def _defined(target: Any, query: Any, aliases: Any, defining: DefiningUses) -> CreatedRelation:
    return replace(
        defined(_relation(target), query, aliases, defining), temporary=_temporary(target)
    )


def defined(
    relation: Relation, query: Any, aliases: Any, defining: DefiningUses
) -> CreatedRelation:
    """``relation`` as what its defining ``query`` reads (column names: ``aliases``, else
    those the query gives)."""
    names = [node_name(alias) for alias in aliases or ()]
    uses, reads = defining(query)
    columns = tuple(names) if names else _output_names(query)
    return CreatedRelation(relation, columns=columns, uses=uses, reads=reads)


def _table(node: ast.CreateStmt) -> CreatedRelation:
    """CREATE TABLE (columns): it reads nothing; what is stored later is checked then."""
    elements = node.tableElts or ()
    names = [e.colname or "" for e in elements if isinstance(e, ast.ColumnDef)]
    plain = len(names) == len(elements) and not node.inhRelations and node.partbound is None
    return CreatedRelation(
        _relation(node.relation), _temporary(node.relation), tuple(names) if plain else None
    )


def _output_names(query: Any) -> tuple[str, ...] | None:
    """The names PostgreSQL gives a SELECT's output columns where the text says them (an
    alias, a bare column); "" where it does not.  None for a star or a set operation."""
    if not isinstance(query, ast.SelectStmt) or query.targetList is None:
        return None
    names = []
    for entry in query.targetList:
        value = entry.val
        if entry.name:
            names.append(entry.name)
        elif isinstance(value, ast.ColumnRef):
            last = (value.fields or (None,))[-1]
            if isinstance(last, ast.A_Star):
                return None
            names.append(node_name(last))
        else:
            names.append("")
    return tuple(names)


def _relation(node: Any) -> Relation:
    return Relation(node.schemaname, node.relname or "")


def _temporary(node: Any) -> bool:
    return node.relpersistence == "t" or (node.schemaname or "").startswith("pg_temp")
