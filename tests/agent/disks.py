"""A real, small file system to fill (a 64 KiB tmpfs: the tests run as root)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def mounted_small_disk(parent: Path) -> Iterator[Path]:
    """A real file system of 64 KiB (a tmpfs: the tests run as root), to fill."""
    mount = parent / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` (a filler file, written until ENOSPC)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (4096, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * size):
                    pass
    return filler
