"""Benchmark: CPU instructions the MySQL agent spends per point select, counted by callgrind.

    .venv/bin/python bench/mysql_instructions.py [--warmup 200] [--chunks 5] [--queries 200]

Wall-clock figures on a shared VM swing with the load; instruction counts do not.  This
runs the agent (``--protocol mysql``) under ``valgrind --tool=callgrind`` with
instrumentation off, sends ``--warmup`` point selects over one PyMySQL connection (the
decision, mask and audit caches fill), switches instrumentation on with
``callgrind_control``, counts ``--chunks`` runs of ``--queries`` more one by one, and
prints the agent process's instructions per query (the lowest chunk: decisions expire
after 30 s and their catalog refresh, slow under valgrind, lands in some chunk) for the
workloads of ``bench/proxy_mysql.py`` (plain, and with a masked column), and for the bare
Python relay of that benchmark as the yardstick.
Requires MariaDB on 127.0.0.1:3306 (root, no password) and valgrind.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.plane import BENCH_TOKEN, TinyControlPlane  # noqa: E402
from bench.proxy import free_port, wait_port  # noqa: E402
from bench.proxy_mysql import MY_HOST, mariadb, mysql_bundle  # noqa: E402
from bench.proxy_mysql import start_agent as start_mysql_agent  # noqa: E402

WORKLOADS = {
    "plain": "SELECT id, balance FROM accounts WHERE id = {}",
    "masked": "SELECT id, balance, filler FROM accounts WHERE id = {}",
}


def under_callgrind(command: list[str], output: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={output}",
        f"--log-file={output}.log",
        *command,
    ]


def callgrind(pid: int, *flags: str) -> None:
    """One callgrind_control command to the process ``pid`` only (never to all)."""
    if pid <= 0:
        raise ValueError(f"not a process id: {pid}")
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def dumped_instructions(output: Path) -> list[int]:
    """Instructions of each dump of a callgrind run, in order ("totals:" lines)."""
    counts = []
    for dump in sorted(output.parent.glob(f"{output.name}.*"), key=_dump_number):
        if dump.suffix != ".log":
            match = re.search(r"^totals: (\d+)", dump.read_text(), re.MULTILINE)
            counts.append(int(match.group(1)) if match else 0)
    return counts


def _dump_number(dump: Path) -> int:
    suffix = dump.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def count(
    start: Callable[[Path], tuple[subprocess.Popen[bytes], int]],
    user: str,
    password: str,
    database: str,
    sql: str,
    warmup: int,
    queries: int,
    chunks: int,
    workdir: Path,
) -> list[float]:
    """Instructions per query of the process ``start`` launches (under callgrind), for
    each of ``chunks`` runs of ``queries`` queries, each counted on its own."""
    import pymysql

    output = workdir / f"callgrind.{secrets.token_hex(4)}.out"
    process, port = start(output)
    try:
        connection = pymysql.connect(
            host=MY_HOST, port=port, user=user, password=password, database=database
        )
        with connection.cursor() as cursor:
            for i in range(warmup):
                cursor.execute(sql.format(i % 1000 + 1))
                cursor.fetchall()
            for chunk in range(chunks):
                callgrind(process.pid, "-z")
                callgrind(process.pid, "-i", "on")
                for i in range(queries):
                    cursor.execute(sql.format((chunk * queries + i) * 7919 % 100000 + 1))
                    cursor.fetchall()
                callgrind(process.pid, "-i", "off")
                callgrind(process.pid, "-d")
        connection.close()
    finally:
        process.terminate()
        process.wait(120)
    return [total / queries for total in dumped_instructions(output)[:chunks]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=200, help="per counted chunk")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="run only this workload")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--keep", type=Path, help="copy the callgrind dumps here (for callgrind_annotate)"
    )
    args = parser.parse_args()
    # Stopped (e.g. by timeout): still drop the database and stop the processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    database = f"warden_bench_{secrets.token_hex(4)}"
    mariadb(
        f"CREATE DATABASE {database}; USE {database}; CREATE TABLE accounts (id int PRIMARY KEY, "
        f"balance int, filler varchar(84)); INSERT INTO accounts SELECT seq, 0, "
        f"REPEAT('x', 84) FROM seq_1_to_100000"
    )
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-mysql-ir-"))
    plane = TinyControlPlane(mysql_bundle(database))

    def agent(output: Path) -> tuple[Any, int]:
        prefix = under_callgrind([], output)
        return start_mysql_agent(workdir, plane, database, prefix=prefix, startup_seconds=300)

    def relay(output: Path) -> tuple[Any, int]:
        port = free_port()
        command = [sys.executable, str(REPO / "bench" / "proxy_mysql.py"), "--pump-listen"]
        process = subprocess.Popen(under_callgrind([*command, str(port)], output), cwd=REPO)
        wait_port(port, 300)
        return process, port

    try:
        print(
            f"callgrind instructions per query: {args.warmup} warm-up queries, then "
            f"{args.chunks} chunks of {args.queries} counted each; the lowest chunk and the "
            "median (a chunk may include a periodic catalog refresh or audit flush)"
        )
        for name, sql in WORKLOADS.items():
            if args.workload not in (None, name):
                continue
            started = time.monotonic()
            shape = (args.warmup, args.queries, args.chunks, workdir)
            agent_ir = count(agent, "bench", BENCH_TOKEN, database, sql, *shape)
            relay_ir = count(relay, "root", "", database, sql, *shape)
            print(
                f"{name:<8} agent {min(agent_ir) / 1000:8.1f}k (median "
                f"{statistics.median(agent_ir) / 1000:.1f}k)   bare relay "
                f"{min(relay_ir) / 1000:6.1f}k   ({time.monotonic() - started:.0f} s)"
            )
    finally:
        plane.server.shutdown()
        mariadb(f"DROP DATABASE IF EXISTS {database}")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for dump in workdir.glob("callgrind.*"):
                shutil.copy(dump, args.keep)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
