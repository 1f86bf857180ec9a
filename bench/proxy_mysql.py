"""Benchmark: point selects on MariaDB directly, through a bare Python relay and through
the Warden agent (``--protocol mysql``), in one run.

    .venv/bin/python bench/proxy_mysql.py --queries 20000 --rounds 3

The driver is ``mariadb-slap`` (C, so the client is not the bottleneck) running a file
of point selects that differ in their literal (``WHERE id = N``): the agent decides the
first, and recognises the rest by their normalised text.  "masked" selects a column
every identity sees masked (``partial``), so the agent rewrites every row.  The agent runs
with ``--mysql-cleartext-loopback`` (mariadb-slap has no TLS to the agent here).  Prints
queries per second per target and the ratio to the bare relay, the issue's yardstick.
Requires MariaDB on 127.0.0.1:3306 (root, no password).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.plane import TinyControlPlane, bench_bundle  # noqa: E402
from bench.proxy import free_port, run_pump, stop_processes, wait_port  # noqa: E402
from bench.proxy import start_agent as start_pg_or_mysql_agent  # noqa: E402

MY_HOST, MY_PORT = "127.0.0.1", 3306


def mysql_bundle(database: str) -> dict[str, Any]:
    return bench_bundle(
        engine="mysql",
        schema=database,
        table="accounts",
        guardrail_kinds=["drop", "truncate", "delete_without_where", "server_file_functions"],
    )


def mariadb(sql: str) -> None:
    subprocess.run(["mariadb", f"-h{MY_HOST}", f"-P{MY_PORT}", "-uroot", "-e", sql], check=True)


def start_agent(
    workdir: Path,
    plane: TinyControlPlane,
    database: str,
    prefix: Sequence[str] = (),
    startup_seconds: float = 15,
) -> tuple[Any, int]:
    return start_pg_or_mysql_agent(
        workdir,
        plane,
        database,
        prefix=prefix,
        startup_seconds=startup_seconds,
        extra=[
            "--protocol",
            "mysql",
            "--mysql-cleartext-loopback",
            "--upstream-port",
            str(MY_PORT),
            "--upstream-user",
            "root",
            "--upstream-sslmode",
            "disable",
        ],
    )


def start_pump() -> tuple[Any, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--pump-listen", str(port)], cwd=REPO)
    wait_port(port)
    return process, port


def slap(port: int, user: str, database: str, queries: Path, count: int, clients: int) -> float:
    command = [
        "mariadb-slap",
        f"-h{MY_HOST}",
        f"-P{port}",
        f"-u{user}",
        f"--create-schema={database}",
        f"--query={queries}",
        f"--concurrency={clients}",
        f"--number-of-queries={count}",
        "--iterations=1",
        "--delimiter=;",
    ]
    if user != "root":
        command.append("-pwdn_bench")
    result = subprocess.run(command, capture_output=True, text=True)
    match = re.search(r"Average number of seconds to run all queries: ([\d.]+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"mariadb-slap failed: {result.stdout}\n{result.stderr}")
    return count / float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pump-listen", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pump_listen:
        run_pump(args.pump_listen, MY_HOST, MY_PORT)
        return
    database = f"warden_bench_{secrets.token_hex(4)}"
    mariadb(
        f"CREATE DATABASE {database}; USE {database}; CREATE TABLE accounts (id int PRIMARY KEY, "
        f"balance int, filler varchar(84)); INSERT INTO accounts SELECT seq, 0, "
        f"REPEAT('x', 84) FROM seq_1_to_100000"
    )
    processes: list[Any] = []
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-mysql-"))
    try:
        plain, masked = workdir / "plain.sql", workdir / "masked.sql"
        ids = [secrets.randbelow(100000) + 1 for _ in range(2000)]
        plain.write_text("".join(f"SELECT id, balance FROM accounts WHERE id = {i};" for i in ids))
        masked.write_text(
            "".join(f"SELECT id, balance, filler FROM accounts WHERE id = {i};" for i in ids)
        )
        plane = TinyControlPlane(mysql_bundle(database))
        pump, pump_port = start_pump()
        agent, agent_port = start_agent(workdir, plane, database)
        processes += [pump, agent]
        targets = [
            ("direct", MY_PORT, "root", plain),
            ("bare python relay", pump_port, "root", plain),
            ("agent", agent_port, "bench", plain),
            ("direct masked", MY_PORT, "root", masked),
            ("relay masked", pump_port, "root", masked),
            ("agent masked", agent_port, "bench", masked),
        ]
        runs: dict[str, list[float]] = {}
        for _ in range(args.rounds):  # each round runs every target back to back
            for name, port, user, queries in targets:
                qps = slap(port, user, database, queries, args.queries, args.clients)
                runs.setdefault(name, []).append(qps)
        print(
            f"\nmariadb-slap point selects, {args.clients} clients, {args.rounds} rounds of "
            f"{args.queries} queries, {os.cpu_count()} CPUs; audit events shipped: "
            f"{plane.audit_events}\nmedian QPS (median of the per-round ratios to the relay)\n"
        )
        for name, *_ in targets:
            base = "relay masked" if name.endswith("masked") else "bare python relay"
            ratios = [a / b for a, b in zip(runs[name], runs[base], strict=True)]
            print(
                f"{name:<20}{statistics.median(runs[name]):>10.0f}  "
                f"({statistics.median(ratios):.2f}x relay)"
            )
    finally:
        stop_processes(processes)
        mariadb(f"DROP DATABASE IF EXISTS {database}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
