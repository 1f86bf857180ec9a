"""``warden-agent --control-plane URL --token T --listen HOST:PORT --datasource NAME``
(``python -m agent …`` in a checkout)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from agent.server import AgentConfig, create_agent, masking_key_from_env
from agent.upstream import SSL_MODES, UpstreamConfig


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
    parser.add_argument("--bundle-public-key", default=None)
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
    parser.add_argument(
        "--native",
        choices=["on", "off"],
        default=os.environ.get("WARDEN_AGENT_NATIVE", "on"),
        help="the native data path for round trips with cached decisions "
        "(agent/postgres/fastpath/, built by scripts/bootstrap.sh); off: the pure-Python path "
        "only (default on)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.native not in ("on", "off"):
        parser.error("WARDEN_AGENT_NATIVE must be on or off")
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
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
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
    return AgentConfig(
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
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        hold_wait=max(0.0, args.hold_wait),
        native=args.native == "on",
        protocol=args.protocol,
        mysql_cleartext_loopback=args.mysql_cleartext_loopback,
    )


async def serve(config: AgentConfig) -> None:
    agent = create_agent(config)
    await agent.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await agent.stop()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))


if __name__ == "__main__":
    main()
