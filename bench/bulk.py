"""Benchmark: bulk export (SELECT and COPY) directly and through the agent, masked and not.

    .venv/bin/python bench/bulk.py                 # 1M rows
    .venv/bin/python bench/bulk.py --large         # 10M rows as well (RSS flatness)
    .venv/bin/python bench/bulk.py --methods redact,hash --modes simple,copy-csv

A scratch table of 6 columns (id int, name, email, phone text, birth date, note text) is
read as an AI pipeline would: ``psql -c "SELECT * FROM bulk" -o /dev/null`` (simple
protocol), psycopg with a parameter (extended protocol; the result stays in libpq, not
converted), a SQL cursor (``DECLARE … FETCH 10000`` until empty), a psycopg named cursor
(``fetchmany(10000)``, rows converted as a pipeline does) and ``COPY … TO STDOUT`` in text
and CSV.  Targets: direct, the agent with no masked column, and the agent with 1 and 3 masked
columns for each masking method (one identity per method and count, rules by column).
Prints rows/s and MB/s (bytes of DataRow/CopyData payload, measured directly), the ratio to
direct in the same round, and the agent's peak RSS during each run (VmHWM, reset per run
through /proc/<pid>/clear_refs).  Requires PostgreSQL on 127.0.0.1:5432 (trust, postgres).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.masking import METHODS  # noqa: E402
from bench.plane import TinyControlPlane  # noqa: E402
from bench.proxy import PG_HOST, PG_PORT, psql, start_agent  # noqa: E402

TABLES = ("bulk", "bulk_large")
COLUMNS = ("name", "email", "phone", "birth", "note")
MODES = ("simple", "extended", "sql-cursor", "named-cursor", "copy-text", "copy-csv")
# The masked columns for 1 and 3 of them; ``year`` masks the date column first.
MASKED = {1: ("email",), 3: ("name", "email", "phone")}
MASKED_YEAR = {1: ("birth",), 3: ("birth", "email", "phone")}


def bulk_bundle(methods: list[str]) -> dict[str, Any]:
    """Every column tagged ``internal`` (no default masking); one rule per identity
    ``m_<method>_<count>`` and masked column."""
    rules: list[dict[str, Any]] = []
    for method in methods:
        for count in (1, 3):
            columns = (MASKED_YEAR if method == "year" else MASKED)[count]
            for table, column in ((t, c) for t in TABLES for c in columns):
                rules.append(
                    {
                        "id": len(rules) + 1,
                        "name": f"{method} {table}.{column} for {count}",
                        "priority": 10,
                        "subjects": {"users": [f"m_{method}_{count}"], "groups": []},
                        "resource": {
                            "kind": "column",
                            "schema": "public",
                            "table": table,
                            "column": column,
                        },
                        "action": "mask",
                        "mask_method": method,
                        "mask_param": 4 if method in ("last_n", "partial") else None,
                    }
                )
    return {
        "format": 1,
        "version": "bulk-1",
        "generated_at": "2026-12-05T00:00:00Z",
        "datasource": {
            "id": 1,
            "name": "bench",
            "engine": "postgresql",
            "default_sensitive_action": "mask",
            "default_mask_method": "redact",
        },
        "masking_key_id": "k1",
        "sensitivity_levels": ["public", "internal", "confidential", "restricted"],
        "columns": [
            {"schema": "public", "table": t, "column": c, "tags": [], "sensitivity": "internal"}
            for t in TABLES
            for c in COLUMNS
        ],
        "rules": rules,
        "guardrails": [],
        "grants": [],
    }


def fill(database: str, rows: int, table: str) -> None:
    psql(
        database,
        f"CREATE TABLE {table} (id int, name text, email text, phone text, birth date, "
        f"note text); INSERT INTO {table} SELECT i, 'Person ' || i, 'user' || i || "
        f"'@example.com', '+1 555 ' || lpad((i % 10000000)::text, 7, '0'), "
        f"date '1950-01-01' + (i % 20000), md5(i::text) FROM generate_series(1, {rows}) i; "
        f"ANALYZE {table}",
    )


def payload_bytes(database: str, table: str) -> tuple[int, int]:
    """Bytes of the rows as DataRow payload and as COPY text (the MB/s denominators)."""
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=database) as conn:
        row = conn.execute(
            f"SELECT sum(2 + 6 * 4 + octet_length(id::text) + octet_length(name) + "
            f"octet_length(email) + octet_length(phone) + octet_length(birth::text) + "
            f"octet_length(note)), sum(octet_length(t::text)) FROM {table} t"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _psql(port: int, user: str, database: str, *args: str) -> None:
    command = [
        "psql",
        "-X",
        "-q",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        user,
        "-d",
        database,
    ]
    env = {**os.environ, "PGPASSWORD": "wdn_bench"}
    result = subprocess.run(
        [*command, "-o", "/dev/null", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0 or result.stderr.strip():
        raise RuntimeError(result.stderr.strip() or f"psql exited {result.returncode}")


def _connect(port: int, user: str, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1", port=port, user=user, dbname=database, password="wdn_bench"
    )


def run_mode(mode: str, port: int, user: str, database: str, table: str) -> int:
    """Run one export; returns the rows the client received."""
    if mode == "simple":
        _psql(port, user, database, "-c", f"SELECT * FROM {table}")
        return -1
    if mode in ("copy-text", "copy-csv"):
        options = " (FORMAT csv, HEADER)" if mode == "copy-csv" else ""
        _psql(port, user, database, "-c", f"COPY {table} TO STDOUT{options}")
        return -1
    with _connect(port, user, database) as conn:
        if mode == "extended":
            cursor = conn.execute(f"SELECT * FROM {table} WHERE id > %s", (0,))
            return cursor.rowcount
        if mode == "sql-cursor":
            total = 0
            with conn.transaction():
                conn.execute(f"DECLARE bulk_cursor NO SCROLL CURSOR FOR SELECT * FROM {table}")
                while (count := conn.execute("FETCH 10000 FROM bulk_cursor").rowcount) > 0:
                    total += count
            return total
        total = 0
        with conn.transaction(), conn.cursor(name="bulk_named") as named:
            named.execute(f"SELECT * FROM {table}")
            while batch := named.fetchmany(10000):
                total += len(batch)
        return total


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(run: Callable[[], int]) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        run()
    except (RuntimeError, psycopg.Error) as exc:
        return float("nan"), str(exc).splitlines()[0][:90]
    return time.perf_counter() - started, ""


def bench_table(
    args: argparse.Namespace,
    database: str,
    table: str,
    rows: int,
    targets: list[tuple[str, int, str]],
    agent_pid: int,
) -> None:
    row_bytes, copy_bytes = payload_bytes(database, table)
    seconds: dict[tuple[str, str], list[float]] = {}
    rss: dict[tuple[str, str], float] = {}
    errors: dict[tuple[str, str], str] = {}
    for _ in range(args.rounds):
        for mode in args.modes:
            for name, port, user in targets:
                if port != PG_PORT:
                    reset_peak(agent_pid)
                elapsed, error = timed(
                    lambda mode=mode, port=port, user=user: run_mode(  # type: ignore[misc]
                        mode, port, user, database, table
                    )
                )
                seconds.setdefault((name, mode), []).append(elapsed)
                if error:
                    errors[(name, mode)] = error
                if port != PG_PORT:
                    rss[(name, mode)] = max(rss.get((name, mode), 0.0), peak_rss_mb(agent_pid))
    load = os.getloadavg()
    print(
        f"\n{rows:,} rows, 6 columns ({row_bytes / 1e6:.0f} MB as DataRows, "
        f"{copy_bytes / 1e6:.0f} MB as COPY text); median of {args.rounds} round(s); "
        f"{os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("rows/s, MB/s, ratio to direct in the same round, agent peak RSS")
    for mode in args.modes:
        print(f"\n  {mode}")
        volume = copy_bytes if mode.startswith("copy") else row_bytes
        for name, port, _ in targets:
            runs = seconds[(name, mode)]
            if (name, mode) in errors:
                print(f"    {name:<18} refused/failed: {errors[(name, mode)]}")
                continue
            ratios = [d / s for s, d in zip(runs, seconds[("direct", mode)], strict=True)]
            median = statistics.median(runs)
            memory = f"{rss[(name, mode)]:7.0f} MB" if port != PG_PORT else ""
            print(
                f"    {name:<18} {rows / median:>12,.0f} rows/s {volume / median / 1e6:>8.1f}"
                f" MB/s  {statistics.median(ratios):5.2f}x  {memory}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--large", action="store_true", help="also 10M rows")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--counts", default="1,3", help="masked columns per identity")
    args = parser.parse_args()
    args.modes = args.modes.split(",")
    methods = args.methods.split(",")
    database = f"warden_bulk_{secrets.token_hex(4)}"
    psql("postgres", f"CREATE DATABASE {database}")
    workdir = Path(tempfile.mkdtemp(prefix="warden-bulk-"))
    agent = None
    try:
        sizes = [("bulk", args.rows)] + ([("bulk_large", 10 * args.rows)] if args.large else [])
        for table, rows in sizes:
            fill(database, rows, table)
        plane = TinyControlPlane(bulk_bundle(methods))
        agent, agent_port = start_agent(workdir, plane, database)
        targets = [("direct", PG_PORT, "postgres"), ("agent unmasked", agent_port, "plain")]
        for method in methods:
            for count in map(int, args.counts.split(",")):
                targets.append((f"{method} x{count}", agent_port, f"m_{method}_{count}"))
        for table, rows in sizes:
            bench_table(args, database, table, rows, targets, agent.pid)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
