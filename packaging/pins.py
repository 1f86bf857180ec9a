"""Pinned requirements for the two distributions, read from the checkout's requirements
files so each pin is written once (requirements.txt)."""

import re
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: Path, only: set[str] | None = None) -> list[str]:
    """The ``name[extras]==version`` lines of ``requirements`` (comments, options and hashes
    dropped), limited to the names in ``only`` when given."""
    pins = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].split(" --hash", 1)[0].strip()
        match = _NAME.match(line)
        if not match or line.startswith("-"):
            continue
        if only is None or _normalise(match.group(1)) in {_normalise(n) for n in only}:
            pins.append(line)
    return pins
