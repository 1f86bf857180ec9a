#!/usr/bin/env bash
# Install and start Warden on the embedded default: SQLite, in-process tasks, in-memory channels.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DEBUG="${DEBUG:-true}"
.venv/bin/python manage.py migrate --no-input
.venv/bin/python manage.py warden_demo
echo "Warden is listening on http://127.0.0.1:${PORT:-8000}/"
exec .venv/bin/daphne -b 127.0.0.1 -p "${PORT:-8000}" config.asgi:application
