"""Several agent processes on one port: ``python -m agent --workers N``.

The agent is one event loop, so one process uses one core.  With ``--workers N`` the
command becomes a small supervisor that starts N worker processes (``python -m agent``
with the same arguments and ``--worker-index i``).  The supervisor listens; every worker
inherits its listening socket and takes the next connection while it serves fewer
sessions than the others (ties: the lowest index; ``SharedListener``, the counts are in
memory they share), or once the connection waited ``_DEFER_SECONDS`` for a sibling.  So connections
spread evenly: SO_REUSEPORT's hash (each worker its own listener, which this replaced)
split 8 pgbench clients 6:2 or worse more than one time in four, and the busier worker set the
pace.  A worker counts from when it listens until it stops: before, and once the supervisor
saw it die, its count is ``NOT_ACCEPTING`` (set by the supervisor), so no sibling leaves a
connection waiting for a worker that is not there.  A worker that dies leaves the others
serving, and a connection waiting to be accepted is not lost with it (the queue is the
supervisor's); the supervisor starts it again, and it counts from zero.

What the workers share, and how:

* **Cancel keys.**  The BackendKeyData a worker gives its client carries the worker's index
  in its low ``WORKER_BITS`` bits.  A CancelRequest may land on any worker; one that does
  not know the key sends it to the owner over a Unix socket in the abstract namespace
  (``cancel_address``), and the owner cancels as if the request had reached it.
* **The bundle.**  Each worker fetches and verifies it (the same version: one control
  plane, one ETag) and keeps it in the shared state directory (written atomically under a
  per-process temporary name); the pinned public key is shared the same way.
* **The audit spool.**  Each worker has its own spool file (``spool_name``) and its own
  random event-id prefix: no two workers write the same file or send the same event id.
  Worker 0 takes over the spool files of workers that no longer exist (fewer workers than
  the last run), so nothing spooled is left behind.  Likewise each worker's audit journal
  (agent/journal.py): worker i recovers its own at start (a killed worker started again
  by the supervisor), worker 0 those of workers that no longer exist.
* **Metrics and probes.**  Worker i serves its metrics on ``metrics port + 1 + i``; the
  supervisor serves the metrics port itself with every worker's samples, labelled
  ``worker`` (``sum without (worker)`` gives the agent's totals), ``/healthz``, and
  ``/readyz``: ready when every worker is (agent/health.py).

Linux only (memfd, abstract Unix sockets, the parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from array import array
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from agent.audit import SET_ASIDE_SUFFIX
from agent.health import probes_serve, supervisor_app
from agent.journal import append_lines, journal_paths, recover

log = logging.getLogger("agent.workers")

WORKER_BITS = 6
MAX_WORKERS = 1 << WORKER_BITS
_RESTART_DELAY = 1.0
# The supervisor looks at its workers on every signal, and at least this often anyway.
_IDLE_CHECK = 5.0
CANCEL_FORWARD_SECONDS = 6.0  # the owner waits up to 5 s for the upstream (send_cancel)
_PR_SET_PDEATHSIG = 1
# The supervisor's listening socket and the workers' session counts (a memfd of one int64
# per worker), inherited by every worker under these descriptor numbers.
LISTEN_FD_ENV = "WARDEN_AGENT_LISTEN_FD"
LOAD_FD_ENV = "WARDEN_AGENT_LOAD_FD"
# How long a connection waits for a less busy worker before a busier one takes it.
_DEFER_SECONDS = 0.005
# Out of descriptors: accept again after this (as asyncio's own servers do).
_ACCEPT_RETRY_SECONDS = 1.0
# The count of a worker that takes no connection (not started or not listening yet, dead,
# stopping, out of descriptors): never the least busy, so no sibling waits for it.
NOT_ACCEPTING = 2**62


@dataclass(frozen=True)
class WorkerGroup:
    """This process's place among the workers of one agent."""

    index: int
    count: int
    group: str  # the supervisor's pid: names the group's cancel sockets

    def owns(self, pid: int) -> bool:
        return pid & (MAX_WORKERS - 1) == self.index

    def cancel_key_pid(self, random_bits: int) -> int:
        """A BackendKeyData process id (positive int32) that names this worker."""
        return ((random_bits >> WORKER_BITS) << WORKER_BITS | self.index) & 0x7FFFFFFF

    def cancel_address(self, index: int | None = None) -> str:
        """The abstract Unix socket where worker ``index`` (this one) takes forwarded
        cancels (no file: it goes with the process)."""
        worker = self.index if index is None else index
        return f"\0warden-agent-{self.group}-cancel-{worker}"

    def spool_name(self) -> str:
        return "audit-spool.jsonl" if self.index == 0 else f"audit-spool.worker-{self.index}.jsonl"

    def journal_name(self) -> str:
        return "audit-journal.bin" if self.index == 0 else f"audit-journal.worker-{self.index}.bin"

    def follow_ups_name(self) -> str:
        return (
            "login-follow-ups.json"
            if self.index == 0
            else f"login-follow-ups.worker-{self.index}.json"
        )

    def metrics_port(self, port: int | None) -> int | None:
        return None if port is None else port + 1 + self.index

    async def forward_cancel(self, pid: int, secret: int) -> bool:
        """Send a CancelRequest's key to the worker that issued it; False when there is
        no such worker (an unknown key: nothing to cancel)."""
        owner = pid & (MAX_WORKERS - 1)
        if owner >= self.count or owner == self.index:
            return False
        loop = asyncio.get_running_loop()
        # Plain sockets: uvloop's unix streams refuse abstract addresses.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, self.cancel_address(owner))
                await loop.sock_sendall(sock, struct.pack("!ii", pid, secret))
                # The owner closes once the cancel went upstream (as PostgreSQL does).
                async with asyncio.timeout(CANCEL_FORWARD_SECONDS):
                    while await loop.sock_recv(sock, 64):
                        pass
            except TimeoutError:
                log.warning("worker %s took over %s s to cancel", owner, CANCEL_FORWARD_SECONDS)
            except OSError as exc:
                log.warning("cannot forward a cancel request to worker %s: %s", owner, exc)
                return False
        return True

    async def serve_cancels(self, cancel: Callable[[int, int], object]) -> asyncio.AbstractServer:
        """Take cancel keys forwarded by the other workers: ``cancel(pid, secret)``."""

        async def on_forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                pid, secret = struct.unpack("!ii", await reader.readexactly(8))
                result = cancel(pid, secret)
                if asyncio.iscoroutine(result):
                    await result
            except (asyncio.IncompleteReadError, OSError):
                pass
            finally:
                writer.close()

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.cancel_address())
        return await asyncio.start_unix_server(on_forward, sock=sock)


def load_counts(fd: int) -> memoryview:
    """The workers' session counts in the supervisor's memfd: one int64 per worker."""
    return memoryview(mmap.mmap(fd, 8 * MAX_WORKERS)).cast("q")


class WorkerLoad:
    """The sessions each worker serves, in memory the workers share (the supervisor's
    memfd): one int64 per worker, written by its worker while it runs, and set to
    NOT_ACCEPTING by the supervisor before the worker starts and once it is gone."""

    def __init__(self, fd: int, index: int, count: int) -> None:
        self.counts = load_counts(fd)
        self.index, self.count = index, count
        self.counts[index] = 0  # listening now (a worker started again serves nothing yet)

    def set(self, sessions: int) -> None:
        self.counts[self.index] = sessions

    def least_busy(self) -> bool:
        """Whether no other worker serves fewer sessions than this one, nor as few with a
        lower index (a tie is one worker's, not a race of all)."""
        mine, counts = self.counts[self.index], self.counts
        return all(
            mine < counts[i] or (mine == counts[i] and self.index < i)
            for i in range(self.count)
            if i != self.index
        )


Connected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class SharedListener:
    """This worker's side of the supervisor's listening socket: one connection accepted
    per readiness, by the least busy worker (a busier one lets a connection wait
    ``_DEFER_SECONDS`` for it, then takes it), each served as ``connected(reader,
    writer)``.  Closed like an asyncio server."""

    def __init__(self, sock: socket.socket, load: WorkerLoad, connected: Connected, limit: int):
        self.sock, self.load, self.connected, self.limit = sock, load, connected, limit
        self.sockets = [sock]
        self.open = 0
        self.accepting = True  # False: out of descriptors for a while, or closed
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.deferred: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        sock.listen(1024)  # the first worker's call starts it; the others' change nothing
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        if not self.load.least_busy():  # a sibling serves fewer: leave it to them a moment
            self.loop.remove_reader(self.sock.fileno())
            self.deferred = self.loop.call_later(_DEFER_SECONDS, self._waited)
            return
        self._accept()

    def _waited(self) -> None:
        self.deferred = None
        self.loop.add_reader(self.sock.fileno(), self._readable)
        if select.select([self.sock], [], [], 0)[0]:  # still waiting: no sibling took it
            self._accept()

    def _accept(self) -> None:
        try:
            conn, _address = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # a sibling took it
        except OSError as exc:  # out of descriptors: the connection waits in the queue
            # The socket stays readable: listening on would spin the loop on the same error.
            log.warning("cannot accept a connection (%s); trying again in 1 s", exc)
            self.loop.remove_reader(self.sock.fileno())
            self._publish(accepting=False)
            self.deferred = self.loop.call_later(_ACCEPT_RETRY_SECONDS, self._retry)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.open += 1
        self._publish()
        task = self.loop.create_task(self._serve(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _retry(self) -> None:
        self._publish(accepting=True)
        self._waited()

    def _publish(self, accepting: bool | None = None) -> None:
        """This worker's count for its siblings: its sessions, or NOT_ACCEPTING."""
        if accepting is not None:
            self.accepting = accepting
        self.load.set(self.open if self.accepting else NOT_ACCEPTING)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=self.limit)
            await self.connected(reader, writer)
        finally:
            self.open -= 1
            self._publish()

    def close(self) -> None:
        """No more connections (those served go on until the agent cancels them)."""
        if self.deferred is not None:
            self.deferred.cancel()
        self._publish(accepting=False)  # the siblings take every connection from now on
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def shared_listener(
    workers: WorkerGroup, connected: Connected, limit: int
) -> SharedListener | None:
    """The supervisor's listening socket for this worker, when it inherited one."""
    listen_fd, load_fd = os.environ.get(LISTEN_FD_ENV), os.environ.get(LOAD_FD_ENV)
    if listen_fd is None or load_fd is None:
        return None
    load = WorkerLoad(int(load_fd), workers.index, workers.count)
    return SharedListener(socket.socket(fileno=int(listen_fd)), load, connected, limit)


def _former_worker(path: Path, prefix: str, workers: int) -> int | None:
    """The index of the worker that no longer exists whose file ``path`` (named
    ``<prefix><index>.…``) is, else None."""
    digits = path.name.removeprefix(prefix).split(".", 1)[0]
    return int(digits) if digits.isdigit() and int(digits) >= workers else None


def adopt_orphan_spools(state_dir: Path, workers: int, spool_path: Path) -> int:
    """Worker 0 (or a single agent) appends the spool files of workers that no longer exist
    to its own spool; returns the lines taken over."""
    prefix = "audit-spool.worker-"
    taken = 0
    for path in sorted(state_dir.glob(f"{prefix}*")):
        # .bad: lines set aside for a person to read (AuditShipper._set_aside), not to send.
        if _former_worker(path, prefix, workers) is None or path.suffix == SET_ASIDE_SUFFIX:
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines:
            append_lines(spool_path, lines)
        path.unlink()
        taken += len(lines)
    return taken


def orphan_follow_ups(state_dir: Path, workers: int) -> list[Path]:
    """The login follow-ups (agent.logins) of workers that no longer exist, for worker 0 (or
    a single agent) to send."""
    prefix = "login-follow-ups.worker-"
    return sorted(
        path
        for path in state_dir.glob(f"{prefix}*.json")
        if _former_worker(path, prefix, workers) is not None
    )


def adopt_orphan_journals(state_dir: Path, workers: int, spool_path: Path) -> int:
    """Worker 0 (or a single agent) recovers the audit journals of workers that no longer
    exist into its own spool; returns the events taken over."""
    prefix = "audit-journal.worker-"
    former: set[int] = set()
    for path in state_dir.glob(f"{prefix}*"):  # the active or the sealed file
        index = _former_worker(path, prefix, workers)
        if index is not None:
            former.add(index)
    taken = 0
    for index in sorted(former):
        journal = state_dir / WorkerGroup(index, workers, "").journal_name()
        taken += recover(journal_paths(journal), spool_path)
    return taken


def die_with_parent(parent: int) -> None:
    """A worker ends when its supervisor does, even when the supervisor is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor was gone before the signal was set up
        os.kill(os.getpid(), signal.SIGTERM)


# ---------------------------------------------------------------- supervisor


def listen_socket(host: str, port: int) -> socket.socket:
    """The workers' socket (inheritable), bound: fails now when the address is taken; port
    0 picks one.  The first worker ready makes it listen (SharedListener): until then a
    client is refused, not queued behind a worker still starting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _WorkersCollector(Collector):
    """Every worker's metrics, scraped when Prometheus scrapes the supervisor, each sample
    labelled with its worker."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, port in enumerate(self.ports):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError as exc:
                log.warning("worker %s metrics unavailable: %s", index, exc)
                continue
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(index)}
                    merged.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from families.values()


def serve_aggregate_metrics(port: int, worker_ports: list[int], addr: str = "127.0.0.1") -> None:
    """Every worker's metrics, and /healthz and /readyz over all workers
    (agent/health.py), on the agent's metrics port."""
    registry = CollectorRegistry()
    registry.register(_WorkersCollector(worker_ports))
    probes_serve(supervisor_app(worker_ports, registry), port, addr)


def supervise(argv: list[str], host: str, port: int, workers: int, metrics_port: int | None) -> int:
    """Run ``workers`` worker processes until SIGINT/SIGTERM; start a dead one again."""
    held = listen_socket(host, port)
    port = held.getsockname()[1]
    group = str(os.getpid())
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    load = os.memfd_create("warden-agent-load")  # WorkerLoad's counts
    os.ftruncate(load, 8 * MAX_WORKERS)
    # A worker counts from when it listens: until then, and once it is dead, its siblings
    # must not leave connections waiting _DEFER_SECONDS for it.
    counts = load_counts(load)
    counts[:] = array("q", [NOT_ACCEPTING] * MAX_WORKERS)
    fds = {LISTEN_FD_ENV: held.fileno(), LOAD_FD_ENV: load}
    env = {**os.environ, **{name: str(fd) for name, fd in fds.items()}}

    def spawn(index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "agent", *argv, "--listen", listen]
        command += ["--worker-index", str(index), "--worker-group", group]
        return subprocess.Popen(command, env=env, pass_fds=tuple(fds.values()))

    running = {index: spawn(index) for index in range(workers)}
    if metrics_port is not None:
        ports = [metrics_port + 1 + index for index in range(workers)]
        serve_aggregate_metrics(metrics_port, ports)
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    # Sleep until a signal (a worker's exit, a stop) instead of polling ten times a second:
    # an idle supervisor takes no CPU from the workers.
    wake, wake_writer = socket.socketpair()
    wake.setblocking(False)
    wake_writer.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _number, _frame: None)
    log.info("agent supervisor: %s workers on %s", workers, listen)
    while not stopping:
        # Every dead worker's slot says not accepting before the restart delay, so siblings
        # do not defer to a second one that died with the first.
        dead = {index: code for index, p in running.items() if (code := p.poll()) is not None}
        for index, code in dead.items():
            counts[index] = NOT_ACCEPTING  # its sessions are gone with it
            log.error("worker %s exited with %s; starting it again", index, code)
        if dead and not stopping:
            time.sleep(_RESTART_DELAY)
            for index in dead:
                running[index] = spawn(index)
        if not stopping:
            select.select([wake], [], [], _IDLE_CHECK)
            with contextlib.suppress(BlockingIOError):
                wake.recv(4096)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    wake.close()
    wake_writer.close()
    for process in running.values():
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    held.close()
    os.close(load)
    return 0
