"""What a relation named in a statement stands for, with certainty or not.

A name in a statement may be a table the bundle classifies, a view or table the upstream
catalog knows (looked up on the agent's own connection), or an object this session created,
renamed or moved: the catalog connection cannot see those while the client's transaction is
open (nor temporary ones before they are committed), and one named like a classified table
(``pg_temp.customers``, a schema put first on the search_path) shadows it.  So:

- a session remembers every relation its statements create, rename or move
  (``SessionRelations``), never forgetting one within the session: a ROLLBACK, a DROP or a
  failed statement only makes the agent stricter than needed, never laxer;
- a use of such a name is also a use of what its definition reads (``expanded_uses``): its
  output columns are derived from the defining query's outputs, and the defining query's
  predicates decide every read of it;
- for an identity with any restricted column, a name that is none of these (``unresolved``)
  is refused, naming it and why: what the agent cannot see, it cannot vouch for.

Matching is by name across schemas (only two different, explicit schemas tell names apart),
so a search_path the agent did not follow (set_config, RESET, a transaction's SET LOCAL)
cannot make a name mean an object the agent did not consider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace

from agent.analysis import (
    DERIVED,
    OUTPUT,
    PLAN,
    PREDICATE,
    Analysis,
    ColumnUse,
    CreatedRelation,
    Relation,
    StatementInfo,
)
from agent.bundle import Bundle

ViewDeps = list[tuple[str, str, str | None]]
Created = Mapping[Relation, list[CreatedRelation]]

NOT_IN_CATALOG = (
    "it is not in the database catalog the agent reads (an object of an open transaction "
    "made out of the agent's sight, or one that does not exist)"
)


def may_be(written: Relation, created: Relation, temporary: bool = False) -> bool:
    """Whether the name ``written`` may resolve to the relation ``created``."""
    if written.name != created.name:
        return False
    mine, theirs = written.schema, created.schema
    if mine is None or theirs is None or mine == theirs:
        return True
    temp = mine.startswith("pg_temp")
    return temp and (temporary or theirs.startswith("pg_temp"))


class SessionRelations:
    """The relations one session's statements created, renamed or moved, by name."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[CreatedRelation]] = {}
        # Part of the session's decision-cache keys once it created anything: its decisions
        # rest on what only it sees (None: it shares every cached decision).
        self.scope: object | None = None

    def add(self, created: Iterable[CreatedRelation]) -> None:
        for relation in created:
            known = self.by_name.setdefault(relation.relation.name, [])
            if relation.renames_columns:  # earlier definitions' names no longer hold
                known[:] = [replace(k, columns=None) for k in known]
            known.append(relation)
            self.scope = object()


def definitions(
    analysis: Analysis,
    session: SessionRelations | None,
    stored: Mapping[str, list[CreatedRelation]] | None = None,
) -> dict[Relation, list[CreatedRelation]]:
    """The definitions each relation the analysis names may have, and those the relations
    their definitions read may have in turn: what the session (or this text) created, and
    ``stored``, the database's own views by name (``Catalog.view_definitions``)."""
    own: dict[str, list[CreatedRelation]] = {}
    for statement in analysis.statements:
        for created in statement.creates:
            own.setdefault(created.relation.name, []).append(created)
    known = session.by_name if session is not None else {}
    stored = stored or {}
    found: dict[Relation, list[CreatedRelation]] = {}
    pending = list(analysis.relations)
    seen: set[Relation] = set()
    while pending:
        relation = pending.pop()
        if relation in seen:
            continue
        seen.add(relation)
        name = relation.name
        candidates = [*known.get(name, ()), *own.get(name, ()), *stored.get(name, ())]
        matches = [c for c in candidates if may_be(relation, c.relation, c.temporary)]
        if matches:
            found[relation] = matches
            pending += [r for c in matches for r in _reads(c)]
    return found


def _reads(definition: CreatedRelation) -> set[Relation]:
    return {*definition.reads, *(r for use in definition.uses for r in use.candidates)}


def relations_read(analysis: Analysis, created: Created) -> set[Relation]:
    """Every relation the statements name or their created relations' definitions read."""
    read = set(analysis.relations)
    for matches in created.values():
        read.update(r for c in matches for r in _reads(c))
    return read


def relations_reached(
    analysis: Analysis, views: Mapping[Relation, ViewDeps], created: Created
) -> set[Relation]:
    """Every relation the statements read or write, directly or through views (the
    catalog's, to their base tables, and those the session created): a rule naming a
    table covers every read of a view over it, also one reading no column (``count(*)``)."""
    reached = relations_read(analysis, created) | analysis.written
    for relation in list(reached):
        reached.update(Relation(schema, table) for schema, table, _ in views.get(relation, ()))
    return reached


def unresolved(
    analysis: Analysis, created: Created, found: set[Relation], bundle: Bundle
) -> dict[Relation, str]:
    """The relations the statements name that the agent cannot resolve with certainty, with
    why: neither classified by the bundle, nor found by the catalog connection, nor created
    by the session (or created in a way whose reads cannot be known)."""
    refused: dict[Relation, str] = {}
    for statement in analysis.statements:
        for relation in statement.relations:
            if any(may_be(relation, c.relation, c.temporary) for c in statement.creates):
                continue  # the statement creates it
            matches = created.get(relation, ())
            why = next((c.unknown for c in matches if c.unknown), "")
            if why:
                refused[relation] = why
            elif not matches and relation not in found and not bundle_knows(bundle, relation):
                refused[relation] = NOT_IN_CATALOG
    return refused


def request_tables(
    analysis: Analysis,
    reached: set[Relation],
    schemas_for: Callable[[Relation], list[str]],
    holds: Callable[[str, str], bool],
) -> tuple[str, ...]:
    """The tables (``schema.table``) a held statement's access request names when a table
    that holds it is read through a view: the control plane takes a request's tables from
    the statement's text, which names the view, and a grant on a view covers no table.
    () when the statement names every such table itself."""
    held = {
        f"{schema}.{relation.name}"
        for relation in reached
        for schema in schemas_for(relation)
        if holds(schema, relation.name)
    }
    named = {
        f"{schema}.{relation.name}"
        for relation in analysis.relations | analysis.written
        for schema in schemas_for(relation)
    }
    return tuple(sorted(held)) if held - named else ()


def bundle_knows(bundle: Bundle, relation: Relation) -> bool:
    """Whether ``relation`` may be a table the bundle classifies (name ``*``: any of the
    schema's)."""
    if relation.name == "*":
        return any(relation.schema in schemas for schemas in bundle.schemas_by_table.values())
    schemas = bundle.schemas_by_table.get(relation.name, ())
    return bool(schemas) and (relation.schema is None or relation.schema in schemas)


def refusal(
    unresolved: Mapping[Relation, str], statements: Iterable[StatementInfo], bundle: Bundle
) -> str:
    """Why a restricted identity may not run these statements, or "": a relation that
    cannot be resolved, or a classified table renamed or moved from under its policy."""
    if unresolved:
        relation = min(unresolved, key=Relation.label)
        return (
            f"relation {relation.label()} cannot be resolved with certainty: "
            f"{unresolved[relation]}; it is refused while sensitive columns are restricted "
            "for you"
        )
    for statement in statements:
        for moved in sorted(statement.moves, key=Relation.label):
            if bundle_knows(bundle, moved):
                what = f"schema {moved.schema}" if moved.name == "*" else moved.label()
                return (
                    f"renaming or moving {what} (or its columns) would take classified "
                    "columns away from the names their policy uses"
                )
    return ""


def expanded_uses(
    statement: StatementInfo, views: Mapping[Relation, ViewDeps], created: Created
) -> Iterator[ColumnUse]:
    """The statement's column uses, each followed by what it reads through views (the
    catalog's) and relations the session created; and the predicates of those created
    relations' definitions, which decide any read of them (``count(*)`` names no column)."""
    for use in statement.uses:
        yield from _expand(use, views, created, ())
    for relation in statement.relations:
        for dep, path in _filters(relation, created, ()):
            yield from _expand(dep, views, created, path)


def _filters(
    relation: Relation, created: Created, path: tuple[Relation, ...]
) -> Iterator[tuple[ColumnUse, tuple[Relation, ...]]]:
    """The predicates of ``relation``'s definitions and of those of every relation they read
    (a view over a filtered view is filtered by it), each with the path that reaches it."""
    path = (*path, relation)
    for definition in created.get(relation, ()):
        for dep in definition.uses:
            if dep.context == PREDICATE:
                yield _in_definition(dep, definition), path
        for inner in sorted(_reads(definition), key=Relation.label):
            if inner not in path:
                yield from _filters(inner, created, path)


def _expand(
    use: ColumnUse, views: Mapping[Relation, ViewDeps], created: Created, path: tuple[Relation, ...]
) -> Iterator[ColumnUse]:
    # The name may resolve to the table as well as to a view of the same name in another
    # schema, or to what the session created: every reading is checked.
    yield use
    # A view's output names the view as origin: everything it reads is derived.
    context = DERIVED if use.context == OUTPUT else use.context
    for candidate in use.candidates:
        for schema, table, column in views.get(candidate, ()):
            yield replace(
                use,
                candidates=(Relation(schema, table),),
                column=column,
                context=context,
                qualified=False,
                lookup=False,  # the view's column may be any of these
            )
        if candidate in path:  # a name defined, through others, by itself
            continue
        for definition in created.get(candidate, ()):
            for dep in _derived_from(definition, use.column):
                if dep.context != PREDICATE or use.context == PLAN:
                    dep = replace(
                        dep,
                        context=context,
                        position=use.position,
                        clause=use.clause,
                        qualified=False,
                        lookup=False,
                    )
                else:
                    dep = _in_definition(dep, definition)
                yield from _expand(dep, views, created, (*path, candidate))


def _derived_from(definition: CreatedRelation, column: str | None) -> Iterator[ColumnUse]:
    """The defining query's uses column ``column`` of ``definition`` carries (None: every
    column), and its predicates."""
    names = definition.columns
    index = None
    if column is not None and names is not None and names.count(column) == 1:
        index = names.index(column)
    for dep in definition.uses:
        if dep.context == PREDICATE or index is None or dep.position in (None, index):
            yield dep


def _in_definition(dep: ColumnUse, definition: CreatedRelation) -> ColumnUse:
    clause = f"{dep.clause or 'a filter'} in the definition of {definition.relation.label()}"
    return replace(dep, position=None, clause=clause, qualified=False, lookup=False)
