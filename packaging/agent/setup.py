"""warden-agent: the pinned dependencies the agent imports and its native data path."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastpath import fastpath_extension
from pins import pinned

# What agent/ and warden_client/ import from PyPI (tests/packaging checks that the agent
# runs with these alone).
AGENT_DEPENDENCIES = {"cryptography", "httpx", "pglast", "prometheus-client", "PyMySQL"}
AGENT_DEPENDENCIES |= {"sqlglot", "uvloop"}

setup(
    install_requires=pinned(Path(__file__).parent / "requirements.txt", AGENT_DEPENDENCIES),
    ext_modules=[fastpath_extension(optional=True)],
)
