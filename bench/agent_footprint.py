"""Benchmark: the agent's resident memory idle and under ``pgbench -c 8``, and its
statements per second beside PostgreSQL direct in the same run (docs/deployment.md's
sizing figures).

    .venv/bin/python bench/agent_footprint.py --seconds 20 --clients 8

Reuses bench/proxy.py's scratch database, tiny control plane and agent launcher (the agent
runs as ``python -m agent`` with guardrails and audit on). RSS is sampled every 0.2 s with
psutil; "under load" is the peak during the agent's pgbench run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.plane import TinyControlPlane
from bench.proxy import pgbench, pgbench_init, psql, start_agent

MIB = 1024 * 1024


def rss_peak_while(process: psutil.Process, work: threading.Thread) -> int:
    peak = 0
    while work.is_alive():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.2)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale", type=int, default=5)
    args = parser.parse_args()
    database = f"warden_bench_{secrets.token_hex(4)}"
    psql("postgres", f"CREATE DATABASE {database}")
    workdir = Path(tempfile.mkdtemp(prefix="warden-footprint-"))
    agent = None
    try:
        pgbench_init(database, args.scale)
        plane = TinyControlPlane()
        agent, port = start_agent(workdir, plane, database)
        watched = psutil.Process(agent.pid)
        time.sleep(5)
        idle = watched.memory_info().rss
        direct_tps = pgbench(5432, database, "extended", args.seconds, args.clients)
        result: dict[str, float] = {}

        def load() -> None:
            result["tps"] = pgbench(
                port, database, "extended", args.seconds, args.clients, None, "bench"
            )

        work = threading.Thread(target=load)
        work.start()
        peak = rss_peak_while(watched, work)
        work.join()
        after = watched.memory_info().rss
        load_avg = " ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"\nagent footprint, pgbench -S -M extended -c {args.clients} -T {args.seconds}")
        print(f"load average {load_avg}, {os.cpu_count()} CPUs")
        print(f"agent RSS idle            {idle / MIB:8.1f} MiB")
        print(f"agent RSS peak under load {peak / MIB:8.1f} MiB")
        print(f"agent RSS after load      {after / MIB:8.1f} MiB")
        print(f"direct TPS                {direct_tps:8.0f}")
        ratio = result["tps"] / direct_tps
        print(f"through the agent TPS     {result['tps']:8.0f} ({ratio:.2f}x direct)")
        print(f"audit events shipped      {plane.audit_events:8d}")
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
