"""Upstream catalog lookups on a separate side connection, cached.

Answers two questions the SQL text cannot: which table/column a RowDescription origin
(table OID, attnum) names, and which referenced relations are views (and which base
columns they read, recursively through views of views).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from agent.analysis import CreatedRelation, Relation
from agent.postgres import codec, estimate, upstream
from agent.postgres.sql import stored_view
from agent.postgres.upstream import UpstreamConnection, quote_literal
from agent.relations import ViewDeps
from agent.upstream import UpstreamConfig

CACHE_SECONDS = 30.0
BASE_RELKINDS = frozenset({"r", "p"})
# Relations whose rows are another query's (or another server's): resolved to what they read.
VIEW_RELKINDS = frozenset({"v", "m", "f"})
# Relations with a defining query: a materialized view's rows are a copy of what its query
# read, so the rules on those tables follow the copy (agent/README.md).
DEFINED_RELKINDS = frozenset({"v", "m"})


@dataclass(frozen=True)
class Origin:
    schema: str
    table: str
    column: str
    relkind: str


_DEPS_SQL = """
WITH RECURSIVE deps(view_oid, ref_oid, ref_att) AS (
  SELECT r.ev_class, d.refobjid, d.refobjsubid
  FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid
   AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  WHERE r.ev_class IN ({oids}) AND d.refobjid <> r.ev_class
  UNION
  SELECT deps.view_oid, d.refobjid, d.refobjsubid
  FROM deps JOIN pg_rewrite r ON r.ev_class = deps.ref_oid
  JOIN pg_depend d ON d.objid = r.oid
   AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  WHERE d.refobjid <> r.ev_class
)
SELECT deps.view_oid, n.nspname, c.relname, a.attname
FROM deps JOIN pg_class c ON c.oid = deps.ref_oid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = deps.ref_oid AND a.attnum = deps.ref_att
WHERE c.relkind IN ('r', 'p', 'f')
"""


# Every view and materialized view the given ones read, through views of views, with its
# definition as the server prints it: under an empty search_path every relation is named
# with its schema (for this statement only: SET LOCAL in the query's implicit transaction).
_DEFINITIONS_SQL = """
SET LOCAL search_path TO '';
WITH RECURSIVE reached(root, oid) AS (
  SELECT root, root FROM unnest(ARRAY[{oids}]::oid[]) AS root
  UNION
  SELECT reached.root, d.refobjid
  FROM reached JOIN pg_rewrite r ON r.ev_class = reached.oid
  JOIN pg_depend d ON d.objid = r.oid
   AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  WHERE d.refobjid <> r.ev_class
)
SELECT reached.root, n.nspname, c.relname, pg_get_viewdef(c.oid)
FROM reached JOIN pg_class c ON c.oid = reached.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
"""


def _schema_matches(written: str | None, actual: str) -> bool:
    """Whether a relation written with schema ``written`` (None: unqualified) may be in
    ``actual``; pg_temp is the session's own pg_temp_N."""
    return (
        written is None
        or written == actual
        or (written == "pg_temp" and actual.startswith("pg_temp_"))
    )


class Catalog:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._conn: UpstreamConnection | None = None
        self._lock = asyncio.Lock()
        self._origins: dict[tuple[int, int], Origin] = {}
        self._view_deps_by_oid: dict[int, tuple[float, ViewDeps]] = {}
        self._definitions: dict[int, tuple[float, tuple[CreatedRelation, ...]]] = {}
        self._relations: dict[Relation, tuple[float, list[tuple[int, str]]]] = {}
        self._functions: dict[str, tuple[float, bool]] = {}
        self._row_functions: dict[str, tuple[float, bool]] = {}
        self._columns: dict[Relation, tuple[float, frozenset[str]]] = {}

    def invalidate(self) -> None:
        """Forget relation kinds and view definitions (after DDL went through the agent)."""
        self._relations.clear()
        self._columns.clear()
        self._functions.clear()
        self._row_functions.clear()
        self._view_deps_by_oid.clear()
        self._definitions.clear()
        self._origins.clear()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _query(self, sql: str) -> list[list[str | None]]:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    return await upstream.simple_query(await self._connection(), sql)
                except (OSError, asyncio.IncompleteReadError):
                    self._drop_connection()
                    if attempt == 2:
                        raise
        return []

    async def _connection(self) -> UpstreamConnection:
        if self._conn is None:
            self._conn = await upstream.connect(
                self.config, {"application_name": "warden-agent-catalog"}
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    async def rows_changed(self, text: str, search_path: tuple[str, ...] | None) -> int:
        """The planner's estimate of the rows ``text`` updates, deletes or merges (see
        ``agent.postgres.estimate``); raises when it cannot be taken."""
        total = 0
        async with self._lock:
            try:
                for prepare in estimate.changing_statements(text):
                    total += await self._explained_rows(prepare, search_path)
            except (OSError, asyncio.IncompleteReadError):
                self._drop_connection()
                raise
        return total

    async def _explained_rows(self, prepare: str, search_path: tuple[str, ...] | None) -> int:
        conn = await self._connection()
        try:
            await upstream.simple_query(
                conn, "BEGIN READ ONLY; " + estimate.session_settings(search_path)
            )
            await upstream.simple_query(conn, prepare)
            count = await upstream.simple_query(conn, estimate.PARAMETER_COUNT)
            explain = estimate.explain_execute(int(count[0][0] or 0))
            plan = await upstream.simple_query(conn, explain)
            return estimate.changed_rows(str(plan[0][0]))
        finally:
            await upstream.simple_query(conn, "ROLLBACK; DEALLOCATE ALL")

    async def describe(
        self, sql: str, search_path: tuple[str, ...] | None
    ) -> list[codec.FieldDescription]:
        """The result shape of ``sql`` under a session's search_path: its RowDescription,
        from Parse and Describe of the unnamed statement (nothing runs).  Raises
        UpstreamError when the server cannot (an object only that session sees)."""
        async with self._lock:
            conn = await self._connection()
            path = ", ".join('"' + name.replace('"', '""') + '"' for name in search_path or ())
            if search_path is not None:
                await upstream.simple_query(
                    conn, f"SELECT set_config('search_path', {upstream.quote_literal(path)}, false)"
                )
            try:
                return await upstream.describe_statement(conn, sql)
            finally:
                if search_path is not None:
                    await upstream.simple_query(conn, "RESET search_path")

    async def origins(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], Origin]:
        missing = {oid for oid, _ in keys if (oid, _) not in self._origins}
        if missing:
            rows = await self._query(
                "SELECT a.attrelid, a.attnum, n.nspname, c.relname, a.attname, c.relkind "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE a.attrelid IN ({','.join(str(int(o)) for o in missing)}) "
                "AND a.attnum > 0"
            )
            for oid, attnum, schema, table, column, relkind in rows:
                self._origins[(int(str(oid)), int(str(attnum)))] = Origin(
                    str(schema), str(table), str(column), str(relkind)
                )
        return {key: self._origins[key] for key in keys if key in self._origins}

    async def view_deps_for_oids(self, oids: set[int]) -> dict[int, ViewDeps]:
        now = time.monotonic()
        missing = {o for o in oids if self._view_deps_by_oid.get(o, (0.0, []))[0] < now}
        if missing:
            rows = await self._query(_DEPS_SQL.format(oids=",".join(str(int(o)) for o in missing)))
            found: dict[int, ViewDeps] = {o: [] for o in missing}
            for view_oid, schema, table, column in rows:
                found[int(str(view_oid))].append((str(schema), str(table), column))
            for oid, deps in found.items():
                self._view_deps_by_oid[oid] = (now + CACHE_SECONDS, deps)
        return {o: self._view_deps_by_oid[o][1] for o in oids}

    async def view_definitions(self, relations: set[Relation]) -> dict[str, list[CreatedRelation]]:
        """The definitions of the views and materialized views among ``relations`` (looked
        up first) and of every one they read in turn, by name, each read by the analyser the
        session's own views are read with (``sql.stored_view``): its filters decide every
        read of it, as a table's WHERE would."""
        now = time.monotonic()
        oids = {
            oid
            for relation in relations
            for oid, kind in self._relations.get(relation, (0.0, []))[1]
            if kind in DEFINED_RELKINDS
        }
        if not oids:
            return {}
        missing = {o for o in oids if self._definitions.get(o, (0.0, ()))[0] < now}
        if missing:
            rows = await self._query(
                _DEFINITIONS_SQL.format(oids=",".join(str(int(o)) for o in missing))
            )
            reached: dict[int, list[CreatedRelation]] = {o: [] for o in missing}
            for root, schema, name, text in rows:
                relation = Relation(str(schema), str(name))
                reached[int(str(root))].append(stored_view(relation, str(text or "")))
            for oid, found in reached.items():
                self._definitions[oid] = (now + CACHE_SECONDS, tuple(found))
        by_name: dict[str, list[CreatedRelation]] = {}
        for oid in oids:
            for definition in self._definitions[oid][1]:
                named = by_name.setdefault(definition.relation.name, [])
                if definition not in named:
                    named.append(definition)
        return by_name

    async def columns_of(self, relations: set[Relation]) -> dict[Relation, frozenset[str]]:
        """Column names of each relation (those every same-named table has, when
        unqualified); a relation that does not exist has none."""
        now = time.monotonic()
        missing = [r for r in relations if self._columns.get(r, (0.0, frozenset()))[0] < now]
        if missing:
            names = ",".join(quote_literal(r.name) for r in missing)
            rows = await self._query(
                "SELECT n.nspname, c.relname, a.attname FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE c.relname IN ({names}) AND a.attnum > 0 AND NOT a.attisdropped"
            )
            for relation in missing:
                by_schema: dict[str, set[str]] = {}
                for schema, table, column in rows:
                    if table == relation.name and _schema_matches(relation.schema, str(schema)):
                        by_schema.setdefault(str(schema), set()).add(str(column))
                # Unqualified, the name may be any of them: a column counts only if all have it
                # (a look-alike table with a row_to_json column must not hide field notation).
                tables = [frozenset(names) for names in by_schema.values()]
                columns = frozenset.intersection(*tables) if tables else frozenset()
                self._columns[relation] = (now + CACHE_SECONDS, columns)
        return {r: self._columns[r][1] for r in relations}

    async def lookup(
        self, relations: set[Relation]
    ) -> tuple[dict[Relation, ViewDeps], set[Relation]]:
        """(the relations that are views / matviews / foreign tables, with their base reads;
        the relations found at all, of any kind one can read from)."""
        now = time.monotonic()
        missing = [r for r in relations if self._relations.get(r, (0.0, []))[0] < now]
        if missing:
            names = ",".join(quote_literal(r.name) for r in missing)
            rows = await self._query(
                "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE c.relname IN ({names}) AND c.relkind IN ('r','p','v','m','f','S')"
            )
            for relation in missing:
                matches = [
                    (int(str(oid)), str(kind))
                    for oid, schema, name, kind in rows
                    if name == relation.name and _schema_matches(relation.schema, str(schema))
                ]
                if matches:
                    self._relations[relation] = (now + CACHE_SECONDS, matches)
                else:  # never cache absence: the relation may be created next
                    self._relations.pop(relation, None)
        views: dict[Relation, list[int]] = {}
        found: set[Relation] = set()
        for relation in relations:
            entry = self._relations.get(relation)
            if entry is not None:
                found.add(relation)
            view_oids = [oid for oid, kind in (entry[1] if entry else []) if kind in VIEW_RELKINDS]
            if view_oids:
                views[relation] = view_oids
        if not views:
            return {}, found
        deps = await self.view_deps_for_oids({o for oids in views.values() for o in oids})
        found_views = {
            rel: [d for o in oids for d in deps.get(o, [])] for rel, oids in views.items()
        }
        return found_views, found

    async def row_functions(self, names: set[str]) -> set[str]:
        """Which names denote functions callable with one row argument (its first parameter a
        pseudo-type such as record or anyelement, or a composite type): only those turn
        field notation ``c.name`` into ``name(c)``; a cast never does."""
        return await self._function_names(
            self._row_functions,
            names,
            "JOIN pg_type t ON t.oid = p.proargtypes[0]",
            "p.pronargs >= 1 AND (p.pronargs - p.pronargdefaults <= 1 OR p.provariadic <> 0) "
            "AND t.typtype IN ('p', 'c')",
        )

    async def user_functions(self, names: set[str]) -> set[str]:
        """Which names denote functions outside pg_catalog/information_schema: their bodies
        can read anything, so statements calling them are treated as opaque."""
        return await self._function_names(
            self._functions,
            names,
            "JOIN pg_namespace n ON n.oid = p.pronamespace",
            "n.nspname NOT IN ('pg_catalog', 'information_schema')",
        )

    async def _function_names(
        self, cache: dict[str, tuple[float, bool]], names: set[str], join: str, condition: str
    ) -> set[str]:
        """The names among ``names`` of functions (pg_proc p) meeting ``condition``, cached."""
        now = time.monotonic()
        missing = [n for n in names if cache.get(n, (0.0, False))[0] < now]
        if missing:
            rows = await self._query(
                f"SELECT DISTINCT p.proname FROM pg_proc p {join} "
                f"WHERE p.proname IN ({','.join(quote_literal(n) for n in missing)}) "
                f"AND {condition}"
            )
            found = {str(row[0]) for row in rows}
            for name in missing:
                cache[name] = (now + CACHE_SECONDS, name in found)
        return {n for n in names if cache[n][1]}
