"""The agent process, whatever protocol it speaks: shared state (bundle, policy engine,
decision cache, audit, metrics), the control-plane token check and the listener.

A protocol package subclasses ``Agent``: it decides statements (``decide``) with its own
analyser and catalog, and serves one client connection (``serve_client``); see
``agent.postgres.proxy.PostgresAgent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from agent.analysis import Analysis, Relation
from agent.audit import AuditShipper
from agent.bundle import Bundle, BundlePoller, BundleStore
from agent.controlplane import ControlPlaneClient, ControlPlaneUnavailable
from agent.decision import PolicyEngine
from agent.health import health_serve
from agent.heartbeat import HeartbeatSender
from agent.logins import Logins
from agent.metrics import AgentMetrics
from agent.relations import Created
from agent.verdicts import DENY, Decision, Identity
from agent.version import VERSION
from agent.workers import (
    SharedListener,
    WorkerGroup,
    adopt_orphan_journals,
    adopt_orphan_spools,
    orphan_follow_ups,
    shared_listener,
)

log = logging.getLogger("agent")

# A grant_runs count no max_runs reaches: the control plane said the grant is used up.
_EXHAUSTED = 2**62


@dataclass
class AgentConfig:
    control_plane: str
    token: str
    datasource: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 6432
    # The protocol package's upstream settings (agent.postgres.upstream.UpstreamConfig).
    upstream: Any = None
    state_dir: Path = Path("var/agent")
    metrics_port: int | None = None
    bundle_public_key: str | None = None
    poll_interval: float = 5.0
    audit_flush_interval: float = 1.0
    masking_key: bytes = b""
    # The id of masking_key: a bundle naming another key (or an agent without one) gets its
    # hash masks as redact (Bundle.without_keyed_masks).
    masking_key_id: str = "k1"
    tls_cert: str | None = None
    tls_key: str | None = None
    # Seconds a statement that needs approval waits for the review (0: refuse at once).
    hold_wait: float = 0.0
    # While the control plane is unreachable, a token verified within this many seconds
    # is still accepted, so an outage does not lock everybody out at once.
    auth_stale_seconds: float = 3600.0
    # Use the native data path (agent/fastpath/) when it is built.
    native: bool = True
    # The clients' protocol: "postgresql" or "mysql" (agent.mysql).
    protocol: str = "postgresql"
    # MySQL: accept a token sent in clear (mysql_clear_password) from loopback peers
    # without TLS; for local tests and sidecars only.
    mysql_cleartext_loopback: bool = False
    # One of several processes on the listen address (agent/workers.py), or None.
    workers: WorkerGroup | None = None
    # --workers: how many processes the supervisor starts (1: this process serves alone).
    worker_count: int = 1
    # How clients prove their token: "scram" (challenge-response against the control
    # plane's verifiers: SCRAM-SHA-256 for PostgreSQL, mysql_native_password for MySQL;
    # the token never crosses the network) or "password" (the token itself, TLS only).
    client_auth: str = "scram"
    # Accept tokens in clear without TLS, and listen beyond loopback that way (see
    # ``insecure_listen_problem``); for networks the operator vouches for.
    allow_insecure_listen: bool = False
    # Journal every audit event before its result reaches the client (agent/journal.py):
    # a killed agent loses none.  Off: events wait in memory until the next flush.
    audit_journal: bool = True


CLIENT_AUTH_MODES = ("scram", "password")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard: assume it is reachable from the network


def insecure_listen_problem(config: AgentConfig) -> str | None:
    """Why the agent must not start as configured: clients could only log in by sending
    their token in clear over the network (password auth, no TLS, beyond loopback)."""
    if config.client_auth not in CLIENT_AUTH_MODES:
        return f"unknown client auth {config.client_auth!r} (use {' or '.join(CLIENT_AUTH_MODES)})"
    if (
        config.client_auth == "password"
        and not (config.tls_cert and config.tls_key)
        and not is_loopback_host(config.listen_host)
        and not config.allow_insecure_listen
    ):
        return (
            f"refusing to listen on {config.listen_host} with --client-auth password and no "
            "TLS: clients would send their tokens in clear over the network. Give "
            "--tls-cert/--tls-key, use --client-auth scram (the default), or pass "
            "--allow-insecure-listen if this network is trusted"
        )
    return None


class InsecureListen(ValueError):
    """The configuration would take tokens in clear over the network."""


class Agent:
    # Read by the native data path every round trip (a slot is read straight from the
    # instance: fastpath field_get); other attributes as usual.
    __slots__ = ("__dict__", "__weakref__", "engine", "generation")

    def __init__(self, config: AgentConfig) -> None:
        problem = insecure_listen_problem(config)
        if problem is not None:
            raise InsecureListen(problem)
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = AgentMetrics()
        self.cp = ControlPlaneClient(config.control_plane, config.token)
        self.store = BundleStore(config.state_dir, config.bundle_public_key)
        self.store.listeners.append(self._bundle_installed)
        self.poller = BundlePoller(self.store, self.cp, config.datasource, config.poll_interval)
        workers = config.workers
        self.audit = AuditShipper(
            self.cp,
            config.state_dir,
            flush_interval=config.audit_flush_interval,
            spool_name=workers.spool_name() if workers else "audit-spool.jsonl",
            journal_name=(
                (workers.journal_name() if workers else "audit-journal.bin")
                if config.audit_journal
                else None
            ),
        )
        self.engine: PolicyEngine | None = None
        # Why the bundle in force has its hash masks redacted ("" when it has not): /readyz.
        self.masking_problem = ""
        self.decisions: dict[tuple[object, ...], Decision] = {}
        # Bumped whenever cached decisions stop holding (a new bundle, DDL through the
        # agent): prepared statements and native-path tickets made before are decided again.
        self.generation = 0
        self.logins = Logins(
            self.cp,
            config.datasource,
            stale_seconds=config.auth_stale_seconds,
            waiting_path=config.state_dir
            / (workers.follow_ups_name() if workers else "login-follow-ups.json"),
        )
        # agent-issued (pid, secret) → upstream (pid, secret) for CancelRequest
        self.cancel_keys: dict[tuple[int, int], tuple[int, int]] = {}
        self.ssl_context: ssl.SSLContext | None = None
        if config.tls_cert and config.tls_key:
            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
        # SCRAM-SHA-256-PLUS's tls-server-end-point data (set by the PostgreSQL agent).
        self.channel_binding: bytes | None = None
        self.server: asyncio.Server | SharedListener | None = None
        self._cancel_server: asyncio.AbstractServer | None = None
        self.health_server: WSGIServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sessions: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        workers = self.config.workers
        former_follow_ups: list[Path] = []
        if workers is None or workers.index == 0:  # fewer workers than last time
            count = workers.count if workers else 1
            taken = adopt_orphan_spools(self.config.state_dir, count, self.audit.spool_path)
            if taken:
                log.info("took over %s spooled audit batches of former workers", taken)
            taken = adopt_orphan_journals(self.config.state_dir, count, self.audit.spool_path)
            if taken:
                log.info("took over %s journaled audit events of former workers", taken)
            former_follow_ups = orphan_follow_ups(self.config.state_dir, count)
        restored = self.logins.restore_waiting(former_follow_ups)
        if restored:
            log.info("%s login follow-ups of a stopped agent wait for the control plane", restored)
        recovered = self.audit.recover_journal()
        if recovered:
            log.info("recovered %s audit events from the journal of a killed agent", recovered)
        self.store.load_from_disk()
        try:
            await self.poller.poll_once()
        except ControlPlaneUnavailable as exc:
            log.warning("control plane unreachable at start: %s", exc)
        metrics_port = self.config.metrics_port
        if workers is not None:  # the supervisor serves the metrics port itself
            metrics_port = workers.metrics_port(metrics_port)
        if metrics_port is not None:
            self.health_server = health_serve(self, metrics_port)
        self._tasks = [
            asyncio.create_task(self.poller.run()),
            asyncio.create_task(self.audit.run()),
            asyncio.create_task(self._watch_metrics()),
            asyncio.create_task(self.logins.follow_up_later()),
        ]

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self.sessions.add(task)
            try:
                await self.serve_client(reader, writer)
            except asyncio.CancelledError:
                pass  # agent shutdown
            finally:
                if task is not None:
                    self.sessions.discard(task)

        # A worker takes its share of the supervisor's socket (agent/workers.py).
        self.server = None
        if workers is not None:
            self.server = shared_listener(workers, on_client, limit=1 << 20)
        if self.server is None:
            self.server = await asyncio.start_server(
                on_client,
                self.config.listen_host,
                self.config.listen_port,
                limit=1 << 20,
                reuse_address=True,
                reuse_port=workers is not None,
            )
        if workers is not None:
            self._cancel_server = await workers.serve_cancels(self.cancel)
        sock = self.server.sockets[0].getsockname()
        self.config.listen_port = sock[1]
        log.info("warden-agent %s listening on %s:%s", VERSION, sock[0], sock[1])
        self._tasks.append(asyncio.create_task(HeartbeatSender(self).run()))

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One client connection, from its first byte to its end (the protocol's session)."""
        raise NotImplementedError

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._cancel_server is not None:
            self._cancel_server.close()
        if self.health_server is not None:
            await asyncio.to_thread(self.health_server.shutdown)
            self.health_server.server_close()
        for task in list(self.sessions):
            task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self.sessions]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):  # a last try for the login follow-ups waiting
            await asyncio.wait_for(self.logins.retry_unreported(), 5)
        self.logins.forget_unreported()
        await self.audit.close()
        await self.close_protocol()
        await self.cp.close()

    async def close_protocol(self) -> None:
        """Release what the protocol package holds (catalog connections)."""

    async def _watch_metrics(self) -> None:
        while True:
            self.metrics.bundle_last_poll_timestamp.set(self.store.last_success)
            spooled = 0
            if self.audit.spool_path.exists():  # no thread hop while nothing is spooled
                spooled = await asyncio.to_thread(self.audit.spooled_count)
            self.metrics.audit_spooled.set(spooled)
            await asyncio.sleep(5)

    def _bundle_installed(self, bundle: Bundle) -> None:
        problem = masking_key_problem(bundle, self.config)
        if problem and problem != self.masking_problem:
            log.warning("bundle %s: %s", bundle.version, problem)
        self.masking_problem = problem
        self.engine = PolicyEngine(bundle.without_keyed_masks() if problem else bundle)
        self.decisions.clear()
        self.generation += 1
        self.metrics.bundle_installed(bundle.version, bundle.loaded_at)

    # ------------------------------------------------------------ authentication

    def forget_logins(self) -> None:
        """Forget every cached token check and verifier (as if their 30 s had passed)."""
        self.logins.forget()

    def issue_cancel_key(self, upstream_pid: int, upstream_secret: int) -> tuple[int, int]:
        """A (process id, secret) for the client's BackendKeyData; among workers the
        process id names the worker (``WorkerGroup.cancel_key_pid``)."""
        workers = self.config.workers
        while True:
            key = (secrets.randbits(31), secrets.randbits(31))
            if workers is not None:
                key = (workers.cancel_key_pid(key[0]), key[1])
            if key not in self.cancel_keys:
                self.cancel_keys[key] = (upstream_pid, upstream_secret)
                return key

    async def cancel(self, pid: int, secret: int) -> None:
        """A cancel request for the key (pid, secret), from a client or forwarded by
        another worker; the protocol cancels what it issued the key for."""

    async def cancel_or_forward(self, pid: int, secret: int) -> None:
        """A client's cancel request: cancel here, or forward it to the worker whose key
        it is (an unknown key cancels nothing, like PostgreSQL)."""
        workers = self.config.workers
        if workers is not None and not workers.owns(pid):
            if await workers.forward_cancel(pid, secret):
                self.metrics.cancel_requests.labels("forwarded").inc()
            return
        self.metrics.cancel_requests.labels("received").inc()
        await self.cancel(pid, secret)

    # ------------------------------------------------------------ decisions

    async def decide_counting_runs(
        self,
        engine: PolicyEngine,
        identity: Identity,
        analysis: Analysis,
        *,
        fingerprint: str,
        search_path: tuple[str, ...] | None,
        views: dict[Relation, list[tuple[str, str, str | None]]],
        created: Created | None = None,
        unresolved: Mapping[Relation, str] | None = None,
    ) -> Decision:
        """The engine's decision, with each max_runs grant it relies on counted by the
        control plane (deciding again without a grant the control plane refuses)."""
        counted: set[int] = set()
        while True:
            decision = engine.decide(
                identity,
                analysis,
                fingerprint=fingerprint,
                search_path=list(search_path) if search_path else None,
                views=views,
                created=created,
                unresolved=unresolved,
            )
            refused = await self._count_grant_runs(engine, decision, counted)
            if isinstance(refused, Decision):
                return refused
            if not refused:
                return decision
            # The control plane refused a grant (used up elsewhere, revoked): it is marked
            # used up, so deciding again goes without it (hold, mask or deny).  This pass's
            # local counts are undone first; runs the control plane already counted stay in
            # ``counted`` and are not posted again.
            for grant_id in decision.counted_grants:
                if engine.grant_runs.get(grant_id, 0) < _EXHAUSTED:
                    engine.grant_runs[grant_id] -= 1

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

    def forget_decisions(self) -> None:
        """Cached decisions stop holding (DDL through the agent): decide everything again."""
        self.decisions.clear()
        self.generation += 1


# Young collections after this many tracked allocations, not 700: every statement allocates
# its audit event, which stays queued until the flush (callgrind, bench/agent_cpu.py
# workloads: ~170 instructions fewer per pgbench -S transaction with the freeze).
YOUNG_COLLECTION = 10_000


def tune_collector() -> None:
    """Once the agent has started: what it loaded (modules, bundle, catalog) lives as long as
    the process, so the collector no longer walks it, and young collections come less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


def create_agent(config: AgentConfig) -> Agent:
    """The agent for the configured client protocol (each protocol's package imported only
    when it is used, so a PostgreSQL agent never loads sqlglot and the reverse)."""
    if config.protocol == "mysql":
        from agent.mysql.server import MySqlAgent

        return MySqlAgent(config)
    from agent.postgres.proxy import PostgresAgent

    return PostgresAgent(config)


def masking_key_from_env() -> bytes:
    value = os.environ.get("WARDEN_MASKING_KEY", "")
    return value.encode()


def masking_key_problem(bundle: Bundle, config: AgentConfig) -> str:
    """Why this agent cannot give the bundle's hash masks ("" when it can): it holds no
    key, or not the one the bundle names.  Those masks are then redacted, never computed
    with an empty or another key."""
    if not config.masking_key:
        return "no masking key (WARDEN_MASKING_KEY): hash masks are redacted until there is one"
    if bundle.masking_key_id and bundle.masking_key_id != config.masking_key_id:
        return (
            f"the bundle's hash masks use masking key {bundle.masking_key_id!r} and this agent "
            f"holds {config.masking_key_id!r} (WARDEN_MASKING_KEY_ID): they are redacted until "
            "the two agree"
        )
    return ""
