"""Benchmark a Warden scan of a PostgreSQL database: 200 tables x 10 columns.

    .venv/bin/python bench/scan.py                      # scan, big table 100k rows
    .venv/bin/python bench/scan.py --tenfold            # then again with the big table x10
    .venv/bin/python bench/scan.py --rebuild            # rebuild the cached source database(s)

The source database ``warden_bench_scan_src`` (one table of ``--big-rows`` rows, the rest
1,000 rows each; emails, phones, names, cities, free text, ints, timestamps, amounts, SKUs,
UUIDs, IPs, dates) is generated server-side from small Faker pools and kept between runs;
its shape is recorded in the database comment. ``--tenfold`` uses a second database,
``warden_bench_scan_src_10x``, identical but for the big table.

Warden's own database ``warden_bench_scan`` is created and migrated on first use. Each run
registers a new data source and scans it in process through the service layer with eager
Celery on the calling thread, so ``scan_start`` returns when the scan has finished.

Beside each scan the script times the raw sampling alone: the same LIMIT / TABLESAMPLE
queries through psycopg, without introspection, classification or bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from faker import Faker
from psycopg import sql

if TYPE_CHECKING:
    from governance.models import User

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
SOURCE_DATABASE = "warden_bench_scan_src"
WARDEN_DATABASE = "warden_bench_scan"
WARDEN_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{WARDEN_DATABASE}"
SHAPE_VERSION = 1
POOL_SIZE = 2000
SEED = 20261124

# Column kinds: (column name, SQL type, expression over g = row number and {k} = table index).
# Pool-backed kinds join a Faker pool of POOL_SIZE values; the rest are computed in SQL.
POOL_KINDS = ("email", "phone", "full_name", "city", "note")
COLUMN_KINDS: tuple[tuple[str, str, str], ...] = (
    ("email", "text", "email.v"),
    ("phone", "text", "phone.v"),
    ("full_name", "text", "full_name.v"),
    ("city", "text", "city.v"),
    ("note", "text", "note.v"),
    ("created_at", "timestamp",
     "timestamp '2024-01-01' + ((g::bigint * 7919 + {k}) % 31536000) * interval '1 s'"),
    ("amount", "numeric(12,2)", "((g * 37 + {k}) % 100000) / 100.0"),
    ("status", "text", "(ARRAY['new','paid','shipped','cancelled'])[1 + (g + {k}) % 4]"),
    ("quantity", "integer", "(g * 13 + {k}) % 500"),
    ("sku", "text", "'SKU-' || lpad(((g * 17 + {k}) % 99999)::text, 5, '0')"),
    ("ref_uuid", "uuid", "md5(g::text || '-' || {k}::text)::uuid"),
    ("client_ip", "text",
     "concat_ws('.', 11 + g % 200, (g * 7) % 256, (g * 13 + {k}) % 256, 1 + g % 254)"),
    ("birth_date", "date", "date '1950-01-01' + ((g * 97 + {k}) % 18000)"),
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    tables: int
    columns: int
    rows: int
    big_rows: int

    def comment(self) -> str:
        return json.dumps({"version": SHAPE_VERSION, **self.__dict__}, sort_keys=True)


def admin_conninfo(database: str = "postgres") -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"


def table_name(index: int) -> str:
    return f"t{index:03d}"


def table_columns(index: int, columns: int) -> list[tuple[str, str, str]]:
    """``id`` plus ``columns - 1`` kinds, rotated per table so every kind appears often."""
    count = len(COLUMN_KINDS)
    return [COLUMN_KINDS[(index + offset) % count] for offset in range(columns - 1)]


# --- source database ----------------------------------------------------------------------


def database_comment(database: str) -> str | None:
    with psycopg.connect(admin_conninfo(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return None if row is None else (row[0] or "")


def pools() -> dict[str, list[str]]:
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    makers = {
        "email": fake.email,
        "phone": fake.phone_number,
        "full_name": fake.name,
        "city": fake.city,
        "note": lambda: fake.sentence(nb_words=10),
    }
    return {kind: [makers[kind]() for _ in range(POOL_SIZE)] for kind in POOL_KINDS}


def fill_table(connection: psycopg.Connection, index: int, shape: Shape, rows: int) -> None:
    kinds = table_columns(index, shape.columns)
    name = sql.Identifier(table_name(index))
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(sql_type))
        for column, sql_type, _ in kinds
    )
    connection.execute(
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {})").format(name, definitions)
    )
    used_pools = sorted({column for column, _, _ in kinds if column in POOL_KINDS})
    joins = sql.SQL(" ").join(
        sql.SQL("JOIN {pool} {alias} ON {alias}.i = (g * {step} + {k}) % {size}").format(
            pool=sql.Identifier(f"pool_{kind}"),
            alias=sql.Identifier(kind),
            step=sql.Literal(31 + 2 * position),
            k=sql.Literal(index),
            size=sql.Literal(POOL_SIZE),
        )
        for position, kind in enumerate(used_pools)
    )
    expressions = sql.SQL(", ").join(
        sql.SQL(expression.replace("{k}", str(index))) for _, _, expression in kinds
    )
    connection.execute(
        sql.SQL("INSERT INTO {} SELECT g, {} FROM generate_series(1, {}) g {}").format(
            name, expressions, sql.Literal(rows), joins
        )
    )


def source_build(database: str, shape: Shape, *, rebuild: bool) -> bool:
    """Create and fill ``database`` unless it already has ``shape``; True when built."""
    comment = database_comment(database)
    if comment == shape.comment() and not rebuild:
        return False
    with psycopg.connect(admin_conninfo(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(admin_conninfo(database)) as connection:
        for kind, values in pools().items():
            connection.execute(f"CREATE TEMP TABLE pool_{kind} (i integer PRIMARY KEY, v text)")
            with connection.cursor().copy(f"COPY pool_{kind} (i, v) FROM STDIN") as copy:
                for position, value in enumerate(values):
                    copy.write_row((position, value))
        for index in range(shape.tables):
            fill_table(connection, index, shape, shape.big_rows if index == 0 else shape.rows)
        connection.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(database), sql.Literal(shape.comment())
            )
        )
    with psycopg.connect(admin_conninfo(database), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")  # row estimates decide LIMIT vs TABLESAMPLE
    return True


# --- Warden database ----------------------------------------------------------------------


def warden_environment() -> dict[str, str]:
    return {
        "DATABASE_URL": WARDEN_URL,
        "SECRET_KEY": "warden-bench-scan-not-a-secret",
        "DEBUG": "true",
        "REDIS_URL": "",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "WARDEN_EAGER_IN_THREAD": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


def warden_prepare() -> None:
    with psycopg.connect(admin_conninfo(), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (WARDEN_DATABASE,))
        if exists.fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(WARDEN_DATABASE)))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, **warden_environment()},
        check=True,
    )


def django_setup() -> None:
    os.environ.update(warden_environment())
    import django

    django.setup()
    # Eager Celery logs every task; 200 "succeeded" lines would bury the figures.
    logging.getLogger("celery").setLevel(logging.WARNING)


def bench_admin() -> User:
    from django.contrib.auth.models import Group

    from governance.models import User  # Django is set up by now

    admin, _ = User.objects.get_or_create(username="bench_admin")
    admin.groups.add(Group.objects.get(name="admin"))
    return User.objects.get(pk=admin.pk)


# --- measurements -------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def warden_scan(database: str, sample_size: int | None) -> dict[str, float]:
    from classification.models import ScanRun
    from classification.services import scan_start
    from governance.services import datasource_create

    actor = bench_admin()
    datasource = datasource_create(
        actor=actor,
        name=f"bench-{database.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}",
        engine="postgresql",
        host=PG_HOST,
        port=PG_PORT,
        database=database,
        username=PG_USER,
    )
    started = time.perf_counter()
    # Outside any transaction, so on_commit runs the eager scan before scan_start returns.
    scan_run = scan_start(actor=actor, datasource=datasource, sample_size=sample_size)
    seconds = time.perf_counter() - started
    scan_run = ScanRun.objects.get(pk=scan_run.pk)
    if scan_run.state != ScanRun.State.SUCCEEDED or scan_run.tables_failed:
        raise SystemExit(f"scan ended {scan_run.state}: {scan_run.error or scan_run.tables_failed}")
    return {
        "seconds": seconds,
        "tables": scan_run.tables_total,
        "columns": scan_run.columns_classified,
        "tags": scan_run.tags_suggested,
        "sample_size": scan_run.sample_size,
    }


def raw_sampling(database: str, sample_size: int) -> dict[str, float]:
    """The connector's sampling queries alone, one connection per table as a scan opens."""
    from governance.connectors.postgresql import _TABLESAMPLE_THRESHOLD

    with psycopg.connect(admin_conninfo(database)) as connection:
        tables = connection.execute(
            "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY c.relname"
        ).fetchall()
    started = time.perf_counter()
    rows = 0
    for name, estimate in tables:
        if estimate > _TABLESAMPLE_THRESHOLD:
            percent = min(100.0, max(0.01, 300.0 * sample_size / estimate))
            query = sql.SQL("SELECT * FROM {} TABLESAMPLE SYSTEM ({}) LIMIT {}").format(
                sql.Identifier(name), sql.Literal(percent), sql.Literal(sample_size)
            )
        else:
            query = sql.SQL("SELECT * FROM {} LIMIT {}").format(
                sql.Identifier(name), sql.Literal(sample_size)
            )
        with psycopg.connect(admin_conninfo(database)) as connection:
            rows += len(connection.cursor(binary=False).execute(query).fetchall())
    return {"seconds": time.perf_counter() - started, "tables": len(tables), "rows": rows}


def report(label: str, shape: Shape, scan: dict[str, float], raw: dict[str, float]) -> None:
    rate = scan["columns"] / scan["seconds"]
    overhead = scan["seconds"] - raw["seconds"]
    lines = [
        f"== {label}: {shape.tables} tables x {shape.columns} columns, big table "
        f"{shape.big_rows:,} rows, others {shape.rows:,}; sample {scan['sample_size']} rows",
        f"  Warden scan     {scan['seconds']:7.2f} s  {scan['tables']} tables, "
        f"{scan['columns']} columns, {rate:6.1f} columns/s, {scan['tags']} tags suggested",
        f"  raw sampling    {raw['seconds']:7.2f} s  {raw['tables']} tables, {raw['rows']:,} "
        "rows (psycopg, same queries, no classification)",
        f"  overhead        {overhead:7.2f} s  ({scan['seconds'] / raw['seconds']:.1f}x raw)",
        f"  peak RSS so far {peak_rss_mb():7.1f} MiB",
    ]
    print("\n" + "\n".join(lines))


def run(database: str, shape: Shape, *, rebuild: bool, sample_size: int | None, label: str) -> None:
    started = time.perf_counter()
    built = source_build(database, shape, rebuild=rebuild)
    print(
        f"source {database}: {'built' if built else 'reused'} in "
        f"{time.perf_counter() - started:.1f} s"
    )
    from django.conf import settings

    scan = warden_scan(database, sample_size)
    raw = raw_sampling(database, int(scan["sample_size"] or settings.SCAN_SAMPLE_SIZE))
    report(label, shape, scan, raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000, help="rows in every other table")
    parser.add_argument("--big-rows", type=int, default=100_000, help="rows in the big table")
    parser.add_argument(
        "--tenfold", action="store_true", help="scan again with the big table at 10x --big-rows"
    )
    parser.add_argument(
        "--sample-size", type=int, default=None, help="rows per table (default: the setting)"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached source databases")
    args = parser.parse_args()

    warden_prepare()
    django_setup()
    print(f"peak RSS after Django setup {peak_rss_mb():.1f} MiB")
    shape = Shape(args.tables, args.columns, args.rows, args.big_rows)
    run(SOURCE_DATABASE, shape, rebuild=args.rebuild, sample_size=args.sample_size, label="scan")
    if args.tenfold:
        big = Shape(args.tables, args.columns, args.rows, args.big_rows * 10)
        run(
            f"{SOURCE_DATABASE}_10x",
            big,
            rebuild=args.rebuild,
            sample_size=args.sample_size,
            label="scan, big table x10",
        )


if __name__ == "__main__":
    main()
