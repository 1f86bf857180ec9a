"""Full scans of the demo shop (``classification.sample_data``) on real SQLite, PostgreSQL
and MariaDB: every table is classified, the sensitive columns are found, the plain ones are
left alone, and no sampled value leaks into stored evidence.

One scan per engine (a scan reads every table and runs NER), so each test checks all four
properties, each through its own helper with its own failure message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from functools import cache

import pytest

from classification.models import ScanRun, ScanTableResult
from classification.sample_data import (
    SHOP_EXPECTED_TAGS,
    SHOP_NON_SENSITIVE,
    shop_mysql_create,
    shop_postgresql_create,
    shop_sqlite_create,
    shop_tables,
)
from governance.models import ColumnTag, DataSource, Engine
from governance.services import datasource_create
from tests import sources

pytestmark = pytest.mark.django_db

MIN_RECALL = 0.95
SHOP_TABLE_COUNT = len(shop_tables(scale=0.01))
# Shorter values ("US", "low", "2026") occur in any text by chance; masked examples keep the
# last four digits of an account number by design, which may equal some shop count.
MIN_LEAK_CHARS = 4
MIN_LEAK_DIGITS = 6


@pytest.fixture
def sqlite_shop(admin, tmp_path) -> DataSource:
    path = tmp_path / "shop.sqlite3"
    shop_sqlite_create(path)
    return datasource_create(
        actor=admin, name="shop-sqlite", engine=Engine.SQLITE, database=str(path)
    )


@pytest.fixture
def postgresql_shop(admin) -> Iterator[DataSource]:
    with sources.postgres_database() as name:
        shop_postgresql_create(f"host=127.0.0.1 port=5432 user=postgres dbname={name}")
        yield sources.postgres_datasource(admin, name="shop-postgresql", database=name)


@pytest.fixture
def mysql_shop(admin) -> Iterator[DataSource]:
    with sources.mysql_database() as name:
        shop_mysql_create(database=name, **sources.MYSQL)
        yield sources.mysql_datasource(admin, name="shop-mariadb", database=name)


# --- what the scan stored -------------------------------------------------------------------


def _tags_by_column(datasource: DataSource) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    column_tags = ColumnTag.objects.filter(column__table__datasource=datasource).select_related(
        "column__table", "tag"
    )
    for column_tag in column_tags:
        key = f"{column_tag.column.table.name}.{column_tag.column.name}"
        found.setdefault(key, set()).add(column_tag.tag.name)
    return found


def _evidence_texts(evidence: object) -> Iterator[str]:
    if isinstance(evidence, str):
        yield evidence
    elif isinstance(evidence, dict):
        for value in evidence.values():
            yield from _evidence_texts(value)
    elif isinstance(evidence, list | tuple):
        for value in evidence:
            yield from _evidence_texts(value)


def _value_texts(value: object) -> Iterator[str]:
    """The string forms a sampled value can take once a driver has read it."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _value_texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _value_texts(item)
    elif isinstance(value, dt.datetime):
        yield value.isoformat(sep=" ")
    elif isinstance(value, dt.date | Decimal | int | float) and not isinstance(value, bool):
        yield str(value)


@cache
def _shop_values() -> frozenset[str]:
    """Every value of every shop row (the same rows on every engine), long enough to judge."""
    return frozenset(
        text
        for table in shop_tables()
        for row in table.rows
        for value in row
        for text in _value_texts(value)
        if _identifying(text)
    )


def _identifying(text: str) -> bool:
    has_letter = any(char.isalpha() for char in text)
    return len(text) >= (MIN_LEAK_CHARS if has_letter else MIN_LEAK_DIGITS)


# --- the four properties ----------------------------------------------------------------------


def _assert_every_table_done(scan: ScanRun, tables: int) -> None:
    failed = dict(
        ScanTableResult.objects.filter(scan_run=scan)
        .exclude(state=ScanTableResult.State.DONE)
        .values_list("table__name", "error")
    )
    assert scan.state == ScanRun.State.SUCCEEDED, scan.error
    assert not failed, f"tables not done: {failed}"
    assert (scan.tables_total, scan.tables_done, scan.tables_failed) == (tables, tables, 0)


def _assert_recall(tags: dict[str, set[str]]) -> None:
    expected = [(column, tag) for column, wanted in SHOP_EXPECTED_TAGS.items() for tag in wanted]
    missed = [(column, tag) for column, tag in expected if tag not in tags.get(column, set())]
    recall = 1 - len(missed) / len(expected)
    assert recall >= MIN_RECALL, f"recall {recall:.2f}; missed {missed}"


def _assert_plain_columns_untagged(tags: dict[str, set[str]]) -> None:
    wrongly_tagged = {column: tags[column] for column in SHOP_NON_SENSITIVE if tags.get(column)}
    assert not wrongly_tagged


def _assert_evidence_holds_no_raw_values(datasource: DataSource) -> None:
    evidence = {
        f"{column_tag.column.name} {column_tag.tag.name}": "\n".join(
            _evidence_texts(column_tag.evidence)
        )
        for column_tag in ColumnTag.objects.filter(
            column__table__datasource=datasource
        ).select_related("column", "tag")
    }
    everything = "\n".join(evidence.values())
    leaked = sorted(raw for raw in _shop_values() if raw in everything)
    where = {key: text for key, text in evidence.items() if any(raw in text for raw in leaked)}
    assert not leaked, f"raw values {leaked[:5]} in evidence of {list(where)}"


def _assert_shop_scanned_well(scan: ScanRun, datasource: DataSource, tables: int) -> None:
    _assert_every_table_done(scan, tables)
    tags = _tags_by_column(datasource)
    _assert_recall(tags)
    _assert_plain_columns_untagged(tags)
    _assert_evidence_holds_no_raw_values(datasource)


# --- one scan per engine -----------------------------------------------------------------------


def test_scanning_the_sqlite_shop_tags_sensitive_columns_only(run_scan, admin, sqlite_shop):
    scan = run_scan(admin, sqlite_shop)
    # SQLite also holds legacy_contacts, with latin-1 bytes stored as TEXT.
    _assert_shop_scanned_well(scan, sqlite_shop, tables=SHOP_TABLE_COUNT + 1)


def test_scanning_the_postgresql_shop_tags_sensitive_columns_only(run_scan, admin, postgresql_shop):
    scan = run_scan(admin, postgresql_shop)
    _assert_shop_scanned_well(scan, postgresql_shop, tables=SHOP_TABLE_COUNT)


def test_scanning_the_mariadb_shop_tags_sensitive_columns_only(run_scan, admin, mysql_shop):
    scan = run_scan(admin, mysql_shop)
    _assert_shop_scanned_well(scan, mysql_shop, tables=SHOP_TABLE_COUNT)


def test_the_shop_scan_stores_phi_evidence_for_support_ticket_bodies(run_scan, admin, sqlite_shop):
    run_scan(admin, sqlite_shop)
    phi = ColumnTag.objects.get(
        column__table__datasource=sqlite_shop,
        column__table__name="support_tickets",
        column__name="body",
        tag__name="PHI.FreeText",
    )
    assert phi.confidence >= 0.7
    assert 0.15 <= phi.evidence["match_share"] <= 0.5  # a minority of tickets, yet PHI
    assert phi.evidence["examples"]
