"""Builds the agent's native data path (agent/_fastpath.c) in place:

    .venv/bin/python setup.py -q build_ext --inplace

scripts/bootstrap.sh runs this; without it the agent uses its pure-Python data path.
"""

from setuptools import Extension, setup

setup(
    packages=[],
    py_modules=[],
    ext_modules=[
        Extension(
            "agent.postgres._fastpath",
            [
                "agent/postgres/fastpath/module.c",
                "agent/postgres/fastpath/roundtrip.c",
                "agent/postgres/fastpath/client.c",
                "agent/postgres/fastpath/backend.c",
                "agent/postgres/fastpath/masking.c",
                "agent/postgres/fastpath/copy.c",
                "agent/postgres/fastpath/events.c",
            ],
            depends=["agent/postgres/fastpath/fastpath.h"],
            libraries=["crypto"],  # OpenSSL's SHA-256 for the hash mask (HMAC)
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
