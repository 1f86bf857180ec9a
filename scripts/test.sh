#!/usr/bin/env bash
# Install everything and run the whole test suite against the machine's real PostgreSQL,
# MariaDB and Redis, with a real headless Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser tests..."
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy approvals audit classification config governance warden_demo
.venv/bin/mypy agent
exec .venv/bin/pytest -n "${PYTEST_WORKERS:-2}" "$@"
