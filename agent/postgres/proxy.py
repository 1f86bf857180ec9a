"""The agent for PostgreSQL clients: decides statements with PostgreSQL's own parser
(pglast) and the upstream's catalog, and serves each client connection with a ``Session``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pglast

from agent import relations, row_limits
from agent.analysis import DERIVED, OUTPUT, Analysis, ColumnUse
from agent.decision import PolicyEngine
from agent.extension import native_path_available
from agent.postgres import sql as sqlmod
from agent.postgres import upstream
from agent.postgres.catalog import Catalog
from agent.postgres.codec import ALPN_PROTOCOL
from agent.postgres.holds import HOLDS
from agent.postgres.normalize import postgres_normalizer
from agent.postgres.relay import Relay
from agent.postgres.scram import tls_server_end_point
from agent.postgres.session import Session
from agent.postgres.upstream import UpstreamError
from agent.relations import SessionRelations
from agent.row_limits import EstimateError
from agent.server import Agent, AgentConfig
from agent.upstream import UpstreamConfig
from agent.verdicts import DENY, Decision, Identity

log = logging.getLogger("agent")


class PostgresAgent(Agent):
    def __init__(self, config: AgentConfig) -> None:
        if config.upstream is None:
            config.upstream = UpstreamConfig()
        super().__init__(config)
        if config.tls_cert and self.ssl_context is not None:
            self.channel_binding = tls_server_end_point(config.tls_cert)
            # PostgreSQL 17's protocol name: direct TLS (sslnegotiation=direct) requires it.
            self.ssl_context.set_alpn_protocols([ALPN_PROTOCOL])
        self.catalog = Catalog(config.upstream)
        # Pure text to text, so it outlives bundles (the decision cache does not).
        self.normalizer = postgres_normalizer()
        # Each session's upstream → client relay by the cancel key its client was given.
        self.results: dict[tuple[int, int], Relay] = {}

    async def start(self) -> None:
        await super().start()
        if self.config.native and not native_path_available():
            log.warning(
                "the native data path (agent/fastpath/) is not built; using the "
                "pure-Python path. Build it with: python setup.py build_ext --inplace"
            )

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await Session(self, reader, writer).run()

    async def cancel(self, pid: int, secret: int) -> None:
        waiting = HOLDS.get((pid, secret))
        if waiting is not None:  # a held statement: stop waiting for its review
            waiting.set()
        target = self.cancel_keys.get((pid, secret))
        if target is None:
            return
        with contextlib.suppress(OSError):
            await upstream.send_cancel(self.config.upstream, *target)
        # Then read on: a backend blocked on a full socket sees the cancel only once it
        # can write again (holding from before would race the cancel for the event loop).
        results = self.results.get((pid, secret))
        if results is not None:
            results.hold_for_cancel()

    async def close_protocol(self) -> None:
        await self.catalog.close()

    def decide_cached(
        self,
        identity: Identity | None,
        text: str,
        search_path: tuple[str, ...] | None,
        scope: object | None = None,
    ) -> Decision | None:
        """The cached decision for this text, or None (then call ``decide``); ``scope``:
        the session's ``SessionRelations.scope``."""
        decisions = self.decisions
        # A text without literals (e.g. "... WHERE id = $1") is its own normalized form,
        # so it is found without normalizing; normalize is idempotent, so a text found
        # this way is a normalized form and its decision is the right one.
        if scope is None:
            cached = decisions.get((text, identity, search_path))
        else:
            cached = decisions.get((text, identity, search_path, scope))
        if cached is None:
            try:
                normalized = self.normalizer.normalize(text)
            except pglast.parser.ParseError:
                return None
            cached = decisions.get(_key(normalized, identity, search_path, scope))
        if cached is not None and cached.valid_until > time.time():
            return cached
        return None

    async def decide(
        self,
        identity: Identity,
        text: str,
        search_path: tuple[str, ...] | None,
        session: SessionRelations | None = None,
    ) -> Decision:
        """Decision for one query string; cached by normalized text, identity, search_path,
        the session's scope once it created relations (only it sees them) and bundle (a new
        bundle builds a new engine and clears the cache)."""
        engine = self.engine
        if engine is None:
            return Decision(DENY, rule="no_bundle", message="no valid policy bundle loaded")
        try:
            normalized = self.normalizer.normalize(text)
        except pglast.parser.ParseError as exc:
            return Decision(
                DENY,
                rule="unparseable",
                sqlstate="42601",
                message=f"statement could not be parsed and was not run: {exc}",
            )
        key = _key(normalized, identity, search_path, session.scope if session else None)
        cached = self.decisions.get(key)
        if cached is not None and cached.valid_until > time.time():
            return cached
        decision = await self._decide_uncached(
            engine, identity, text, normalized, search_path, session
        )
        if not decision.has_side_effects:
            if len(self.decisions) > 20_000:
                self.decisions.clear()
            self.decisions[key] = decision
        return decision

    async def _decide_uncached(
        self,
        engine: PolicyEngine,
        identity: Identity,
        text: str,
        normalized: str,
        search_path: tuple[str, ...] | None,
        session: SessionRelations | None,
    ) -> Decision:
        try:
            analysis = sqlmod.analyze(text)
        except sqlmod.SqlError as exc:
            return Decision(
                DENY,
                rule="unparseable",
                sqlstate="42601",
                message=f"statement could not be parsed and was not run: {exc}",
            )
        fingerprint = pglast.parser.fingerprint(text)
        # Every relation, also those named like a bundle table: a view of that name in another
        # schema (pg_temp first of all), or one this session created, may be what the name
        # resolves to (agent/relations.py).
        created = relations.definitions(analysis, session)
        read = relations.relations_read(analysis, created)
        try:
            views, found = await self.catalog.lookup(read) if read else ({}, set())
            # The database's views are read by their definitions too: their filters decide
            # every read of them, also one naming no column (agent/relations.py).
            stored = await self.catalog.view_definitions(set(views)) if views else {}
            if stored:
                created = relations.definitions(analysis, session, stored)
            in_views = {f for matches in created.values() for c in matches for f in c.functions}
            functions = analysis.functions | in_views
            user_functions = await self.catalog.user_functions(functions) if functions else set()
            await self._field_notation_calls(analysis)
        except Exception as exc:
            log.error("catalog lookup failed: %r", exc)
            return Decision(
                DENY,
                rule="catalog_unavailable",
                message="policy check could not inspect the database catalog",
            )
        for statement in analysis.statements:
            # A view calling a user function runs code the agent cannot inspect, as a call would.
            if (statement.functions | in_views) & user_functions:
                statement.opaque = True
        decision = await self.decide_counting_runs(
            engine,
            identity,
            analysis,
            fingerprint=fingerprint,
            search_path=search_path,
            views=views,
            created=created,
            unresolved=relations.unresolved(analysis, created, found, engine.bundle),
        )
        decision.fingerprint = fingerprint
        decision.creates = tuple(c for s in analysis.statements for c in s.creates)
        decision.statement = normalized
        decision.kinds = [s.kind for s in analysis.statements]
        decision.copies_in = "copy_from" in decision.kinds
        decision.copy_out = next((s.copy_out for s in analysis.statements if s.copy_out), None)
        for part in ("prepares", "executes", "deallocates", "declares", "fetches", "closes"):
            names = (getattr(s, part) for s in analysis.statements)
            setattr(decision, f"sql_{part}", tuple(n for n in names if n is not None))
        if len(analysis.statements) > 1:
            try:
                decision.statements = list(pglast.parser.split(normalized))
            except pglast.parser.ParseError:
                decision.statements = [normalized] * len(analysis.statements)
        else:
            decision.statements = [normalized]
        decision.invalidates_catalog = bool(decision.creates) or any(
            s.kind in ("ddl", "create_as") for s in analysis.statements
        )
        return decision

    async def row_limits_checked(
        self, decision: Decision, text: str, search_path: tuple[str, ...] | None
    ) -> Decision:
        """The decision, or its refusal when the planner expects the statement to change more
        rows than a rows_over_limit guardrail in force allows (see agent/row_limits.py)."""

        async def estimate() -> int:
            try:
                return await self.catalog.rows_changed(text, search_path)
            except UpstreamError as exc:
                # The planner's message may quote a value; not when restricted columns are near.
                detail = "" if decision.touches_restricted else f", {exc}"
                raise EstimateError(
                    f"EXPLAIN failed upstream: SQLSTATE {exc.fields.get('C', '?')}{detail}"
                ) from exc
            except (OSError, asyncio.IncompleteReadError, pglast.parser.ParseError) as exc:
                log.error("row estimate failed: %r", exc)
                raise EstimateError("the upstream could not be asked") from exc

        return await row_limits.judged(decision, estimate)

    async def _field_notation_calls(self, analysis: Analysis) -> None:
        """``c.row_to_json`` is ``row_to_json(c)`` when customers has no such column: the
        whole row flows into it, so it counts as a whole-row use where it stands."""
        qualified = [
            (statement, use)
            for statement in analysis.statements
            for use in statement.uses
            if use.qualified and use.column is not None
        ]
        if qualified:  # only a function taking a row makes `c.name` mean name(c)
            callable_names = await self.catalog.row_functions(
                {use.column or "" for _, use in qualified}
            )
            qualified = [(s, use) for s, use in qualified if use.column in callable_names]
        if not qualified:
            return
        columns = await self.catalog.columns_of({r for _, use in qualified for r in use.candidates})
        for statement, use in qualified:
            if any(use.column in columns.get(r, ()) for r in use.candidates):
                continue
            context = DERIVED if use.context == OUTPUT else use.context
            statement.uses.append(ColumnUse(use.candidates, None, context, use.position))

    def invalidate_after_ddl(self) -> None:
        self.catalog.invalidate()
        self.forget_decisions()


def _key(
    text: str, identity: Identity | None, search_path: tuple[str, ...] | None, scope: object | None
) -> tuple[object, ...]:
    """A decision-cache key: a session that created relations has keys of its own."""
    if scope is None:
        return (text, identity, search_path)
    return (text, identity, search_path, scope)
