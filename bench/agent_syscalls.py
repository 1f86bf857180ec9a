"""Benchmark: system calls and context switches per transaction, agent vs PgBouncer.

    .venv/bin/python bench/agent_syscalls.py --seconds 5 --agent-workers 1,2

Runs pgbench (select-only simple and extended, TPC-B-like simple, extended and prepared)
against PgBouncer, the bare Python relay of bench/proxy.py (uvloop, no protocol work: the
floor a Python relay starts from) and the agent (each number of ``--agent-workers``) as
bench/proxy.py starts them,
with ``perf trace -s`` attached to every process of the proxy, and prints each proxy's
system calls per transaction by name, and its context switches per transaction (voluntary:
waits for I/O; from /proc).  Counts, not times: they hold on a loaded machine.  Requires
perf (tracepoints readable: root or perf_event_paranoid <= -1) and what bench/proxy.py
requires.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.plane import TinyControlPlane  # noqa: E402
from bench.proxy import (  # noqa: E402
    pgbench,
    pgbench_init,
    process_tree_usage,
    psql,
    start_agent,
    start_pgbouncer,
    start_pump,
    stop_bench,
    tree_pids,
)

# workload, pgbench mode, script ("tpcb": the built-in TPC-B-like one, None: -S)
LOADS = [
    ("select-only", "simple", None),
    ("select-only", "extended", None),
    ("tpcb", "simple", "tpcb"),
    ("tpcb", "extended", "tpcb"),
    ("tpcb", "prepared", "tpcb"),
]
_SUMMARY_LINE = re.compile(r"^\s+(\w+)\s+(\d+)\s+\d+\s")


Target = tuple[str, int, int, str]  # name, pid, port, pgbench user


@contextmanager
def started_proxies(
    scale: int, agent_workers: str, prefix: str
) -> Iterator[tuple[str, list[Target]]]:
    """A scratch pgbench database at ``scale`` and, in front of it, PgBouncer, the bare relay
    and the agent with each number of ``agent_workers`` ("1,2"), as bench/proxy.py starts
    them: the database and the targets; all stopped and dropped on exit."""
    database = f"warden_bench_{secrets.token_hex(4)}"
    psql("postgres", f"CREATE DATABASE {database}")
    processes: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        pgbench_init(database, scale)
        plane = TinyControlPlane()
        bouncer, bouncer_port = start_pgbouncer(workdir, database)
        processes.append(bouncer)
        pump, pump_port = start_pump()
        processes.append(pump)
        targets = [
            ("pgbouncer", bouncer.pid, bouncer_port, "postgres"),
            ("bare relay", pump.pid, pump_port, "postgres"),
        ]
        for workers in (int(n) for n in agent_workers.split(",")):
            agent, port = start_agent(workdir / f"agent-{workers}", plane, database, workers)
            processes.append(agent)
            targets.append((f"agent x{workers}", agent.pid, port, "bench"))
        yield database, targets
    finally:
        stop_bench(processes, database, workdir)


def traced_run(
    pid: int,
    port: int,
    database: str,
    mode: str,
    seconds: int,
    clients: int,
    script: str | None,
    user: str,
) -> tuple[float, dict[str, int], int]:
    """TPS, system calls by name and context switches of one pgbench run under perf trace."""
    output = Path(tempfile.mkdtemp(prefix="warden-perf-")) / "trace.txt"
    pids = ",".join(str(p) for p in tree_pids(pid))
    tracer = subprocess.Popen(
        ["perf", "trace", "-s", "-o", str(output), "-p", pids],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached
    before = process_tree_usage(pid)[1]
    tps = pgbench(port, database, mode, seconds, clients, script, user)
    switches = process_tree_usage(pid)[1] - before
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    calls: dict[str, int] = {}
    for line in output.read_text().splitlines():
        match = _SUMMARY_LINE.match(line)
        if match and match.group(1) != "syscall":
            calls[match.group(1)] = calls.get(match.group(1), 0) + int(match.group(2))
    shutil.rmtree(output.parent, ignore_errors=True)
    return tps, calls, switches


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--agent-workers", default="1")
    parser.add_argument("--loads", default="all", help="e.g. tpcb-simple,select-only-extended")
    args = parser.parse_args()
    with started_proxies(args.scale, args.agent_workers, "warden-syscalls-") as (
        database,
        targets,
    ):
        for workload, mode, script in LOADS:
            if args.loads != "all" and f"{workload}-{mode}" not in args.loads.split(","):
                continue
            print(
                f"\n{workload} {mode}, {args.clients} clients, {args.seconds}s, "
                f"load {os.getloadavg()[0]:.1f}: per transaction"
            )
            for name, pid, port, user in targets:
                tps, calls, switches = traced_run(
                    pid, port, database, mode, args.seconds, args.clients, script, user
                )
                count = tps * args.seconds
                total = sum(calls.values())
                top = sorted(calls.items(), key=lambda item: -item[1])[:8]
                cells = ", ".join(f"{call} {n / count:.2f}" for call, n in top)
                print(
                    f"  {name:<11} {total / count:6.2f} syscalls, {switches / count:5.2f} "
                    f"switches ({tps:.0f} tps traced): {cells}"
                )


if __name__ == "__main__":
    main()
