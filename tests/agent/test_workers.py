"""``python -m agent --workers N``: N processes on one port (the supervisor's socket, each
connection taken by the least busy worker) that share cancel keys, the bundle, a loss-free
audit spool and one metrics port (agent/workers.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from agent.workers import MAX_WORKERS, WorkerGroup, WorkerLoad, adopt_orphan_spools
from tests.agent.conftest import REPO_ROOT, probe, wait_for
from tests.agent.worker_clients import (
    WORKER_ARGS,
    connections_on_each_worker,
    worker_of,
    worker_pids,
)


def cancel_when_running(conn: psycopg.Connection[Any], admin: psycopg.Connection[Any]) -> None:
    """Send the client's CancelRequest once its statement runs upstream."""
    running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)'"
    wait_for(lambda: admin.execute(running).fetchone() == (1,), timeout=10)
    conn.cancel()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_agent_cli(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m agent`` expected to exit (a refusal at start): its code and output."""
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_two_workers_both_serve_and_their_keys_name_them(agent_process_factory: Any) -> None:
    process = agent_process_factory(*WORKER_ARGS)
    served = connections_on_each_worker(process)
    assert sorted(served) == [0, 1]
    for conn in served.values():
        assert conn.execute("SELECT id FROM orders WHERE id = 1").fetchone() == (1,)
        conn.close()
    assert len(worker_pids(process)) == 2


def test_a_cancel_request_landing_on_another_worker_still_cancels(
    agent_process_factory: Any, unused_port: int, admin: psycopg.Connection[Any]
) -> None:
    process = agent_process_factory(*WORKER_ARGS, "--metrics-port", str(unused_port))
    counter = "warden_agent_cancel_requests_total"

    def forwarded_and_received() -> bool:
        """Both kinds counted in one scrape: forwarded by the worker a cancel landed on,
        and received directly by the worker that owns the key."""
        metrics = scrape(unused_port)
        return (
            sample(metrics, counter, outcome="forwarded") >= 1
            and sample(metrics, counter, outcome="received") >= 1
        )

    def serving(worker: int) -> float:
        return sample(scrape(unused_port), "warden_agent_connections_open", worker=str(worker))

    def cancel_a_query() -> None:
        with psycopg.connect(process.dsn("root"), autocommit=True) as conn:
            canceller = threading.Thread(target=cancel_when_running, args=(conn, admin))
            canceller.start()
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(20)")
            assert time.monotonic() - started < 12, "the cancel was not delivered"
            canceller.join()
            assert conn.execute("SELECT 1").fetchone() == (1,)

    # A connection goes to the worker serving fewer sessions (ties: worker 0), so idle
    # connections steer where a query and its CancelRequest land (a worker slower than
    # 5 ms to take its connection leaves it to the other: then again).
    idle = connections_on_each_worker(process)
    for _attempt in range(6):
        wait_for(lambda: (serving(0), serving(1)) == (1, 1))
        cancel_a_query()  # on worker 0; 2:1 while it runs: its cancel lands on 1, forwarded
        wait_for(lambda: serving(0) == 1)
        idle[0].close()
        wait_for(lambda: serving(0) == 0)
        cancel_a_query()  # on worker 0; 1:1 while it runs: its cancel lands on 0, received
        if forwarded_and_received():
            break
        idle[0] = psycopg.connect(process.dsn("root"), autocommit=True)
    # A busy worker may miss one of the supervisor's scrapes: ask again for a while.
    wait_for(forwarded_and_received, timeout=15)
    idle[1].close()


def test_metrics_port_answers_for_every_worker(
    agent_process_factory: Any, unused_port: int
) -> None:
    process = agent_process_factory(*WORKER_ARGS, "--metrics-port", str(unused_port))
    served = connections_on_each_worker(process)
    for conn in served.values():
        for _ in range(3):
            conn.execute("SELECT 1")
        conn.close()
    metrics = scrape(unused_port)
    for worker in ("0", "1"):
        assert sample(metrics, "warden_agent_statements_total", worker=worker) >= 3
        assert sample(metrics, "warden_agent_bundle_info", worker=worker, version="v1") == 1
    total = sample(metrics, "warden_agent_statements_total")
    assert total == sum(sample(metrics, "warden_agent_statements_total", worker=w) for w in "01")


def test_supervisor_readyz_is_ready_only_while_every_worker_is(
    agent_process_factory: Any, unused_port: int
) -> None:
    process = agent_process_factory(*WORKER_ARGS, "--metrics-port", str(unused_port))
    assert probe(unused_port, "/healthz")[1]["status"] == "alive"
    wait_for(lambda: probe(unused_port, "/readyz")[0] == 200, timeout=30)
    status, ready = probe(unused_port, "/readyz")
    assert ready["status"] == "ready"
    assert ready["checks"]["bundle"] == {"ok": True, "detail": "version v1"}
    assert ready["checks"]["upstream"]["ok"] is True
    assert sorted(ready["workers"]) == ["0", "1"]
    assert all(worker["status"] == "ready" for worker in ready["workers"].values())
    # A worker killed: not ready until the supervisor's new worker has its bundle again.
    killed = psutil.Process(worker_pids(process)[1])
    killed.kill()
    killed.wait(timeout=10)
    status, down = probe(unused_port, "/readyz")
    assert status == 503, down
    assert down["status"] == "not ready"
    assert [worker["ready"] for worker in down["workers"].values()].count(False) == 1
    wait_for(lambda: probe(unused_port, "/readyz")[0] == 200, timeout=60)


def test_supervisor_readyz_names_an_unreachable_upstream(
    agent_process_factory: Any, unused_port: int
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = closed.getsockname()[1]  # bound, not listening: connections are refused
        agent_process_factory(
            *WORKER_ARGS, "--metrics-port", str(unused_port), "--upstream-port", str(nowhere)
        )
        wait_for(
            lambda: probe(unused_port, "/readyz")[1]["checks"].get("bundle", {}).get("ok"),
            timeout=30,
        )
        status, body = probe(unused_port, "/readyz")
    assert status == 503, body
    assert body["checks"]["bundle"] == {"ok": True, "detail": "version v1"}
    assert body["checks"]["upstream"]["ok"] is False
    for worker in body["workers"].values():
        assert f"127.0.0.1:{nowhere} unreachable" in worker["checks"]["upstream"]["detail"]


def test_audit_from_both_workers_is_complete_without_duplicates(
    agent_process_factory: Any, control_plane: Any
) -> None:
    process = agent_process_factory(*WORKER_ARGS)
    served = connections_on_each_worker(process)
    for worker, conn in served.items():
        for n in range(5):
            conn.execute(f"SELECT id FROM orders WHERE id = {n + 1} AND {worker} = {worker}")
        conn.close()

    def audited() -> list[dict[str, Any]]:
        with control_plane.lock:
            events = list(control_plane.events.values())
        return [e for e in events if "FROM orders" in e.get("statement", "")]

    wait_for(lambda: len(audited()) >= 10)
    time.sleep(0.5)  # a duplicate would arrive with a later flush
    assert len(audited()) == 10
    assert control_plane.duplicate_events == 0


def test_spooled_audit_of_every_worker_reaches_the_control_plane(
    agent_process_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    state = tmp_path / "workers-state"
    process = agent_process_factory(*WORKER_ARGS, state_dir=state)
    served = connections_on_each_worker(process)  # signed in while the plane is up
    control_plane.down = True
    for conn in served.values():
        for n in range(4):
            conn.execute(f"SELECT id FROM orders WHERE id = {n + 1}")
        conn.close()
    process.stop()  # each worker spools what it could not deliver, to its own file
    spools = sorted(p.name for p in state.glob("audit-spool*.jsonl"))
    assert spools == ["audit-spool.jsonl", "audit-spool.worker-1.jsonl"]
    control_plane.down = False
    agent_process_factory("--log-level", "WARNING", state_dir=state)  # one worker now

    def audited() -> int:
        with control_plane.lock:
            events = list(control_plane.events.values())
        return sum("FROM orders" in e.get("statement", "") for e in events)

    wait_for(lambda: audited() >= 8)
    assert audited() == 8
    assert not (state / "audit-spool.worker-1.jsonl").exists()


def test_connections_spread_evenly_over_the_workers(agent_process_factory: Any) -> None:
    process = agent_process_factory(*WORKER_ARGS)
    opened = list(connections_on_each_worker(process).values())  # both listen
    for _ in range(10):  # each goes to the worker serving fewer sessions
        opened.append(psycopg.connect(process.dsn("root"), autocommit=True))
    per_worker = [sum(worker_of(conn) == index for conn in opened) for index in (0, 1)]
    # SO_REUSEPORT's hash (each worker its own listener) splits 12 as 4:8 or worse 2 times in 5.
    assert abs(per_worker[0] - per_worker[1]) <= 2, per_worker
    for conn in opened:
        conn.close()


def test_the_least_busy_worker_is_the_one_serving_fewest_sessions() -> None:
    fd = os.memfd_create("test-load")
    try:
        os.ftruncate(fd, 8 * MAX_WORKERS)
        first, second, third = (WorkerLoad(fd, index, 3) for index in range(3))
        assert first.least_busy() and not second.least_busy()  # a tie: the lowest index
        first.set(2)
        second.set(1)
        assert not first.least_busy() and not second.least_busy() and third.least_busy()
        third.set(1)
        assert second.least_busy() and not third.least_busy()
        WorkerLoad(fd, 0, 3)  # worker 0 started again: it serves nothing
        assert first.least_busy() and not second.least_busy() and not third.least_busy()
    finally:
        os.close(fd)


def test_killing_one_worker_keeps_the_port_serving(agent_process_factory: Any) -> None:
    process = agent_process_factory(*WORKER_ARGS)
    for conn in connections_on_each_worker(process).values():  # both listen
        conn.close()
    victim = worker_pids(process)[0]
    os.kill(victim, signal.SIGKILL)
    # Gone once the supervisor reaps it (the listening socket is the supervisor's: a
    # connection waiting there is not lost with the worker).
    wait_for(lambda: not psutil.pid_exists(victim))
    for attempt in range(10):  # every new connection lands on the surviving worker
        try:
            with psycopg.connect(process.dsn("root"), autocommit=True) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError as exc:
            raise AssertionError(f"connection {attempt}: {exc}\n{process.output()}") from exc
    # and the supervisor starts a new worker in its place
    wait_for(lambda: len(worker_pids(process)) == 2 and victim not in worker_pids(process))
    served = connections_on_each_worker(process)
    assert sorted(served) == [0, 1]
    for conn in served.values():
        conn.close()


def test_workers_refuse_an_address_another_program_listens_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "agent", "--control-plane", "http://127.0.0.1:9"]
        command += ["--datasource", "shop", "--listen", f"127.0.0.1:{port}", "--workers", "2"]
        result = run_agent_cli([*command, "--state-dir", str(tmp_path / "state")])
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_cancel_key_names_its_worker_and_stays_a_positive_int32() -> None:
    for index in range(4):
        group = WorkerGroup(index, 4, "1")
        for bits in (0, 1, 2**31 - 1, 123456789):
            pid = group.cancel_key_pid(bits)
            assert 0 <= pid < 2**31
            assert group.owns(pid)
            assert not WorkerGroup((index + 1) % 4, 4, "1").owns(pid)


def test_worker_zero_takes_over_the_spools_of_workers_that_no_longer_exist(
    tmp_path: Path,
) -> None:
    (tmp_path / "audit-spool.worker-1.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "audit-spool.worker-3.jsonl").write_text('{"b": 2}\n{"c": 3}\n')
    own = tmp_path / "audit-spool.jsonl"
    assert adopt_orphan_spools(tmp_path, 2, own) == 2  # worker 1 still exists
    assert own.read_text().splitlines() == ['{"b": 2}', '{"c": 3}']
    assert (tmp_path / "audit-spool.worker-1.jsonl").exists()
    assert not (tmp_path / "audit-spool.worker-3.jsonl").exists()


def test_a_second_agent_on_a_state_directory_in_use_is_refused_until_the_first_stops(
    agent_process_factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "shared-state"
    first = agent_process_factory(*WORKER_ARGS, state_dir=state)  # a supervisor and 2 workers
    command = [sys.executable, "-m", "agent", "--control-plane", "http://127.0.0.1:9"]
    command += ["--datasource", "shop", "--listen", "127.0.0.1:0", "--state-dir", str(state)]
    second = run_agent_cli(command)
    assert second.returncode != 0
    assert f"the state directory {state} is in use by another agent" in second.stderr
    assert f"(pid {first.process.pid})" in second.stderr
    with psycopg.connect(first.dsn("root"), autocommit=True) as conn:  # the first goes on
        assert conn.execute("SELECT 1").fetchone() == (1,)
    first.stop()
    again = agent_process_factory(state_dir=state)  # the lock went with the first
    with psycopg.connect(again.dsn("root"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_worker_out_of_descriptors_backs_off_instead_of_spinning() -> None:
    """accept() failing with EMFILE leaves the connection queued and the socket readable: a
    listener that kept listening would call accept (and log) in a busy loop."""
    import errno

    from agent import workers

    fd = os.memfd_create("test-load")
    os.ftruncate(fd, 8 * MAX_WORKERS)
    attempts: list[float] = []

    class OutOfDescriptors(socket.socket):
        def accept(self) -> Any:
            attempts.append(time.monotonic())
            if len(attempts) <= 2:
                raise OSError(errno.EMFILE, "Too many open files")
            return super().accept()

    async def scenario() -> tuple[int, int]:
        listening = OutOfDescriptors(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))
        served = asyncio.Event()

        async def connected(_reader: Any, writer: Any) -> None:
            served.set()
            writer.close()

        load = WorkerLoad(fd, 0, 2)
        listener = workers.SharedListener(listening, load, connected, 2**16)
        client = socket.create_connection(listening.getsockname())
        await asyncio.sleep(0.3)
        during_backoff = (len(attempts), load.counts[0])
        await asyncio.wait_for(served.wait(), 10)
        listener.close()
        client.close()
        return during_backoff

    try:
        (tries, published) = asyncio.run(scenario())
    finally:
        os.close(fd)
    assert tries == 1  # one failed accept, then quiet for the back-off (not thousands)
    assert published > 2**40  # siblings do not wait for a worker that cannot accept
    assert len(attempts) >= 3 and attempts[2] - attempts[0] >= 1.5  # then it tries again


def accept_latency(port: int) -> float:
    """Seconds from connecting to the agent's answer to an SSLRequest (its first byte, sent
    as soon as a worker accepted the connection)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))
        assert sock.recv(1) in (b"N", b"S")
    return time.perf_counter() - started


def connect_to_worker(process: Any, index: int) -> psycopg.Connection[Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        conn = psycopg.connect(process.dsn("root"), autocommit=True)
        if worker_of(conn) == index:
            return conn
        conn.close()
        time.sleep(0.05)
    raise AssertionError(f"no connection reached worker {index}\n{process.output()}")


def test_a_dead_workers_siblings_take_connections_without_waiting_for_it(
    agent_process_factory: Any,
) -> None:
    process = agent_process_factory(*WORKER_ARGS)
    served = connections_on_each_worker(process)
    extra = psycopg.connect(process.dsn("root"), autocommit=True)  # a tie: the lowest index
    assert worker_of(extra) == 0  # worker 0 serves 2 sessions, worker 1 one
    alive = statistics.median(accept_latency(process.port) for _ in range(20))
    victim = next(
        p.pid for p in map(psutil.Process, worker_pids(process)) if p.cmdline()[-3] == "1"
    )
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(victim), interval=0.01)  # reaped: seen dead
    time.sleep(0.05)
    # Until it is started again, worker 0 takes every connection at once: it does not wait
    # 5 ms each time for the dead worker's stale count of one session.
    killed = time.monotonic()
    dead = sorted(accept_latency(process.port) for _ in range(20))
    assert len(worker_pids(process)) == 1, "measured while the worker was started again"
    assert time.monotonic() - killed < 1
    assert statistics.median(dead) < alive + 0.003, (alive, dead)  # stale: 5.5 against 1.3 ms
    # Started again, it serves nothing yet: it takes the next connections (once it listens).
    wait_for(lambda: len(worker_pids(process)) == 2, timeout=20)
    first = connect_to_worker(process, 1)  # worker 0's until worker 1 listens
    second = psycopg.connect(process.dsn("root"), autocommit=True)
    assert worker_of(second) == 1, "worker 1 (1 session) is less busy than worker 0 (2)"
    for conn in [*served.values(), extra, first, second]:
        conn.close()
