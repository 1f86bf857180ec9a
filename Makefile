.PHONY: run test lint bench worker
run:  ## install and start the demo: embedded PostgreSQL, Warden (http://127.0.0.1:8000), an agent for shop
	scripts/run.sh
test:  ## install and run the whole test suite
	scripts/test.sh
lint:  ## ruff and mypy, as scripts/test.sh runs them
	.venv/bin/ruff check . && .venv/bin/ruff format --check . \
	  && .venv/bin/mypy approvals audit classification config governance warden_demo idempotency warden_client warden_mcp warden \
	  && .venv/bin/mypy agent
worker:  ## a Celery worker (needs REDIS_URL and DATABASE_URL)
	.venv/bin/celery -A config worker --loglevel INFO
