"""Benchmark: the catalog browser and its API with 100k columns.

    .venv/bin/python bench/catalog.py [--columns 100000]

Uses its own Warden database ``warden_bench_catalog`` on the local PostgreSQL (created,
migrated and filled on first use: one datasource, 100 columns per table, every 7th column
tagged). Times each page through Django's test client (the whole view: queries, template,
pagination) beside a reference in the same process: the raw SQL of one page of columns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATABASE = "warden_bench_catalog"
ENVIRONMENT = {
    "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{DATABASE}",
    "SECRET_KEY": "warden-bench-catalog-not-a-secret",
    "DEBUG": "false",
    "REDIS_URL": "",
    "ALLOWED_HOSTS": "testserver",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
RUNS = 7


def prepare() -> None:
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        if (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            is None
        ):
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, **ENVIRONMENT},
        check=True,
    )
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()


def fill(columns_wanted: int, database: str = DATABASE) -> None:
    from django.utils import timezone

    from governance.models import Column, ColumnTag, DataSource, Table, Tag
    from governance.models.catalog import catalog_sort_key

    if Column.objects.count() >= columns_wanted:
        return
    started = time.perf_counter()
    now = timezone.now()
    datasource, _ = DataSource.objects.get_or_create(
        name="bench-catalog",
        defaults={"engine": "postgresql", "host": "127.0.0.1", "database": "x"},
    )
    tables = Table.objects.bulk_create(
        Table(
            datasource=datasource,
            schema_name="public",
            name=f"table_{index:05d}",
            first_seen_at=now,
            last_seen_at=now,
        )
        for index in range(columns_wanted // 100)
    )
    email = Tag.objects.get(name="PII.Email")
    for table in tables:
        created = Column.objects.bulk_create(
            Column(
                table=table,
                name=f"column_{index:03d}",
                data_type="text",
                ordinal=index,
                first_seen_at=now,
                last_seen_at=now,
                sensitivity=2 if index % 7 == 0 else None,
                sort_key=catalog_sort_key(
                    datasource_name=datasource.name,
                    schema_name=table.schema_name,
                    table_name=table.name,
                    ordinal=index,
                    column_name=f"column_{index:03d}",
                ),
            )
            for index in range(100)
        )
        ColumnTag.objects.bulk_create(
            ColumnTag(column=column, tag=email, source="scan", state="suggested", confidence=0.9)
            for column in created[::7]
        )
    with psycopg.connect(
        f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True
    ) as conn:
        conn.execute("ANALYZE")
    print(f"filled {columns_wanted:,} columns in {time.perf_counter() - started:.1f} s")


def timed(call) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--columns", type=int, default=100_000)
    args = parser.parse_args()
    prepare()
    fill(args.columns)
    from django.contrib.auth.models import Group
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from governance.models import Column, User

    admin, _ = User.objects.get_or_create(username="bench_catalog_admin")
    admin.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(admin)
    total = Column.objects.count()
    pages = {
        "catalog page 1": "/catalog/",
        "catalog page 1000": "/catalog/?page=1000",
        "catalog search 'column_05'": "/catalog/?q=column_05",
        "catalog tag=PII.Email, suggested": "/catalog/?tag=PII.Email&state=suggested&page=50",
        "catalog sensitivity>=confidential": "/catalog/?sensitivity=2",
        "API /columns/?limit=50&offset=90000": "/api/v1/columns/?limit=50&offset=90000",
        "API /columns/?tag=PII.Email": "/api/v1/columns/?tag=PII.Email",
    }
    print(f"\n== {total:,} columns; median of {RUNS} runs through the full Django view")
    print(f"{'page':<40} {'ms':>8} {'queries':>8}")
    for label, url in pages.items():

        def get(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        reset_queries()  # the log is a bounded deque: a full one would hide new queries
        with CaptureQueriesContext(connection) as captured:
            get()
        query_count = len(captured.captured_queries)  # read before timed() clears the log
        milliseconds = timed(get)
        print(f"{label:<40} {milliseconds:8.1f} {query_count:8d}")
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}") as raw:

        def reference() -> None:
            raw.execute(
                "SELECT c.id, c.name, t.name FROM governance_column c JOIN governance_table t "
                "ON t.id = c.table_id ORDER BY t.name, c.ordinal LIMIT 50 OFFSET 50000"
            ).fetchall()
            raw.execute("SELECT count(*) FROM governance_column").fetchone()

        reference_ms = timed(reference)
    print(f"{'reference: raw page SQL + count':<40} {reference_ms:8.1f} {2:8d}")


if __name__ == "__main__":
    main()
