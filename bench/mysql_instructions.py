"""Benchmark: CPU instructions the MySQL agent spends per point select, counted by callgrind.

    .venv/bin/python bench/mysql_instructions.py [--queries 1000] [--warmup 200]

Wall-clock figures on a shared VM swing with the load; instruction counts do not.  This
runs the agent (``--protocol mysql``) under ``valgrind --tool=callgrind`` with
instrumentation off, sends ``--warmup`` point selects over one PyMySQL connection (the
decision, mask and audit caches fill), switches instrumentation on with
``callgrind_control``, sends ``--queries`` more, and prints the agent process's
instructions per query: for the workloads of ``bench/proxy_mysql.py`` (plain, and with a
masked column), and for the bare Python relay of that benchmark as the yardstick.
Requires MariaDB on 127.0.0.1:3306 (root, no password) and valgrind.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
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

from bench.proxy import BENCH_TOKEN, TinyControlPlane, free_port, wait_port  # noqa: E402
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
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def instructions(output: Path) -> int:
    """Instructions counted in a finished callgrind run (valgrind's "Collected" line)."""
    text = Path(f"{output}.log").read_text()
    match = re.search(r"Collected : (\d+)", text)
    if match is None:
        raise RuntimeError(f"no instruction count in {output}.log:\n{text}")
    return int(match.group(1))


def count(
    start: Callable[[Path], tuple[subprocess.Popen[bytes], int]],
    user: str,
    password: str,
    database: str,
    sql: str,
    warmup: int,
    queries: int,
    workdir: Path,
) -> float:
    """Instructions per query of the process ``start`` launches (under callgrind)."""
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
            callgrind(process.pid, "-i", "on")
            for i in range(queries):
                cursor.execute(sql.format((i * 7919) % 100000 + 1))
                cursor.fetchall()
            callgrind(process.pid, "-i", "off")
        connection.close()
    finally:
        process.terminate()
        process.wait(120)
    return instructions(output) / queries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
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
        print(f"callgrind instructions per query ({args.warmup} warm-up, {args.queries} counted)")
        for name, sql in WORKLOADS.items():
            started = time.monotonic()
            agent_ir = count(
                agent, "bench", BENCH_TOKEN, database, sql, args.warmup, args.queries, workdir
            )
            relay_ir = count(relay, "root", "", database, sql, args.warmup, args.queries, workdir)
            print(
                f"{name:<8} agent {agent_ir / 1000:8.1f}k   bare relay {relay_ir / 1000:6.1f}k"
                f"   ({time.monotonic() - started:.0f} s)"
            )
    finally:
        plane.server.shutdown()
        mariadb(f"DROP DATABASE IF EXISTS {database}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
