"""The agent's native data path as a setuptools extension, for both builds that compile it:
the checkout's ``setup.py build_ext --inplace`` and the warden-agent wheel
(packaging/agent/setup.py). Paths are relative to the directory holding ``agent/``."""

from setuptools import Extension

FASTPATH = "agent/fastpath"


def fastpath_extension(*, optional: bool) -> Extension:
    """``optional``: a failed compile is a warning and the agent runs its pure-Python path."""
    sources = [
        "module",
        "roundtrip",
        "sink",
        "reader",
        "readers",
        "client",
        "backend",
        "masking",
        "hash",
        "copy",
        "events",
        "journal",
        "mysql",
        "mysql_session",
    ]
    return Extension(
        "agent._fastpath",
        [f"{FASTPATH}/{name}.c" for name in sources],
        depends=[f"{FASTPATH}/fastpath.h"],
        libraries=["crypto"],  # OpenSSL's SHA-256 for the hash mask (HMAC)
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        optional=optional,
    )
