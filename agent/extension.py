"""The agent's C extension (agent/fastpath/, module ``agent._fastpath``), loaded once for
every protocol and the core (audit encoding, the journal, PostgreSQL round trips, MySQL
result sets).

It is used only when built for this agent's ``ABI_VERSION``: a build of another version
(a checkout updated without rebuilding) logs once and everything runs its pure-Python
path; it never runs a different contract. Without a build at all, the same.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

log = logging.getLogger("agent.native")

# The contract between the Python code and the extension (the PostgreSQL Bridge's fields
# and tickets in agent/postgres/native.py, the functions' arguments and results); the
# extension's FASTPATH_ABI_VERSION (agent/fastpath/fastpath.h) must be the same number.
ABI_VERSION = 16


def load_extension(expected: int = ABI_VERSION) -> ModuleType | None:
    """The built extension when it speaks ``expected``, else None (logged when it is built
    for another version: rebuild it)."""
    try:
        from agent import _fastpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    built = getattr(_fastpath, "ABI_VERSION", None)
    if built != expected:
        log.warning(
            "the native data path is built for bridge ABI %s but the agent speaks %s; using "
            "the pure-Python path (rebuild it: python setup.py build_ext --inplace)",
            built,
            expected,
        )
        return None
    return _fastpath


extension = load_extension()


def native_path_available() -> bool:
    """Whether the native data path extension is built, importable and of this ABI."""
    return extension is not None


def native_function(name: str) -> Any:
    """The extension's function `name`, or None when the extension is not in use."""
    return None if extension is None else getattr(extension, name)
