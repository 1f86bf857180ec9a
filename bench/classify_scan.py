"""bench/classify.py's sections on an organisation's own kind of data: a scan end to end
(introspect, sample and classify the held-out tables loaded into PostgreSQL) and the
labelled set admins' feedback exports."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.classify_scoring import micro, prf, score
from bench.heldout import HELD_OUT_LOCALES, HELD_OUT_MIMESIS_LOCALES, held_out_tables
from bench.tuning import LabelledColumn
from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample

# --- end to end: introspect, sample and classify the held-out tables in PostgreSQL ------

_PG_TYPES = {"date": "date", "timestamp": "timestamptz", "integer": "bigint", "jsonb": "jsonb"}
SCAN_DATABASE = "warden_classify_bench_src"


def _load_postgres(tables: Sequence[Any], database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host="127.0.0.1", user="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database) as connection:
        for number, table in enumerate(tables):
            types = [
                _PG_TYPES.get(c.data_type, "numeric" if c.data_type == "numeric" else "text")
                for c in table.columns
            ]
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f"c{i}"), sql.SQL(kind))
                for i, kind in enumerate(types)
            )
            name = sql.Identifier(f"t{number}")
            connection.execute(sql.SQL("CREATE TABLE {} ({})").format(name, columns))
            placeholders = sql.SQL(", ").join(
                sql.SQL("%s::{}").format(sql.SQL(kind)) for kind in types
            )
            rows = list(zip(*[c.values for c in table.columns], strict=True))
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql.SQL("INSERT INTO {} VALUES ({})").format(name, placeholders), rows
                )
        connection.execute("ANALYZE")


def end_to_end(args: argparse.Namespace) -> None:
    """Scan-like timing: introspection, row sampling and classification, opaque names."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "warden-bench-classify-not-a-secret")  # as bench/scan.py
    django.setup()  # the connectors package sits in a Django app

    from governance.connectors.base import ConnectionSettings
    from governance.connectors.postgresql import PostgresConnector

    locales = HELD_OUT_LOCALES[:5] if args.quick else HELD_OUT_LOCALES
    mimesis = HELD_OUT_MIMESIS_LOCALES[:5] if args.quick else HELD_OUT_MIMESIS_LOCALES
    tables = held_out_tables(args.scan_rows, locales, mimesis_locales=mimesis)
    _load_postgres(tables, args.scan_database)
    settings = ConnectionSettings(
        "postgresql", "127.0.0.1", 5432, args.scan_database, "postgres", "", {}, 5, 60_000
    )
    connector = PostgresConnector(settings)
    started, cpu_started = time.perf_counter(), time.process_time()
    classify_cpu = 0.0
    predictions: dict[str, set[str]] = {}
    for info in connector.introspect():
        names = [column.name for column in info.columns]
        rows = connector.sample(info, names, args.scan_rows)
        samples = [
            ColumnSample(column.name, column.data_type, [row[i] for row in rows], info.name)
            for i, column in enumerate(info.columns)
        ]
        classify_started = time.process_time()
        classified = classify_columns(samples)
        classify_cpu += time.process_time() - classify_started
        for column, found in zip(info.columns, classified, strict=True):
            predictions[f"{info.name}.{column.name}"] = {
                s.tag for s in found if s.confidence >= args.threshold
            }
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    connector.close()
    labelled = [
        LabelledColumn(ColumnSample(f"c{i}", c.data_type, []), c.tags, "", c.ignore)
        for table in tables
        for i, c in enumerate(table.columns)
    ]
    keys = [f"t{t}.c{i}" for t, table in enumerate(tables) for i in range(len(table.columns))]
    precision, recall, f1 = micro(score(labelled, [predictions[key] for key in keys]))
    print(
        f"\n=== end to end: PostgreSQL database {args.scan_database}, {len(tables)} held-out "
        f"tables with opaque names, {args.scan_rows} rows sampled per table ===\n"
        f"introspect + sample + classify: {len(keys)} columns in {elapsed:.2f} s = "
        f"{len(keys) / elapsed:.1f} columns/s; P/R/F1 {precision:.2f}/{recall:.2f}/{f1:.2f}\n"
        f"CPU of this process per column: {1000 * cpu / len(keys):.2f} ms "
        f"({1000 * classify_cpu / len(keys):.2f} ms classifying; the database server's own "
        "CPU is not counted)"
    )


# --- an organisation's own labels: admin feedback exported by manage.py feedback_export --

_LABEL_COUNTS = {"true_positive": 0, "false_positive": 1, "false_negative": 2}


def feedback_scores(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(per tag, per month of review) [tp, fp, fn] from an exported labelled set."""
    by_tag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_month: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            slot = _LABEL_COUNTS.get(record.get("label", ""))
            if slot is None or "tag" not in record:
                raise SystemExit(f"{path}:{number}: label must be one of {sorted(_LABEL_COUNTS)}")
            by_tag[record["tag"]][slot] += 1
            by_month[(record.get("reviewed_at") or "unknown")[:7]][slot] += 1
    return dict(by_tag), dict(by_month)


def feedback_report(path: Path) -> None:
    by_tag, by_month = feedback_scores(path)
    print(f"=== admin feedback: {path} (confirmed/rejected scan tags, tags admins added) ===")
    for title, groups in (("tag", by_tag), ("month", by_month)):
        print(f"{title:<22} {'reviews':>7} | {'P':>5} {'R':>5} {'F1':>5}")
        for key in sorted(groups):
            tp, fp, fn = groups[key]
            precision, recall, f1 = prf(tp, fp, fn)
            print(f"{key:<22} {tp + fp + fn:>7} | {precision:>5.2f} {recall:>5.2f} {f1:>5.2f}")
        print()
