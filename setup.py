"""Builds the agent's native data path (agent/fastpath/) in place:

    .venv/bin/python setup.py -q build_ext --inplace

scripts/bootstrap.sh runs this; without it the agent uses its pure-Python data path. The
installable distributions are built from packaging/ (packaging/README.md).
"""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "packaging"))
from fastpath import fastpath_extension

setup(packages=[], py_modules=[], ext_modules=[fastpath_extension(optional=False)])
