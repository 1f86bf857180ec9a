"""The agent for MySQL/MariaDB: the shared core (bundle, decisions, audit, metrics, grant
runs, token checks) with MySQL's analyser, catalog and sessions.

Core pieces that are PostgreSQL-bound and replaced here: ``Agent.decide`` (pglast
normalize/fingerprint/analyze) and ``Agent.catalog`` (pg_catalog queries).  The decision
itself goes through the shared ``Agent.decide_counting_runs``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import ssl
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pymysql
from sqlglot.errors import SqlglotError

from agent import relations, row_limits
from agent.analysis import Analysis, ColumnUse, CreatedRelation, Relation, SqlError
from agent.mysql import analysis as mysql_sql
from agent.mysql import estimate
from agent.mysql.text import normalize as mysql_normalize
from agent.normalize import Normalizer
from agent.server import Agent, AgentConfig
from agent.verdicts import DENY, Decision, Identity

log = logging.getLogger("agent.mysql")
CATALOG_TTL = 30.0
# What asking the upstream's catalog can raise: the answer is then to refuse or redact.
CATALOG_ERRORS = (pymysql.MySQLError, OSError, SqlError)
CR_SSL_CONNECTION_ERROR = 2026  # PyMySQL: TLS required, the server offers none

Views = dict[Relation, list[tuple[str, str, str | None]]]


class MySqlCatalog:
    """Views and stored routines of the upstream, read with PyMySQL in a worker thread
    on a side connection with the datasource's credentials (cached for 30 s)."""

    def __init__(self, config: AgentConfig) -> None:
        self.upstream = config.upstream
        self._views: tuple[float, dict[tuple[str, str], str]] | None = None
        # Each view's definition as read by the analyser, for as long as ``_views`` holds.
        self._defined: dict[tuple[str, str], CreatedRelation] = {}
        self._routines: tuple[float, set[str]] | None = None
        self._lock = asyncio.Lock()
        # sslmode prefer: set once the server answered that it offers no TLS.
        self._server_without_tls = False

    def _connect(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
        """A side connection with the upstream's own TLS context (built once per
        configuration, so its verification options apply): PyMySQL left to itself would
        build a context of its own on every connection, and use TLS under ``disable``."""
        up = self.upstream
        tls = up.ssl_context is not None and not self._server_without_tls
        try:
            return self._open(database, up.ssl_context if tls else None)
        except pymysql.err.OperationalError as exc:
            # PyMySQL refuses before it sends credentials; prefer goes on in plaintext,
            # like the sessions' own upstream connections (agent.mysql.auth).
            if not tls or up.sslmode != "prefer" or exc.args[0] != CR_SSL_CONNECTION_ERROR:
                raise
            self._server_without_tls = True
            return self._open(database, None)

    def _open(
        self, database: str | None, context: ssl.SSLContext | None
    ) -> pymysql.connections.Connection[Any]:
        up = self.upstream
        return pymysql.connect(
            host=up.host,
            port=up.port,
            user=up.user,
            password=up.password,
            database=database,
            connect_timeout=5,
            ssl=context,
            ssl_disabled=context is None,
        )

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def _explained_rows(self, statements: list[str], database: str | None) -> int:
        connection = self._connect(database)
        try:
            with connection.cursor() as cursor:
                total = 0
                for statement in statements:
                    cursor.execute("EXPLAIN FORMAT=JSON " + statement)
                    total += estimate.changed_rows(str(cursor.fetchone()[0]))
                return total
        finally:
            connection.close()

    async def rows_changed(self, text: str, database: str | None) -> int:
        """The optimizer's estimate of the rows ``text`` updates or deletes (see
        ``agent.mysql.estimate``); raises when it cannot be taken."""
        statements = estimate.changing_statements(text)
        if not statements:
            return 0
        return await asyncio.to_thread(self._explained_rows, statements, database)

    async def _refresh(self) -> None:
        now = time.monotonic()
        if self._views is not None and now - self._views[0] < CATALOG_TTL:
            return
        async with self._lock:
            if self._views is not None and now - self._views[0] < CATALOG_TTL:
                return
            views = await asyncio.to_thread(
                self._query,
                "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS",
            )
            routines = await asyncio.to_thread(
                self._query, "SELECT DISTINCT LOWER(ROUTINE_NAME) FROM information_schema.ROUTINES"
            )
            self._views = (now, {(s, n): d for s, n, d in views})
            self._defined = {}
            self._routines = (now, {r[0] for r in routines})

    def invalidate(self) -> None:
        self._views = self._routines = None
        self._defined = {}

    async def is_view(self, schema: str, table: str) -> bool:
        await self._refresh()
        assert self._views is not None
        return (schema, table) in self._views[1]

    async def user_functions(self, names: set[str]) -> set[str]:
        await self._refresh()
        assert self._routines is not None
        return names & self._routines[1]

    def _definition(self, schema: str, name: str) -> CreatedRelation:
        """The view ``schema.name`` read by its definition (``analysis.stored_view``)."""
        key = (schema, name)
        found = self._defined.get(key)
        if found is None:
            assert self._views is not None
            found = mysql_sql.stored_view(Relation(schema, name), self._views[1][key])
            self._defined[key] = found
        return found

    def _views_reached(self, relations: set[Relation]) -> list[CreatedRelation]:
        """The definitions of the views among ``relations`` and of the views they read in
        turn (nested at most 8 deep)."""
        assert self._views is not None
        definitions = self._views[1]
        found: dict[tuple[str, str], CreatedRelation] = {}
        level = {(r.schema, r.name) for r in relations if r.schema is not None}
        for _ in range(9):
            level = {key for key in level if key in definitions and key not in found}
            if not level:
                return list(found.values())
            reached: set[tuple[str, str]] = set()
            for schema, name in sorted(level):
                view = found[(schema, name)] = self._definition(schema, name)
                reached |= {(r.schema or schema, r.name) for r in view.reads}
            level = reached
        raise SqlError(f"views nested too deeply at {', '.join(sorted(map('.'.join, level)))}")

    async def views_among(self, relations: set[Relation]) -> Views:
        """For each relation that is a view: every (schema, table, column) it reads, through
        nested views too (column None: all of that table's columns)."""
        await self._refresh()
        self._views_reached(relations)  # refuses views nested too deeply
        found: Views = {}
        for relation in relations:
            if relation.schema is not None and (relation.schema, relation.name) in self._defined:
                found[relation] = self._base_columns(relation.schema, relation.name, ())
        return found

    def _base_columns(
        self, schema: str, name: str, path: tuple[tuple[str, str], ...]
    ) -> list[tuple[str, str, str | None]]:
        columns: list[tuple[str, str, str | None]] = []
        for use in self._defined[(schema, name)].uses:
            for candidate in use.candidates:
                base = (candidate.schema or schema, candidate.name)
                if base in self._defined and base not in path:
                    columns += self._base_columns(*base, (*path, (schema, name)))
                else:
                    columns.append((*base, use.column))
        return columns

    async def view_definitions(self, relations: set[Relation]) -> dict[str, list[CreatedRelation]]:
        """The definitions of the views among ``relations`` and of those they read, by name,
        as ``agent.postgres.catalog.Catalog.view_definitions`` gives PostgreSQL's: their
        filters decide every read of them (``relations.definitions``)."""
        await self._refresh()
        by_name: dict[str, list[CreatedRelation]] = {}
        for view in self._views_reached(relations):
            by_name.setdefault(view.relation.name, []).append(view)
        return by_name

    async def close(self) -> None:
        return None


class MySqlAgent(Agent):
    """An ``Agent`` whose clients speak the MySQL client/server protocol."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.mysql_catalog = MySqlCatalog(config)
        self.normalizer = Normalizer(mysql_normalize)
        self.server_version = ""
        self._connection_ids = itertools.count(1)
        # agent connection id -> (identity name, upstream thread id), for KILL
        self.connections: dict[int, tuple[str, int]] = {}
        # agent connection id -> the event that cancels its statement held for review
        self.holding: dict[int, asyncio.Event] = {}
        # Accept mysql_clear_password / a cleartext token from loopback peers without TLS.
        self.cleartext_loopback = config.mysql_cleartext_loopback
        # What the sessions' native paths did (agent.mysql.native), added as each ends.
        self.native_stats: Counter[str] = Counter()

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        from agent.mysql.session import MySqlSession

        await MySqlSession(self, reader, writer).run()

    def next_connection_id(self) -> int:
        return next(self._connection_ids)

    def decide_cached(
        self, identity: Identity | None, text: str, database: str | None
    ) -> Decision | None:
        key_db = (database or "",)
        cached = self.decisions.get((text, identity, key_db))
        if cached is None:
            try:
                normalized = self.normalizer.normalize(text)
            except SqlError:
                return None
            cached = self.decisions.get((normalized, identity, key_db))
        if cached is not None and cached.valid_until > time.time():
            return cached
        return None

    async def decide(self, identity: Identity, text: str, database: str | None) -> Decision:
        """Decision for one statement text in ``database``, cached like PostgreSQL's by
        normalized text, identity and current database."""
        engine = self.engine
        if engine is None:
            return Decision(DENY, rule="no_bundle", message="no valid policy bundle loaded")
        try:
            normalized = self.normalizer.normalize(text)
            analysis = mysql_sql.analyze(text, database)
        except SqlError as exc:
            return Decision(
                DENY,
                rule="unparseable",
                sqlstate="42000",
                message=f"statement could not be parsed and was not run: {exc}",
            )
        key = (normalized, identity, (database or "",))
        cached = self.decisions.get(key)
        if cached is not None and cached.valid_until > time.time():
            return cached
        try:
            views = await self.mysql_catalog.views_among(analysis.relations)
            # A view's own filters decide every read of it, also one naming no column.
            stored = await self.mysql_catalog.view_definitions(analysis.relations)
            created = relations.definitions(analysis, None, stored) if stored else None
            in_views = {f for matches in stored.values() for c in matches for f in c.functions}
            for statement in analysis.statements:
                # A view calling a stored function runs code the agent cannot inspect.
                if await self.mysql_catalog.user_functions(statement.functions | in_views):
                    statement.opaque = True
        except CATALOG_ERRORS as exc:
            log.error("catalog lookup failed: %r", exc)
            return Decision(
                DENY,
                rule="catalog_unavailable",
                message="policy check could not inspect the database catalog",
            )
        self._bundle_spelling(analysis)
        fingerprint = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        decision = await self.decide_counting_runs(
            engine,
            identity,
            analysis,
            fingerprint=fingerprint,
            search_path=(database,) if database else None,
            views=views,
            created=created,
        )
        decision.fingerprint = fingerprint
        decision.statement = normalized
        decision.kinds = [s.kind for s in analysis.statements]
        decision.statements = [normalized]
        decision.invalidates_catalog = any(
            s.kind in ("ddl", "create_as") for s in analysis.statements
        )
        if not decision.has_side_effects:
            if len(self.decisions) > 20_000:
                self.decisions.clear()
            self.decisions[key] = decision
        return decision

    async def row_limits_checked(
        self, decision: Decision, text: str, database: str | None
    ) -> Decision:
        """The decision, or its refusal when the optimizer expects the statement to change
        more rows than a rows_over_limit guardrail in force allows (agent/row_limits.py)."""

        async def rows() -> int:
            try:
                return await self.mysql_catalog.rows_changed(text, database)
            except estimate.EstimateUnavailable as exc:
                raise row_limits.EstimateError(str(exc)) from exc
            except pymysql.MySQLError as exc:
                code = exc.args[0] if exc.args else "?"
                detail = "" if decision.touches_restricted else f", {exc.args[-1]}"
                raise row_limits.EstimateError(
                    f"EXPLAIN failed upstream: error {code}{detail}"
                ) from exc
            except (OSError, SqlglotError) as exc:
                log.error("row estimate failed: %r", exc)
                raise row_limits.EstimateError("the upstream could not be asked") from exc

        return await row_limits.judged(decision, rows)

    def _bundle_spelling(self, analysis: Analysis) -> None:
        """MySQL column names are case-insensitive: spell each as the bundle does."""
        engine = self.engine
        if engine is None:
            return
        for statement in analysis.statements:
            fixed: list[ColumnUse] = []
            for use in statement.uses:
                column = use.column
                for relation in use.candidates:
                    for info in engine.bundle.columns_by_table.get(
                        (relation.schema or "", relation.name), ()
                    ):
                        if column is not None and info.column.lower() == column:
                            column = info.column
                fixed.append(replace(use, column=column))
            statement.uses = fixed

    def invalidate_after_ddl(self) -> None:
        self.mysql_catalog.invalidate()
        self.decisions.clear()
        self.generation += 1
