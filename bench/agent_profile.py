"""Benchmark: where each proxy's CPU goes per transaction, agent vs PgBouncer.

    .venv/bin/python bench/agent_profile.py --seconds 8 --loads select-only-simple,tpcb-simple

Runs pgbench against PgBouncer, the bare Python relay of bench/proxy.py (uvloop, no
protocol work) and the agent, as bench/proxy.py starts them, with ``perf record`` sampling
every process of the proxy, and prints each proxy's CPU per transaction split by where it
ran (the kernel; CPython; the agent's C fast path; uvloop; libc; the rest) and the share
under the system calls a relay makes (send, recv, write, read, epoll_wait).
Samples under perf are slower than a plain run: compare proxies within one run, not with
bench/proxy.py's figures.  Requires perf (root or perf_event_paranoid <= -1) and what
bench/proxy.py requires.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agent_syscalls import LOADS, started_proxies  # noqa: E402
from bench.proxy import pgbench, tree_pids  # noqa: E402

FREQUENCY = 2000  # samples per CPU second
# Shared objects by where their time goes (the first pattern that matches).
PLACES = [
    ("kernel", re.compile(r"kernel")),
    ("CPython", re.compile(r"libpython|^python")),
    ("fast path", re.compile(r"_fastpath")),
    ("uvloop", re.compile(r"uvloop|loop\.cpython")),
    ("libc", re.compile(r"libc\.so")),
]
# Kernel entry points, counted with their callees.  uvloop's own transports (the bare
# relay) send and receive with write and read; the agent's native path and PgBouncer with
# send and recv, so there write is the audit journal's.
CALLS = {
    "send": "__sys_sendto",
    "recv": "__sys_recvfrom",
    "write": "ksys_write",
    "read": "ksys_read",
    "epoll": "do_epoll_wait",
}
_ROW = re.compile(r"^\s+([\d.]+)%\s+(?:[\d.]+%\s+)?(\d+)\s+(.+?)\s*$")


def _report(data: Path, *options: str) -> list[tuple[float, int, str]]:
    """(percent, samples, name) rows of ``perf report`` on ``data``: with ``--children``
    the percent counts the callees' samples too, the samples a row's own."""
    command = ["perf", "report", "-i", str(data), "-n", "-g", "none", "--stdio", *options]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in output.splitlines():
        match = _ROW.match(line)
        if match:
            rows.append((float(match.group(1)), int(match.group(2)), match.group(3)))
    return rows


def profiled_run(
    pid: int,
    port: int,
    database: str,
    mode: str,
    seconds: int,
    clients: int,
    script: str | None,
    user: str,
) -> tuple[float, dict[str, int], dict[str, int]]:
    """TPS, samples by place and samples under each relay system call of one pgbench run."""
    workdir = Path(tempfile.mkdtemp(prefix="warden-profile-"))
    data = workdir / "perf.data"
    pids = ",".join(str(p) for p in tree_pids(pid))
    recorder = subprocess.Popen(
        ["perf", "record", "-q", "-F", str(FREQUENCY), "-g", "-o", str(data), "-p", pids],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tps = pgbench(port, database, mode, seconds, clients, script, user)
    finally:
        recorder.send_signal(2)  # SIGINT: perf writes its data and stops
        recorder.wait(60)
    places = dict.fromkeys([name for name, _ in PLACES] + ["other"], 0)
    for _, samples, dso in _report(data, "--no-children", "--sort", "dso"):
        place = next((name for name, pattern in PLACES if pattern.search(dso)), "other")
        places[place] += samples
    total = sum(places.values())
    calls = dict.fromkeys(CALLS, 0)
    for percent, _, symbol in _report(data, "--children", "--sort", "sym"):
        for call, entry in CALLS.items():
            if symbol.endswith(f"] {entry}"):
                calls[call] = max(calls[call], round(percent * total / 100))
    shutil.rmtree(workdir, ignore_errors=True)
    return tps, places, calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--loads", default="select-only-simple,tpcb-simple")
    args = parser.parse_args()
    with started_proxies(args.scale, "1", "warden-profile-") as (database, targets):
        for workload, mode, script in LOADS:
            if f"{workload}-{mode}" not in args.loads.split(","):
                continue
            print(
                f"\n{workload} {mode}, {args.clients} clients, {args.seconds}s, load "
                f"{os.getloadavg()[0]:.1f}: CPU µs per transaction under perf "
                f"({FREQUENCY} samples/s)"
            )
            for name, pid, port, user in targets:
                pgbench(port, database, mode, 2, args.clients, script, user)  # warm caches
                tps, places, calls = profiled_run(
                    pid, port, database, mode, args.seconds, args.clients, script, user
                )
                per_txn = 1e6 / FREQUENCY / (tps * args.seconds)
                split = ", ".join(f"{place} {n * per_txn:.1f}" for place, n in places.items())
                under = ", ".join(f"{call} {n * per_txn:.1f}" for call, n in calls.items())
                total = sum(places.values()) * per_txn
                print(f"  {name:<10} {total:6.1f}: {split}; under {under} ({tps:.0f} tps)")


if __name__ == "__main__":
    main()
