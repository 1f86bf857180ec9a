"""Benchmark: connection setup (connect, SELECT 1, close) per second through the agent with
SCRAM-SHA-256 and with the token as a cleartext password, direct PostgreSQL as reference.

    .venv/bin/python bench/connect.py --seconds 5 --rounds 3

Starts a tiny control plane (bench.plane.TinyControlPlane: signed bundle, token check,
verifiers) and four agents (``python -m agent``): ``--client-auth scram`` over plain TCP,
``scram`` over TLS (libpq binds the channel: SCRAM-SHA-256-PLUS), ``password`` over TLS
(cleartext only travels inside TLS), and ``password`` over plain TCP with
``--allow-insecure-listen`` (what the agent did before SCRAM: the cost SCRAM is compared to). One
libpq client (psycopg) connects in a loop; targets alternate within each round and the
median of the rounds is printed with its ratio to direct. Token checks and verifiers are
cached by the agent (30 s), so this measures the steady state: the handshake itself, not the
control plane. Direct PostgreSQL is local trust auth (no password at all). Requires
PostgreSQL on 127.0.0.1:5432 (trust, user postgres).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.testing import self_signed_certificate
from bench.plane import BENCH_TOKEN, TinyControlPlane
from bench.proxy import PG_HOST, PG_PORT, REPO, free_port, stop_processes, wait_port


def start_agent(
    workdir: Path, plane: TinyControlPlane, name: str, *extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "agent", "--control-plane", plane.url, "--token", "t"]
    command += ["--listen", f"127.0.0.1:{port}", "--datasource", "bench"]
    command += ["--upstream-database", "postgres", "--state-dir", str(workdir / name)]
    command += ["--bundle-public-key", plane.public_key, "--log-level", "WARNING", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WARDEN_MASKING_KEY": "bench"}
    process = subprocess.Popen(command, cwd=REPO, env=env)
    wait_port(port)
    return process, port


def connections_per_second(dsn: str, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-connect-"))
    cert, key = self_signed_certificate(workdir)
    tls = ("--tls-cert", cert, "--tls-key", key)
    plane = TinyControlPlane()
    processes = []
    try:
        scram, scram_port = start_agent(workdir, plane, "scram")
        scram_tls, scram_tls_port = start_agent(workdir, plane, "scram-tls", *tls)
        password, password_port = start_agent(
            workdir, plane, "password-tls", "--client-auth", "password", *tls
        )
        insecure, insecure_port = start_agent(
            workdir, plane, "password-plain", "--client-auth", "password", "--allow-insecure-listen"
        )
        processes = [scram, scram_tls, password, insecure]
        login = f"user=bench password={BENCH_TOKEN} dbname=bench connect_timeout=10"
        targets = {
            "direct PostgreSQL (trust)": f"host={PG_HOST} port={PG_PORT} user=postgres "
            "dbname=postgres sslmode=disable",
            "agent SCRAM-SHA-256, plain TCP": f"host=127.0.0.1 port={scram_port} {login} "
            "sslmode=disable",
            "agent SCRAM-SHA-256-PLUS, TLS": f"host=127.0.0.1 port={scram_tls_port} {login} "
            "sslmode=require channel_binding=require",
            "agent cleartext password, TLS": f"host=127.0.0.1 port={password_port} {login} "
            "sslmode=require",
            "agent cleartext, plain TCP (insecure)": f"host=127.0.0.1 port={insecure_port} "
            f"{login} sslmode=disable",
        }
        for dsn in targets.values():  # warm up: caches filled, code paths imported
            connections_per_second(dsn, 0.5)
        results: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, dsn in targets.items():
                results[name].append(connections_per_second(dsn, args.seconds))
        direct = statistics.median(results["direct PostgreSQL (trust)"])
        print(f"{'target':<38} {'conn/s (median)':>16} {'vs direct':>10}  rounds")
        for name, rates in results.items():
            median = statistics.median(rates)
            rounds = " ".join(f"{rate:.0f}" for rate in rates)
            print(f"{name:<38} {median:>16.1f} {median / direct:>10.2f}  {rounds}")
    finally:
        stop_processes(processes)
        plane.server.shutdown()


if __name__ == "__main__":
    main()
