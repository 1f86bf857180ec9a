"""Benchmark: instructions the agent process executes per statement, under callgrind.

    .venv/bin/python bench/agent_instructions.py [--modes simple,extended,prepared]
        [--transactions 1000,3000] [--relay agent|pump] [--keep DIR] [--database NAME]
        [--audit-journal on|off] [--workload select-only|tpcb] [--repeat N]

Wall-clock TPS on a shared 2-core machine moves ±15 % with the neighbours' load; the
instruction count of the proxy process does not.  This runs the real ``python -m agent``
(sockets, uvloop, audit shipping to a tiny control plane, timers: everything the process
does) or the bare Python relay of bench/proxy.py (``--relay pump``) under
``valgrind --tool=callgrind``, drives it with one pgbench client, and reports instructions
per transaction as the difference of two counted windows of different lengths (so the
connection's start-up, authentication included, cancels out).  "relay work" counts only
uvloop's reads, the statement's own work (a transport's read callback with libuv's read and
uvloop's buffer callback, or the loop's reader on a socket the native path reads itself);
"process" adds the timers and threads (audit shipping, polls), which run per second and so
weigh ~50 times more per statement under callgrind than at full speed.  ``--keep DIR`` keeps the
callgrind dumps (callgrind_annotate --inclusive=yes DIR/<mode>-<n>.out shows where they go).
``--workload tpcb`` runs pgbench's default TPC-B-like script (BEGIN, three UPDATEs, a SELECT,
an INSERT, END: seven round trips with fresh random values each) instead of select-only; the
table then also shows instructions per round trip.  The "C / Python / uvloop / libc" columns
split the relay work's own (exclusive) instructions by the object that ran them: the
fast path (_fastpath), the interpreter, uvloop (libuv included), and libc plus the rest.
pgbench's values are seeded, so runs send the same statements; what still moves a figure
is the collector (a full collection lands in one window or the other) and, for TPC-B, the
templates each new session decides in Python first: ``--repeat 3`` shows medians.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.plane import BENCH_TOKEN, TinyControlPlane  # noqa: E402
from bench.proxy import free_port, pgbench_init, psql  # noqa: E402

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no"]


def start(command: list[str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    out = workdir / "callgrind.out.%p"
    process = subprocess.Popen(
        [*VALGRIND, f"--callgrind-out-file={out}", *command],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PYTHONPATH": str(REPO), "WARDEN_MASKING_KEY": "bench", "PATH": "/usr/bin:/bin"},
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.5)
    raise RuntimeError(f"{command} did not listen on {port}")


def agent_command(
    plane: TinyControlPlane, database: str, port: int, state: Path, journal: str = "on"
) -> list[str]:
    return [
        *(sys.executable, "-m", "agent", "--control-plane", plane.url, "--token", "t"),
        *("--listen", f"127.0.0.1:{port}", "--datasource", "bench"),
        *("--upstream-database", database, "--state-dir", str(state)),
        *("--bundle-public-key", plane.public_key, "--log-level", "WARNING"),
        *("--audit-journal", journal),
    ]


# Round trips per transaction of each workload (pgbench sends one Sync per statement).
ROUND_TRIPS = {"select-only": 1, "tpcb": 7}


def pgbench(
    port: int, database: str, mode: str, transactions: int, user: str, workload: str
) -> None:
    command = ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-c", "1"]
    script = ["-S"] if workload == "select-only" else ["-b", "tpcb-like"]
    # One seed: each window of a length sends the same values, so the number of templates a
    # TPC-B session first meets (decided in Python, then native) is the same run to run.
    command += ["-t", str(transactions), "-M", mode, *script, "--random-seed=7", database]
    env = {"PGPASSWORD": BENCH_TOKEN, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed: {result.stdout}\n{result.stderr}")


# The relay's work: every read of uvloop's, inclusive: a transport's (libuv's read with
# uvloop's buffer callback, data_received, the native path, the writes it makes) and a
# socket the native path reads itself (the loop's reader: its recv() and the same path);
# the rest of the process is timers and threads, whose share per statement callgrind's
# slowness inflates (they run per second, not per statement).
ON_READ = re.compile(r"^\s*([\d,]+) .*(?:stream\.c:uv__read|__on_uvpoll_event) \[", re.M)
TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.M)
# An exclusive line of callgrind_annotate: "12,345 (1.2%)  file:function [object]" (inlined
# code may lack the object: its source file then says whose it is).
SELF_LINE = re.compile(r"^\s*([\d,]+) \([\d.%\s]+\)\s+(\S.*)$", re.M)
SHARES = ("C", "Python", "uvloop", "libc+")


def share_of(where: str) -> str:
    """Which column a "file:function [object]" line's instructions go to."""
    if "_fastpath" in where or "agent/fastpath/" in where:
        return "C"
    if "uvloop" in where or "libuv" in where:
        return "uvloop"
    if "python" in where.lower():
        return "Python"
    return "libc+"


def shares(dump: Path) -> dict[str, int]:
    """The process's exclusive instructions by object (see share_of)."""
    annotated = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(dump)],
        capture_output=True,
        text=True,
    ).stdout
    split = dict.fromkeys(SHARES, 0)
    for match in SELF_LINE.finditer(annotated):
        if "PROGRAM TOTALS" in match.group(2):
            continue
        split[share_of(match.group(2))] += int(match.group(1).replace(",", ""))
    return split


def counted(
    pid: int, workdir: Path, run: Callable[[], None], keep: Path | None, label: str
) -> tuple[int, int, dict[str, int]]:
    """Instructions of the process while ``run()`` runs: (all, in read callbacks, by
    object)."""
    control = ["callgrind_control"]
    subprocess.run([*control, "-i", "on", str(pid)], check=True, capture_output=True)
    subprocess.run([*control, "-z", str(pid)], check=True, capture_output=True)
    run()
    before = set(workdir.glob("callgrind.out.*"))
    subprocess.run([*control, "-d", label, str(pid)], check=True, capture_output=True)
    subprocess.run([*control, "-i", "off", str(pid)], check=True, capture_output=True)
    (dump,) = set(workdir.glob("callgrind.out.*")) - before
    total = TOTAL.search(dump.read_text(errors="replace"))
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dump)], capture_output=True, text=True
    ).stdout
    on_read = sum(int(m.group(1).replace(",", "")) for m in ON_READ.finditer(annotated))
    assert total, f"no totals in {dump}"
    split = shares(dump)
    if keep is not None:
        shutil.copy(dump, keep / f"{label}.out")
    dump.unlink()
    return int(total.group(1)), on_read, split


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", default="simple,extended,prepared")
    parser.add_argument("--transactions", default="1000,3000", help="two window lengths")
    parser.add_argument("--relay", choices=["agent", "pump"], default="agent")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps here")
    parser.add_argument("--database", help="an existing pgbench database (else a scratch one)")
    parser.add_argument("--audit-journal", choices=["on", "off"], default="on")
    parser.add_argument("--workload", choices=sorted(ROUND_TRIPS), default="select-only")
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of windows per mode; medians are shown"
    )
    args = parser.parse_args()
    short, long = (int(n) for n in args.transactions.split(","))
    database = args.database or f"warden_instr_{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="warden-instr-"))
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    process = None
    try:
        if not args.database:
            psql("postgres", f"CREATE DATABASE {database}")
            pgbench_init(database, 1)
        port = free_port()
        if args.relay == "agent":
            plane = TinyControlPlane()
            command = agent_command(plane, database, port, workdir / "state", args.audit_journal)
            user = "bench"
        else:
            command = [sys.executable, "bench/proxy.py", "--pump-listen", str(port)]
            user = "postgres"
        process = start(command, workdir, port)
        trips = ROUND_TRIPS[args.workload]
        print(
            f"{args.relay}: instructions per {args.workload} transaction ({trips} round trips;"
            f" callgrind, 1 client, windows of {short} and {long}); process by object\n"
            f"{'mode':<10}{'process':>12}{'relay work':>12}{'per trip':>10}"
            + "".join(f"{name:>9}" for name in SHARES)
        )
        for mode in args.modes.split(","):
            pgbench(port, database, mode, 300, user, args.workload)  # warm the caches
            runs = []
            for run in range(args.repeat):
                counts = {}
                for n in (short, long):

                    def window(n: int = n, mode: str = mode) -> None:
                        pgbench(port, database, mode, n, user, args.workload)

                    label = f"{mode}-{n}" + (f"-{run}" if args.repeat > 1 else "")
                    counts[n] = counted(process.pid, workdir, window, args.keep, label)
                per = [(counts[long][i] - counts[short][i]) / (long - short) for i in (0, 1)]
                runs.append(
                    per
                    + [(counts[long][2][k] - counts[short][2][k]) / (long - short) for k in SHARES]
                )
            total, relay, *split = (statistics.median(column) for column in zip(*runs, strict=True))
            cells = "".join(f"{value:>9,.0f}" for value in split)
            print(f"{mode:<10}{total:>12,.0f}{relay:>12,.0f}{relay / trips:>10,.0f}{cells}")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.database:
            psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
