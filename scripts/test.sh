#!/usr/bin/env bash
# Install everything and run the whole test suite against the machine's real PostgreSQL,
# MariaDB and Redis, with a real headless Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the tests need: Chromium for the browser tests, MariaDB's client library
# (mariadb and mysqlclient build against it) and its CLI for the MySQL agent's client tests.
missing=()
for package in chromium libmariadb-dev pkg-config mariadb-client; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages for the tests: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/bootstrap.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy approvals audit classification config governance warden_demo idempotency warden_client warden_mcp warden
.venv/bin/mypy agent
.venv/bin/pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=30 "$@"
if [ $# -eq 0 ]; then
  # The whole suite ran the agents' native (C) data path; their suites run again on the
  # pure-Python path, which an agent without the built extension uses.
  WARDEN_AGENT_NATIVE=off exec .venv/bin/pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup \
    tests/agent tests/agent_mysql
fi
