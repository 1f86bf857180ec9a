"""Production configuration: environment-driven settings and a real Celery worker on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import sources
from tests.redis_claim import redis_database_claim

ROOT = Path(__file__).resolve().parent.parent


def _settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        f"django.setup(); from django.conf import settings as s; print({expression})"
    )
    return _python_in_subprocess(env, code)


def _python_in_subprocess(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with only `env` beyond the non-Warden environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_come_from_the_environment(tmp_path):
    result = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgresql://warden:pw@db.internal:5432/warden",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "warden.example.com",
            "WARDEN_DATA_DIR": str(tmp_path),
        },
        "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], "
        "s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.ALLOWED_HOSTS, s.SESSION_COOKIE_SECURE",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "django.db.backends.postgresql db.internal redis://cache.internal:6379/0 False "
        "config.channel_layer.RedisChannelLayer ['warden.example.com'] True"
    )


def test_postgresql_connections_come_from_a_pool_unless_turned_off(tmp_path):
    base = {
        "DATABASE_URL": "postgresql://warden:pw@db.internal:5432/warden",
        "SECRET_KEY": "x" * 50,
        "WARDEN_DATA_DIR": str(tmp_path),
    }
    expression = "s.DATABASES['default'].get('OPTIONS', {}).get('pool')"

    default = _settings_in_subprocess(base, expression)
    sized = _settings_in_subprocess({**base, "DATABASE_POOL_MAX_SIZE": "3"}, expression)
    off = _settings_in_subprocess({**base, "DATABASE_POOL_MAX_SIZE": "0"}, expression)
    persistent = _settings_in_subprocess(
        {**base, "DATABASE_POOL_MAX_SIZE": "0", "DATABASE_CONN_MAX_AGE": "60"},
        "s.DATABASES['default']['CONN_MAX_AGE']",
    )
    both = _settings_in_subprocess({**base, "DATABASE_CONN_MAX_AGE": "60"}, "1")
    sqlite = _settings_in_subprocess({"WARDEN_DATA_DIR": str(tmp_path)}, expression)

    assert default.stdout.strip() == "{'min_size': 1, 'max_size': 10, 'timeout': 10}"
    assert sized.stdout.strip() == "{'min_size': 1, 'max_size': 3, 'timeout': 10}"
    assert off.stdout.strip() == persistent.stdout.strip().replace("60", "None") == "None"
    assert both.returncode != 0
    assert "set DATABASE_POOL_MAX_SIZE=0 to use persistent connections" in both.stderr
    assert sqlite.stdout.strip() == "None"


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_goes_back_to_the_pool():
    """What a request does at its end (close) returns the backend to the pool, and the next
    request borrows one: ten requests in a row open no connection."""
    from django.db import connection

    pool = connection.pool
    assert pool is not None, "this suite runs on PostgreSQL with the default pool"
    connection.ensure_connection()  # the pool's first connection, if it had none
    connection.close()
    opened = pool.get_stats().get("connections_num", 0)
    backends = set()
    for _ in range(10):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.add(cursor.fetchone()[0])
        connection.close()

    assert pool.get_stats().get("connections_num", 0) == opened  # none opened for them
    # Every backend is one of the pool's (other tests' threads may have grown it to its max).
    assert len(backends) <= pool.get_stats()["pool_size"], backends


def test_embedded_default_needs_no_environment(tmp_path):
    result = _settings_in_subprocess(
        {"WARDEN_DATA_DIR": str(tmp_path)},
        "s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, "
        "s.CHANNEL_LAYERS['default']['BACKEND']",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "django.db.backends.sqlite3 True channels.layers.InMemoryChannelLayer"
    )


def test_importing_the_settings_creates_no_directories_starting_django_does(tmp_path):
    data_dir, static_root = tmp_path / "data", tmp_path / "static"
    exist = f"[p.is_dir() for p in map(pathlib.Path, {[str(data_dir), str(static_root)]!r})]"
    code = (
        "import os, pathlib, django; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        f"import config.settings; print({exist}); django.setup(); print({exist})"
    )
    result = _python_in_subprocess(
        {"WARDEN_DATA_DIR": str(data_dir), "STATIC_ROOT": str(static_root)}, code
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[False, False]", "[True, True]"]


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _settings_in_subprocess(
        {"DATABASE_URL": "postgresql://warden@db/warden", "WARDEN_DATA_DIR": str(tmp_path)}, "1"
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.fixture
def celery_worker_on_redis(transactional_db, settings):
    """A real `celery -A config worker` process, brokered by the machine's Redis in a
    database claimed for this test (two runs at once never share one)."""
    with redis_database_claim() as redis_url:
        yield from _celery_worker(redis_url, settings)


def _celery_worker(redis_url, settings):
    from django.db import connection

    from config.celery import app

    database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "worker-test-secret-" + "x" * 32,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "WARDEN_DATA_DIR": "/tmp/warden-test-data",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    previous = dict(app.conf)
    app.conf.update(task_always_eager=False, broker_url=redis_url, result_backend=redis_url)
    _drop_cached_connections(app)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield worker
    finally:
        app.conf.update(
            task_always_eager=previous["task_always_eager"],
            broker_url=previous["broker_url"],
            result_backend=previous["result_backend"],
        )
        _drop_cached_connections(app)
        worker.terminate()
        worker.wait(timeout=20)


def _drop_cached_connections(app) -> None:
    """Celery caches its broker pools; after changing broker_url they must be rebuilt."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


def test_a_celery_worker_on_redis_runs_a_whole_scan(celery_worker_on_redis, tmp_path):
    from classification.models import ScanRun
    from classification.services import scan_start
    from governance.models import Engine
    from governance.services import datasource_create
    from tests.factories import UserFactory

    admin = UserFactory(username="worker_admin", roles=["admin"])
    with sources.postgres_database() as name:
        sources.postgres_people(name)
        datasource = datasource_create(
            actor=admin,
            name="worker-pg",
            engine=Engine.POSTGRESQL,
            host="127.0.0.1",
            port=5432,
            database=name,
            username="postgres",
        )
        scan = scan_start(actor=admin, datasource=datasource)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            scan.refresh_from_db()
            if scan.is_finished:
                break
            assert celery_worker_on_redis.poll() is None, celery_worker_on_redis.stdout.read()
            time.sleep(0.3)
    assert scan.state == ScanRun.State.SUCCEEDED, (scan.state, scan.error)
    assert (scan.tables_done, scan.tables_total) == (2, 2)
    assert scan.tags_suggested >= 6
