"""Run the demo's long-lived processes together: start, watch, report a crash, stop them all.

Each supervised child gets its own session (process group), so a Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in reverse start order: the agent
before the web server it polls, PostgreSQL last. Each child also asks the kernel to send it
SIGTERM should the supervisor itself die (kill -9), so nothing outlives a run either way.
Their output goes to one log file each; when one exits unexpectedly its log's tail is shown.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the supervisor dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    # PostgreSQL wants the signal on the postmaster alone; others get it on the whole group.
    signal_group: bool = True

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


class ChildFailed(RuntimeError):
    """A supervised process exited on its own; the message names it and its exit code."""

    def __init__(self, child: Child) -> None:
        self.child = child
        super().__init__(
            f"{child.name} exited unexpectedly with code {child.process.returncode} "
            f"(log: {child.log_path})"
        )


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
        signal_group: bool = True,
        **popen_options: Any,
    ) -> Child:
        log_path = self.log_dir / f"{name.replace(' ', '-')}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **popen_options,
            )
        child = Child(name, process, log_path, stop_signal, signal_group)
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
        """Block until a child exits (raises ChildFailed) or a signal interrupts us."""
        while True:
            self.check()
            time.sleep(POLL_SECONDS)

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
