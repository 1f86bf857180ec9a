"""``warden-agent --control-plane URL --token T --listen HOST:PORT --datasource NAME``
(``python -m agent …`` in a checkout)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import IO

from agent.server import (
    CLIENT_AUTH_MODES,
    AgentConfig,
    create_agent,
    insecure_listen_problem,
    masking_key_from_env,
    tune_collector,
)
from agent.upstream import SSL_MODES, UpstreamConfig
from agent.workers import MAX_WORKERS, WorkerGroup, die_with_parent, supervise


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    command = os.path.basename(sys.argv[0])
    prog = "python -m agent" if command == "__main__.py" else command
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--control-plane", required=True)
    parser.add_argument("--token", default=os.environ.get("WARDEN_AGENT_TOKEN", ""))
    parser.add_argument("--listen", default="127.0.0.1:6432")
    parser.add_argument("--datasource", required=True)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument(
        "--protocol",
        choices=["postgresql", "mysql"],
        default="postgresql",
        help="the clients' wire protocol (mysql: MySQL and MariaDB, see agent/mysql/README.md)",
    )
    parser.add_argument(
        "--mysql-cleartext-loopback",
        action="store_true",
        help="mysql: accept a token sent in clear (mysql_clear_password) from loopback peers "
        "without TLS; for local tests and sidecars only",
    )
    parser.add_argument(
        "--client-auth",
        choices=CLIENT_AUTH_MODES,
        default=os.environ.get("WARDEN_AGENT_CLIENT_AUTH", "scram"),
        help="how clients prove their token: scram (default; SCRAM-SHA-256 for PostgreSQL, "
        "mysql_native_password for MySQL, against the control plane's verifiers: the token "
        "never crosses the network) or password (the token itself, accepted only over TLS)",
    )
    parser.add_argument(
        "--allow-insecure-listen",
        action="store_true",
        help="accept tokens as cleartext passwords without TLS, also on a non-loopback "
        "address (refused otherwise); only for a network you trust",
    )
    parser.add_argument("--upstream-port", type=int, default=None)
    parser.add_argument("--upstream-user", default=None)
    parser.add_argument(
        "--upstream-password", default=os.environ.get("WARDEN_UPSTREAM_PASSWORD", "")
    )
    parser.add_argument("--upstream-database", default=None)
    parser.add_argument(
        "--upstream-sslmode",
        choices=SSL_MODES,
        default=os.environ.get("WARDEN_UPSTREAM_SSLMODE", "prefer"),
        help="TLS to the database, as libpq's sslmode (default: prefer)",
    )
    parser.add_argument(
        "--upstream-sslrootcert", default=None, help="CA bundle that signs the server's certificate"
    )
    parser.add_argument("--upstream-sslcert", default=None, help="client certificate (PEM)")
    parser.add_argument("--upstream-sslkey", default=None, help="client certificate key (PEM)")
    parser.add_argument(
        "--state-dir", default=os.environ.get("WARDEN_AGENT_STATE_DIR", "var/agent")
    )
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument(
        "--bundle-public-key",
        default=None,
        help="Ed25519 public key(s), base64, comma-separated (current,next during a rotation); "
        "default: pin the control plane's on first use",
    )
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--audit-flush-interval", type=float, default=1.0)
    parser.add_argument("--tls-cert", default=None)
    parser.add_argument("--tls-key", default=None)
    parser.add_argument(
        "--hold-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a statement that needs approval waits up to this long for the review, with the "
        "client connection open (default 0: refuse at once, naming the access request)",
    )
    _switch(
        parser,
        "--native",
        "WARDEN_AGENT_NATIVE",
        "the native data path for round trips with cached decisions "
        "(agent/fastpath/, built by scripts/bootstrap.sh); off: the pure-Python path "
        "only (default on)",
    )
    _switch(
        parser,
        "--audit-journal",
        "WARDEN_AGENT_AUDIT_JOURNAL",
        "write every audit event to a journal file in --state-dir before the client gets "
        "its statement's result, so a killed agent loses no event (agent/journal.py); off: "
        "events wait in memory until the next flush (default on)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WARDEN_AGENT_WORKERS", "1")),
        help="processes serving the listen address together (each connection to the least "
        "busy; PostgreSQL only; see agent/workers.py). Default 1",
    )
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-group", default="", help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= MAX_WORKERS:
        parser.error(f"--workers must be between 1 and {MAX_WORKERS}")
    if args.workers > 1 and args.protocol == "mysql":
        parser.error(
            "--workers applies to PostgreSQL clients only (MySQL's KILL QUERY names a "
            "connection of one process)"
        )
    for switch, variable in (
        ("native", "WARDEN_AGENT_NATIVE"),
        ("audit_journal", "WARDEN_AGENT_AUDIT_JOURNAL"),
    ):
        if getattr(args, switch) not in ("on", "off"):
            parser.error(f"{variable} must be on or off")
    if args.upstream_sslmode not in SSL_MODES:
        parser.error(f"WARDEN_UPSTREAM_SSLMODE must be one of {', '.join(SSL_MODES)}")
    host, _, port = args.listen.rpartition(":")
    mysql = args.protocol == "mysql"
    if args.upstream_port is None:
        args.upstream_port = 3306 if mysql else 5432
    if args.upstream_user is None:
        args.upstream_user = "root" if mysql else "postgres"
    if args.upstream_database is None:
        args.upstream_database = "" if mysql else "postgres"
    logging_configure(args.log_level)
    try:
        upstream = UpstreamConfig(
            args.upstream_host,
            args.upstream_port,
            args.upstream_user,
            args.upstream_password,
            args.upstream_database,
            sslmode=args.upstream_sslmode,
            sslrootcert=args.upstream_sslrootcert,
            sslcert=args.upstream_sslcert,
            sslkey=args.upstream_sslkey,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        upstream.ssl_context  # noqa: B018 - load the certificates now, not at the first client
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"cannot load the upstream TLS files: {exc}")
    config = AgentConfig(
        control_plane=args.control_plane,
        token=args.token,
        datasource=args.datasource,
        listen_host=host or "127.0.0.1",
        listen_port=int(port),
        upstream=upstream,
        state_dir=Path(args.state_dir),
        metrics_port=args.metrics_port,
        bundle_public_key=args.bundle_public_key,
        poll_interval=args.poll_interval,
        audit_flush_interval=args.audit_flush_interval,
        masking_key=masking_key_from_env(),
        masking_key_id=os.environ.get("WARDEN_MASKING_KEY_ID", "k1"),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        hold_wait=max(0.0, args.hold_wait),
        native=args.native == "on",
        audit_journal=args.audit_journal == "on",
        protocol=args.protocol,
        mysql_cleartext_loopback=args.mysql_cleartext_loopback,
        workers=_worker_group(args),
        worker_count=args.workers,
        client_auth=args.client_auth,
        allow_insecure_listen=args.allow_insecure_listen,
    )
    problem = insecure_listen_problem(config)
    if problem is not None:
        parser.error(problem)
    return config


def _switch(parser: argparse.ArgumentParser, flag: str, variable: str, help: str) -> None:
    """An on/off option whose default comes from ``variable`` (checked after parsing)."""
    parser.add_argument(
        flag, choices=["on", "off"], default=os.environ.get(variable, "on"), help=help
    )


def logging_configure(level: str) -> None:
    """The agent's log at ``level``; httpx's one INFO line per request (every bundle poll,
    heartbeat and audit batch) only at DEBUG: its warnings and errors still show."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)


def _worker_group(args: argparse.Namespace) -> WorkerGroup | None:
    """This process's place among ``--workers`` (None: a single agent, or the supervisor
    before it starts them)."""
    if args.worker_index is None:
        return None
    return WorkerGroup(args.worker_index, args.workers, args.worker_group)


async def serve(config: AgentConfig) -> None:
    agent = create_agent(config)
    await agent.start()
    tune_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await agent.stop()


def lock_state_dir(state_dir: Path) -> IO[str]:
    """One agent (or one supervisor and its workers) per state directory: two would adopt
    each other's audit spool and journal. The lock lasts as long as the returned file is
    open, and goes with the process however it ends."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / "agent.lock", "a+")  # noqa: SIM115 (held until exit)
    except OSError as exc:
        sys.exit(f"python -m agent: cannot use the state directory {state_dir}: {exc}")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        sys.exit(
            f"python -m agent: the state directory {state_dir} is in use by another agent "
            f"(pid {holder}); give each agent its own --state-dir (WARDEN_AGENT_STATE_DIR)"
        )
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_args(argv)
    if config.workers is None:  # workers run under their supervisor's lock
        lock = lock_state_dir(config.state_dir)  # noqa: F841 (held while the agent runs)
    if config.workers is None and config.worker_count > 1:
        host, port = config.listen_host, config.listen_port
        try:
            code = supervise(argv, host, port, config.worker_count, config.metrics_port)
        except OSError as exc:
            sys.exit(f"python -m agent: cannot listen on {host}:{port}: {exc.strerror or exc}")
        sys.exit(code)
    if config.workers is not None and config.workers.group.isdigit():
        die_with_parent(int(config.workers.group))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))


if __name__ == "__main__":
    main()
