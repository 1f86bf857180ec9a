"""Run the demo's long-lived processes together: start, watch, report a crash, stop them all.

Each supervised child gets its own session (process group), so a Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in reverse start order: the agent
before the web server it polls, PostgreSQL last. Each child also asks the kernel to send it
its stop signal should the supervisor itself die (kill -9), so nothing outlives a run either
way: PostgreSQL its fast shutdown (a smart one would wait for clients that may linger), the
web server SIGKILL (see ``Launcher``).
Their output goes to one log file each; when one exits unexpectedly its log's tail is shown.

Once the run is ready, a child started ``restartable`` (the web server, the task runner, the
agent) that exits is restarted after a backoff (1 s, 2 s, 4 s), at most ``RESTART_LIMIT``
times within ``RESTART_WINDOW_SECONDS``; past that, or for PostgreSQL, or during start-up,
the whole run stops with the child's message.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1
RESTART_LIMIT = int(os.environ.get("WARDEN_DEMO_RESTART_LIMIT", "3"))
RESTART_WINDOW_SECONDS = 60.0
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 4.0)


def _die_with_parent(signum: int = signal.SIGTERM) -> None:
    """preexec_fn: send this child `signum` when the supervisor dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    # PostgreSQL wants the signal on the postmaster alone; others get it on the whole group.
    signal_group: bool = True
    restartable: bool = False
    launch: Callable[[], subprocess.Popen[bytes]] | None = None
    restarts: list[float] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: int) -> None:
        try:
            if self.signal_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _exit_text(child: Child) -> str:
    return (
        f"{child.name} exited unexpectedly with code {child.process.returncode} "
        f"(log: {child.log_path})"
    )


class ChildFailed(RuntimeError):
    """A supervised process exited on its own; the message names it and its exit code."""

    def __init__(self, child: Child) -> None:
        self.child = child
        given_up = f"; given up after {len(child.restarts)} restart(s) within a minute"
        super().__init__(_exit_text(child) + (given_up if child.restarts else ""))


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        stop_signal: int = signal.SIGTERM,
        death_signal: int | None = None,
        signal_group: bool = True,
        restartable: bool = False,
        **popen_options: Any,
    ) -> Child:
        """`death_signal` (default: `stop_signal`) reaches the child if the supervisor dies."""
        log_path = self.log_dir / f"{name.replace(' ', '-')}.log"

        def launch() -> subprocess.Popen[bytes]:
            with log_path.open("ab") as log:
                return subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=functools.partial(_die_with_parent, death_signal or stop_signal),
                    **popen_options,
                )

        child = Child(name, launch(), log_path, stop_signal, signal_group, restartable, launch)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise ChildFailed for the first child that is no longer running."""
        for child in self.children:
            if not child.alive():
                raise ChildFailed(child)

    def wait_until(self, ready: Callable[[], bool], *, what: str, timeout: float) -> None:
        """Poll `ready` until true, failing fast when a child exits meanwhile."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")
            time.sleep(POLL_SECONDS)

    def watch(self) -> None:
        """Block until a signal interrupts us, restarting a restartable child that exits
        (within its limit); raises ChildFailed for one that cannot be restarted."""
        while True:
            for child in self.children:
                if not child.alive() and not self._restart(child):
                    raise ChildFailed(child)
            time.sleep(POLL_SECONDS)

    def _restart(self, child: Child) -> bool:
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_SECONDS]
        if child.launch is None or not child.restartable or len(child.restarts) >= RESTART_LIMIT:
            return False
        delay = RESTART_BACKOFF_SECONDS[min(len(child.restarts), len(RESTART_BACKOFF_SECONDS) - 1)]
        print(
            f"\nwarden: {_exit_text(child)}; restarting it in {delay:g} s "
            f"(restart {len(child.restarts) + 1} of at most {RESTART_LIMIT} a minute). "
            f"Last lines of its log:\n{child.log_tail()}",
            flush=True,
        )
        if child.signal_group:  # anything the dead child left behind in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
        time.sleep(delay)
        child.process = child.launch()
        child.restarts.append(time.monotonic())
        print(f"warden: {child.name} restarted.", flush=True)
        return True

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every child, newest first; kill a child's group if it outstays the timeout."""
        for child in reversed(self.children):
            if child.alive():
                child.send(child.stop_signal)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"warden: {child.name} did not stop in {timeout:.0f}s; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
            if child.signal_group:  # anything it left behind in its group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signal.SIGKILL)
        self.children.clear()

    def run_step(self, name: str, argv: list[str], *, env: dict[str, str]) -> None:
        """A one-off command in the foreground (its output on the terminal), e.g. migrate."""
        process = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)
        try:
            code = process.wait()
        except BaseException:
            process.terminate()
            process.wait()
            raise
        if code != 0:
            raise RuntimeError(f"{name} failed with exit code {code}")
