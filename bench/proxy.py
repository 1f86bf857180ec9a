"""Benchmark: pgbench through nothing, PgBouncer and the Warden agent.

    .venv/bin/python bench/proxy.py --seconds 5 --rounds 3
    .venv/bin/python bench/proxy.py --workloads tpcb --modes simple,prepared --agent-workers 1,2

Workloads: ``select-only`` (pgbench -S, plus a bare Python relay and a query returning a
masked column) and ``tpcb`` (pgbench's default TPC-B-like script: BEGIN, three UPDATEs, a
SELECT, an INSERT, END), each against direct, PgBouncer and the agent with each number of
``--agent-workers``.

Starts everything it needs: a scratch database (pgbench -i), PgBouncer (session mode) from
a temp config, a bare Python byte relay (uvloop, no parsing: the floor for any Python
proxy), a tiny control plane (signed bundle, token check and verifiers, audit intake) and
the agent as ``python -m agent`` with guardrails and audit on.  Prints TPS per target and
mode and the ratio to direct, and for each proxy its CPU (all its processes, user and
system) and context switches per transaction: those hold on a loaded machine where TPS does
not.  Requires PostgreSQL on 127.0.0.1:5432 (trust, user postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.plane import TinyControlPlane  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
MASKED_SCRIPT = (
    "\\set aid random(1, 100000 * :scale)\nSELECT aid, abalance, filler FROM "
    "pgbench_accounts WHERE aid = :aid;\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def psql(database: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", database, "-qAtc", sql],
        check=True,
    )


def pgbench_init(database: str, scale: int) -> None:
    """pgbench's tables at this scale factor in an existing database."""
    command = ["pgbench", "-i", "-q", "-s", str(scale), "-h", PG_HOST, "-p", str(PG_PORT)]
    subprocess.run([*command, "-U", "postgres", database], check=True, capture_output=True)


def start_pgbouncer(workdir: Path, database: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (workdir / "userlist.txt").write_text('"postgres" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{database} = host={PG_HOST} port={PG_PORT} dbname={database}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {workdir}/userlist.txt\npool_mode = session\nmax_client_conn = 100\n"
        f"default_pool_size = 20\nunix_socket_dir =\nlogfile = {workdir}/pgbouncer.log\n"
    )
    command = ["/usr/sbin/pgbouncer", str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres", str(workdir)], check=True)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


class _PumpSide(asyncio.Protocol):
    """One side of the bare relay: every byte read is written to the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _PumpSide | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


def run_pump(listen_port: int, upstream_host: str = PG_HOST, upstream_port: int = PG_PORT) -> None:
    """Serve the bare relay to the database (PostgreSQL by default) on ``listen_port``
    until killed."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        connecting: set[asyncio.Task[None]] = set()

        def accept() -> _PumpSide:
            client = _PumpSide()

            async def connect() -> None:
                _, upstream = await loop.create_connection(_PumpSide, upstream_host, upstream_port)
                client.peer, upstream.peer = upstream, client
                for data in client.early:
                    upstream.transport.write(data)  # type: ignore[union-attr]
                for data in upstream.early:  # MySQL servers speak first
                    client.transport.write(data)  # type: ignore[union-attr]

            task = loop.create_task(connect())
            connecting.add(task)
            task.add_done_callback(connecting.discard)
            return client

        server = await loop.create_server(accept, "127.0.0.1", listen_port)
        await server.serve_forever()

    uvloop.run(serve())


def start_pump() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--pump-listen", str(port)], cwd=REPO)
    wait_port(port)
    return process, port


def start_agent(
    workdir: Path,
    plane: TinyControlPlane,
    database: str,
    workers: int = 1,
    extra: Sequence[str] = (),
    tree: Path = REPO,
    prefix: Sequence[str] = (),
    startup_seconds: float = 60,
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m agent`` of the checkout ``tree`` against ``plane`` (``extra``: more flags,
    e.g. the protocol; ``prefix``: a command the agent runs under, e.g. valgrind)."""
    port = free_port()
    command = [
        *prefix,
        sys.executable,
        "-m",
        "agent",
        "--control-plane",
        plane.url,
        "--token",
        "t",
        "--listen",
        f"127.0.0.1:{port}",
        "--datasource",
        "bench",
        "--upstream-database",
        database,
        "--state-dir",
        str(workdir / "agent-state"),
        "--bundle-public-key",
        plane.public_key,
        "--log-level",
        "WARNING",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    command += extra
    env = {**os.environ, "PYTHONPATH": str(tree), "WARDEN_MASKING_KEY": "bench"}
    process = subprocess.Popen(command, cwd=tree, env=env)
    wait_port(port, startup_seconds)
    return process, port


def pgbench(
    port: int,
    database: str,
    mode: str,
    seconds: int,
    clients: int,
    script: Path | str | None = None,
    user: str = "postgres",
) -> float:
    """TPS of one pgbench run; ``script``: a file, "tpcb" (the default script) or None
    (select-only)."""
    command = [
        "pgbench",
        "-n",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        user,
        "-c",
        str(clients),
        "-j",
        "2",
        "-T",
        str(seconds),
        "-M",
        mode,
    ]
    if script == "tpcb":
        pass  # pgbench's built-in TPC-B-like script
    else:
        command += ["-f", str(script)] if script else ["-S"]
    env = {**os.environ, "PGPASSWORD": "wdn_bench"}
    result = subprocess.run([*command, database], capture_output=True, text=True, env=env)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed: {result.stdout}\n{result.stderr}")
    return float(match.group(1))


Target = tuple[str, int, "Path | str | None", str, str]  # name, port, script, user, reference


def tree_pids(pid: int) -> list[int]:
    """A process and its descendants (an agent's supervisor and workers), from /proc."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        pids.append(current)
        todo += [int(child) for child in children.split()]
    return pids


def process_tree_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and context switches so far of a process and all its
    descendants (an agent's supervisor and workers), from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, switches = 0.0, 0
    for current in tree_pids(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{current}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        cpu += (int(stat[11]) + int(stat[12])) / ticks  # utime, stime
        switches += sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
    return cpu, switches


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """Ask each process a bench started to stop; kill the ones that do not within timeout."""
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_bench(processes: list[subprocess.Popen[bytes]], database: str, workdir: Path) -> None:
    """Stop what a bench started, drop its scratch database and remove its files."""
    stop_processes(processes)
    psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    shutil.rmtree(workdir, ignore_errors=True)


def bench_targets(
    workload: str, ports: dict[str, int], agents: dict[int, int], script: Path
) -> list[Target]:
    """What one workload runs against, each with the direct run it is compared to; a
    baseline agent (``ports["baseline"]``, --baseline-tree) runs right before this tree's."""
    custom: Path | str | None = "tpcb" if workload == "tpcb" else None
    direct = f"direct {workload}"
    targets: list[Target] = [
        (direct, PG_PORT, custom, "postgres", direct),
        (f"pgbouncer {workload}", ports["pgbouncer"], custom, "postgres", direct),
    ]
    if workload == "select-only":
        targets.append(("bare python relay", ports["pump"], None, "postgres", direct))
    if "baseline" in ports:
        targets.append((f"baseline agent {workload}", ports["baseline"], custom, "bench", direct))
    if "no-journal" in ports:
        targets.append(
            (f"agent no-journal {workload}", ports["no-journal"], custom, "bench", direct)
        )
    for workers, port in agents.items():
        suffix = f" x{workers}" if len(agents) > 1 else ""
        targets.append((f"agent {workload}{suffix}", port, custom, "bench", direct))
    if workload == "select-only":
        masked = "direct masked-col"
        targets.append((masked, PG_PORT, script, "postgres", masked))
        for workers, port in agents.items():
            suffix = f" x{workers}" if len(agents) > 1 else ""
            targets.append((f"agent masked-col{suffix}", port, script, "bench", masked))
    return targets


def report(
    args: argparse.Namespace,
    targets: list[Target],
    runs: dict[tuple[str, str], list[float]],
    usage: dict[tuple[str, str], list[tuple[float, float]]] | None = None,
) -> None:
    modes = args.modes.split(",")
    print(f"{'target':<26}" + "".join(f"{m:>22}" for m in modes))
    for name, _, _, _, base in targets:
        cells = []
        for mode in modes:
            paired = zip(runs[(name, mode)], runs[(base, mode)], strict=True)
            ratios = [tps / reference for tps, reference in paired]
            cells.append(
                f"{statistics.median(runs[(name, mode)]):>10.0f} ({statistics.median(ratios):.2f}x)"
            )
        print(f"{name:<26}" + "".join(f"{c:>22}" for c in cells))
    bouncer = [t for t in targets if t[0].startswith("pgbouncer")]
    for name, *_ in targets:
        if not name.startswith(("agent", "baseline")) or not bouncer or "masked" in name:
            continue
        ratios = [
            statistics.median(
                a / b for a, b in zip(runs[(name, mode)], runs[(bouncer[0][0], mode)], strict=True)
            )
            for mode in modes
        ]
        pairs = zip(modes, ratios, strict=True)
        print(f"{name} / pgbouncer: " + ", ".join(f"{m} {r:.2f}x" for m, r in pairs))
    # A proxy's own cost per transaction, whatever the neighbours' load: CPU (all its
    # processes) and context switches, medians over the rounds.
    for name, *_ in targets:
        if usage is None or (name, modes[0]) not in usage:
            continue
        cells = [
            f"{m} {statistics.median(u[0] for u in usage[(name, m)]):.1f} us, "
            f"{statistics.median(u[1] for u in usage[(name, m)]):.2f} switches"
            for m in modes
        ]
        print(f"{name} per transaction: " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--modes", default="simple,extended,prepared")
    parser.add_argument("--workloads", default="select-only,tpcb")
    parser.add_argument(
        "--agent-workers", default="1", help="agents to run side by side, by worker count: 1,2"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout (its fast path built) whose agent runs beside this one's, "
        "alternated with it in every round: a before/after pair on the same load",
    )
    parser.add_argument(
        "--journal-off",
        action="store_true",
        help="also run this tree's agent with --audit-journal off: the journal's cost, same run",
    )
    parser.add_argument("--pump-listen", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pump_listen:
        run_pump(args.pump_listen)
        return
    database = f"warden_bench_{secrets.token_hex(4)}"
    psql("postgres", f"CREATE DATABASE {database}")
    processes: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    try:
        pgbench_init(database, args.scale)
        script = workdir / "masked.sql"
        script.write_text(MASKED_SCRIPT)
        plane = TinyControlPlane()
        bouncer, bouncer_port = start_pgbouncer(workdir, database)
        pump, pump_port = start_pump()
        processes += [bouncer, pump]
        agents: dict[int, int] = {}
        proxy_pids = {bouncer_port: bouncer.pid, pump_port: pump.pid}  # by port
        for workers in (int(n) for n in args.agent_workers.split(",")):
            agent, agents[workers] = start_agent(
                workdir / f"agent-{workers}", plane, database, workers
            )
            processes.append(agent)
            proxy_pids[agents[workers]] = agent.pid
        ports = {"pgbouncer": bouncer_port, "pump": pump_port}
        if args.baseline_tree:
            baseline, ports["baseline"] = start_agent(
                workdir / "agent-baseline", plane, database, tree=args.baseline_tree.resolve()
            )
            processes.append(baseline)
            proxy_pids[ports["baseline"]] = baseline.pid
        if args.journal_off:
            unjournaled, ports["no-journal"] = start_agent(
                workdir / "agent-no-journal", plane, database, extra=["--audit-journal", "off"]
            )
            processes.append(unjournaled)
            proxy_pids[ports["no-journal"]] = unjournaled.pid
        modes = args.modes.split(",")
        for workload in args.workloads.split(","):
            targets = bench_targets(workload, ports, agents, script)
            # TPS per round; every round runs each target once, back to back, so a ratio is
            # taken between runs seconds apart (this VM's speed drifts over minutes).
            runs: dict[tuple[str, str], list[float]] = {}
            usage: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.rounds):
                for mode in modes:
                    for name, port, custom, user, _ in targets:
                        pid = proxy_pids.get(port)
                        before = process_tree_usage(pid) if pid else (0.0, 0)
                        tps = pgbench(
                            port, database, mode, args.seconds, args.clients, custom, user
                        )
                        runs.setdefault((name, mode), []).append(tps)
                        if pid:  # per transaction (the connections' start-up included)
                            cpu, switches = process_tree_usage(pid)
                            count = tps * args.seconds
                            usage.setdefault((name, mode), []).append(
                                ((cpu - before[0]) / count * 1e6, (switches - before[1]) / count)
                            )
            print(
                f"\npgbench {workload}, {args.clients} clients, {args.rounds} rounds of "
                f"{args.seconds}s per cell, scale {args.scale}, {os.cpu_count()} CPUs, load "
                f"{os.getloadavg()[0]:.1f}; audit events shipped so far: {plane.audit_events}"
                "\nmedian TPS (median of the per-round ratios to direct)\n"
            )
            report(args, targets, runs, usage)
    finally:
        stop_bench(processes, database, workdir)


if __name__ == "__main__":
    main()
