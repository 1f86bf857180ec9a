"""The agent process: shared state (bundle, decisions, catalog, audit) and the listener."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import pglast

from agent import sql as sqlmod
from agent.audit import AuditShipper
from agent.bundle import Bundle, BundlePoller, BundleStore
from agent.catalog import Catalog
from agent.controlplane import AuthResult, ControlPlaneClient, ControlPlaneUnavailable
from agent.decision import DENY, Decision, Identity, PolicyEngine
from agent.metrics import AgentMetrics
from agent.normalize import Normalizer
from agent.upstream import UpstreamConfig

log = logging.getLogger("agent")

AUTH_FRESH_SECONDS = 30.0
# A grant_runs count no max_runs reaches: the control plane said the grant is used up.
_EXHAUSTED = 2**62


@dataclass
class AgentConfig:
    control_plane: str
    token: str
    datasource: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 6432
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    state_dir: Path = Path("var/agent")
    metrics_port: int | None = None
    bundle_public_key: str | None = None
    poll_interval: float = 5.0
    audit_flush_interval: float = 1.0
    masking_key: bytes = b""
    tls_cert: str | None = None
    tls_key: str | None = None
    # Seconds a statement that needs approval waits for the review (0: refuse at once).
    hold_wait: float = 0.0
    # While the control plane is unreachable, a token verified within this many seconds
    # is still accepted, so an outage does not lock everybody out at once.
    auth_stale_seconds: float = 3600.0
    # Use the native data path (agent/_fastpath.c) when it is built.
    native: bool = True


@dataclass
class CachedAuth:
    result: AuthResult
    checked_at: float


def native_path_available() -> bool:
    """Whether the native data path extension is built and importable."""
    try:
        from agent import _fastpath  # noqa: F401
    except ImportError:
        return False
    return True


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = AgentMetrics()
        self.cp = ControlPlaneClient(config.control_plane, config.token)
        self.store = BundleStore(config.state_dir, config.bundle_public_key)
        self.store.listeners.append(self._bundle_installed)
        self.poller = BundlePoller(self.store, self.cp, config.datasource, config.poll_interval)
        self.catalog = Catalog(config.upstream)
        self.audit = AuditShipper(
            self.cp, config.state_dir, flush_interval=config.audit_flush_interval
        )
        self.engine: PolicyEngine | None = None
        self.decisions: dict[tuple[object, ...], Decision] = {}
        # Bumped whenever cached decisions stop holding (a new bundle, DDL through the
        # agent): prepared statements and native-path tickets made before are decided again.
        self.generation = 0
        # Pure text to text, so it outlives bundles (the decision cache does not).
        self.normalizer = Normalizer()
        self.auth_cache: dict[tuple[str, str], CachedAuth] = {}
        # agent-issued (pid, secret) → upstream (pid, secret) for CancelRequest
        self.cancel_keys: dict[tuple[int, int], tuple[int, int]] = {}
        self.ssl_context: ssl.SSLContext | None = None
        if config.tls_cert and config.tls_key:
            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
        self.server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sessions: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.store.load_from_disk()
        try:
            await self.poller.poll_once()
        except ControlPlaneUnavailable as exc:
            log.warning("control plane unreachable at start: %s", exc)
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port)
        self._tasks = [
            asyncio.create_task(self.poller.run()),
            asyncio.create_task(self.audit.run()),
            asyncio.create_task(self._watch_metrics()),
        ]
        from agent.session import Session

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self.sessions.add(task)
            try:
                await Session(self, reader, writer).run()
            except asyncio.CancelledError:
                pass  # agent shutdown
            finally:
                if task is not None:
                    self.sessions.discard(task)

        self.server = await asyncio.start_server(
            on_client,
            self.config.listen_host,
            self.config.listen_port,
            limit=1 << 20,
            reuse_address=True,
        )
        sock = self.server.sockets[0].getsockname()
        self.config.listen_port = sock[1]
        log.info("agent listening on %s:%s", sock[0], sock[1])
        if self.config.native and not native_path_available():
            log.warning(
                "the native data path (agent/_fastpath.c) is not built; using the pure-Python "
                "path. Build it with: python setup.py build_ext --inplace"
            )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.sessions):
            task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self.sessions]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.audit.close()
        await self.catalog.close()
        await self.cp.close()

    async def _watch_metrics(self) -> None:
        while True:
            self.metrics.bundle_last_poll_timestamp.set(self.store.last_success)
            self.metrics.audit_spooled.set(await asyncio.to_thread(self.audit.spooled_count))
            await asyncio.sleep(5)

    def _bundle_installed(self, bundle: Bundle) -> None:
        self.engine = PolicyEngine(bundle)
        self.decisions.clear()
        self.generation += 1
        self.metrics.bundle_installed(bundle.version, bundle.loaded_at)

    # ------------------------------------------------------------ authentication

    async def authenticate(self, identity: str, token: str) -> AuthResult:
        """Check a personal access token with the control plane (cached)."""
        key = (identity, hashlib.sha256(token.encode()).hexdigest())
        cached = self.auth_cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached.checked_at < AUTH_FRESH_SECONDS:
            return cached.result
        try:
            result = await self.cp.authenticate(self.config.datasource, identity, token)
        except ControlPlaneUnavailable:
            if (
                cached is not None
                and cached.result.ok
                and (now - cached.checked_at < self.config.auth_stale_seconds)
            ):
                return cached.result
            raise
        self.auth_cache[key] = CachedAuth(result, now)
        return result

    def issue_cancel_key(self, upstream_pid: int, upstream_secret: int) -> tuple[int, int]:
        while True:
            key = (secrets.randbits(31), secrets.randbits(31))
            if key not in self.cancel_keys:
                self.cancel_keys[key] = (upstream_pid, upstream_secret)
                return key

    # ------------------------------------------------------------ decisions

    def decide_cached(
        self,
        identity: Identity | None,
        text: str,
        search_path: tuple[str, ...] | None,
    ) -> Decision | None:
        """The cached decision for this text, or None (then call ``decide``)."""
        decisions = self.decisions
        # A text without literals (e.g. "... WHERE id = $1") is its own normalized form,
        # so it is found without normalizing; normalize is idempotent, so a text found
        # this way is a normalized form and its decision is the right one.
        cached = decisions.get((text, identity, search_path))
        if cached is None:
            try:
                normalized = self.normalizer.normalize(text)
            except pglast.parser.ParseError:
                return None
            cached = decisions.get((normalized, identity, search_path))
        if cached is not None and cached.valid_until > time.time():
            return cached
        return None

    async def decide(
        self,
        identity: Identity,
        text: str,
        search_path: tuple[str, ...] | None,
    ) -> Decision:
        """Decision for one query string; cached by normalized text, identity, search_path
        and bundle (a new bundle builds a new engine and clears the cache)."""
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
        key = (normalized, identity, search_path)
        cached = self.decisions.get(key)
        if cached is not None and cached.valid_until > time.time():
            return cached
        decision = await self._decide_uncached(engine, identity, text, normalized, search_path)
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
        # schema (pg_temp first of all) may be what the name resolves to.
        relations = analysis.relations
        try:
            views = await self.catalog.views_among(relations) if relations else {}
            functions = analysis.functions
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
            if statement.functions & user_functions:
                statement.opaque = True
        counted: set[int] = set()
        while True:
            decision = engine.decide(
                identity,
                analysis,
                fingerprint=fingerprint,
                search_path=list(search_path) if search_path else None,
                views=views,
            )
            refused = await self._count_grant_runs(engine, decision, counted)
            if isinstance(refused, Decision):
                return refused
            if not refused:
                break
            # The control plane refused a grant (used up elsewhere, revoked): it is marked
            # used up, so deciding again goes without it (hold, mask or deny).  This pass's
            # local counts are undone first; runs the control plane already counted stay in
            # ``counted`` and are not posted again.
            for grant_id in decision.counted_grants:
                if engine.grant_runs.get(grant_id, 0) < _EXHAUSTED:
                    engine.grant_runs[grant_id] -= 1
        decision.fingerprint = fingerprint
        decision.statement = normalized
        decision.kinds = [s.kind for s in analysis.statements]
        decision.copies_in = "copy_from" in decision.kinds
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
        decision.invalidates_catalog = any(
            s.kind in ("ddl", "create_as") for s in analysis.statements
        )
        return decision

    async def _field_notation_calls(self, analysis: sqlmod.Analysis) -> None:
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
            context = sqlmod.DERIVED if use.context == sqlmod.OUTPUT else use.context
            statement.uses.append(sqlmod.ColumnUse(use.candidates, None, context, use.position))

    async def _count_grant_runs(
        self, engine: PolicyEngine, decision: Decision, counted: set[int]
    ) -> Decision | bool:
        """Have the control plane count each max_runs grant the decision uses (once per
        statement: ``counted``), so the limit holds across agents and restarts.  Returns
        whether it refused one (now marked used up), or a denial when it is unreachable."""
        refused = False
        for grant_id in decision.counted_grants:
            if grant_id in counted:
                continue
            try:
                refusal = await self.cp.use_grant_run(grant_id, self.config.datasource)
            except ControlPlaneUnavailable as exc:
                log.warning("cannot count a run of grant %s: %s", grant_id, exc)
                return Decision(
                    DENY,
                    rule=f"grant:{grant_id}",
                    message=f"grant {grant_id} allows a limited number of runs and the Warden "
                    "control plane is unreachable to count this one; the statement was not run",
                    valid_until=time.time(),  # an outage ends: decide again next time
                )
            if refusal is None:
                counted.add(grant_id)
            else:
                log.info("grant %s refused by the control plane: %s", grant_id, refusal)
                engine.grant_runs[grant_id] = _EXHAUSTED
                refused = True
        return refused

    def invalidate_after_ddl(self) -> None:
        self.catalog.invalidate()
        self.decisions.clear()
        self.generation += 1


def masking_key_from_env() -> bytes:
    value = os.environ.get("WARDEN_MASKING_KEY", "")
    return value.encode()
