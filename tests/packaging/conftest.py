"""Fixtures for the packaging tests: both wheels built from this checkout with
``python -m build``, and a clean virtualenv holding each (uv, warm cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


def wheel_build(source: str, outdir: Path, *, env: dict[str, str] | None = None) -> Path:
    """``python -m build --wheel`` of packaging/<source>, staged in a temporary directory
    (absolute symlinks to the checkout) so the build's own files stay out of the checkout."""
    stage = outdir.parent / f"stage-{source}-{time.monotonic_ns()}"
    stage.mkdir()
    for entry in (PACKAGING / source).iterdir():
        target = stage / entry.name
        if entry.is_symlink():
            target.symlink_to(entry.resolve())
        else:
            shutil.copy2(entry, target)
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir)]
    result = subprocess.run(
        [*command, str(stage)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.rmtree(stage)
    built = sorted(outdir.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    return built[-1]


@dataclass
class Wheels:
    dist: Path
    agent: Path
    control_plane: Path


@dataclass
class Installed:
    root: Path
    seconds: float

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def python(self, code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root.parent,
            **kwargs,  # type: ignore[call-overload]
        )


# The installer scripts/bootstrap.sh uses (requirements-installer.txt), from the test venv.
UV = Path(sys.executable).parent / "uv"


def venv_install(root: Path, *pip_args: str) -> Installed:
    """A clean virtualenv with the given wheels (their pinned dependencies from the index,
    through uv's cache, as scripts/bootstrap.sh installs); the install's wall-clock time is
    measured."""
    assert UV.exists(), f"{UV} is missing: run scripts/bootstrap.sh dev (it installs uv)"
    venv.create(root, with_pip=False, clear=True)
    started = time.monotonic()
    python = str(root / "bin" / "python")
    result = subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", python, *pip_args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Installed(root, seconds)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    dist = tmp_path_factory.mktemp("dist")
    agent = wheel_build("agent", dist)
    control_plane = wheel_build("control-plane", dist)
    return Wheels(dist, agent, control_plane)


@pytest.fixture(scope="session")
def agent_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return venv_install(tmp_path_factory.mktemp("agent-venv") / "venv", str(wheels.agent))


@pytest.fixture(scope="session")
def control_plane_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("control-plane-venv") / "venv"
    return venv_install(root, "--find-links", str(wheels.dist), str(wheels.control_plane))


@pytest.fixture
def figures() -> Iterator[list[str]]:
    """Lines printed after the test (run with -s to see them): the measured figures."""
    lines: list[str] = []
    yield lines
    load = os.getloadavg()
    print(f"\n[figures, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}]")
    for line in lines:
        print("  " + line)
