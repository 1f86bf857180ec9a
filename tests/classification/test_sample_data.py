"""The fake shop databases: same tables and valid values on real SQLite, PostgreSQL, MariaDB.

Runs without Django:
    .venv/bin/pytest tests/classification/test_sample_data.py -q -p no:django -p no:xdist
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from stdnum import iban, luhn
from stdnum.de import idnr
from stdnum.es import dni
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import rtn, ssn

from classification.sample_data import (
    BASE_ROWS,
    HUGE_TEXT_CHARS,
    SHOP_EXPECTED_TAGS,
    SHOP_NON_SENSITIVE,
    shop_drop_mysql_database,
    shop_drop_postgresql_schema,
    shop_mysql_create,
    shop_postgresql_create,
    shop_sqlite_create,
    shop_tables,
)

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
ENGINES = ("sqlite", "postgresql", "mysql")
NINO = re.compile(r"[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
TAG_NAMES = {
    "PII.Email", "PII.Phone", "PII.PersonName", "PII.Address", "PII.PostalCode",
    "PII.DateOfBirth", "PII.NationalID", "PII.IPAddress", "PII.Passport", "PII.Location",
    "PII.Organization", "PCI.CardNumber", "Financial.IBAN", "Financial.BankAccount",
    "Secret.Credential", "PHI.FreeText",
}  # fmt: skip

Query = Callable[[str], list[tuple[Any, ...]]]


def _unreachable(service: str, exc: Exception) -> None:
    pytest.fail(f"{service} must be running on this machine for these tests: {exc}")


@pytest.fixture(scope="module")
def sqlite_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("shop") / "shop.sqlite3"
    return path, shop_sqlite_create(path)


@pytest.fixture(scope="module")
def postgresql_shop() -> Iterator[tuple[str, dict[str, int]]]:
    schema = f"shop_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(PG_CONNINFO).close()
    except psycopg.OperationalError as exc:
        _unreachable("PostgreSQL on 127.0.0.1:5432 (database 'test')", exc)
    try:
        yield schema, shop_postgresql_create(PG_CONNINFO, schema=schema)
    finally:
        shop_drop_postgresql_schema(PG_CONNINFO, schema)


@pytest.fixture(scope="module")
def mysql_shop() -> Iterator[tuple[str, dict[str, int]]]:
    database = f"shop_{uuid.uuid4().hex[:10]}"
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.err.OperationalError as exc:
        _unreachable("MariaDB on 127.0.0.1:3306 (root, empty password)", exc)
    try:
        yield database, shop_mysql_create(**MYSQL, database=database)
    finally:
        shop_drop_mysql_database(**MYSQL, database=database)


def _sqlite_query(path: Path) -> Query:
    def query(statement: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as connection:
            return connection.execute(statement).fetchall()

    return query


def _postgresql_query(schema: str) -> Query:
    def query(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(PG_CONNINFO, options=f"-c search_path={schema}") as connection:
            return connection.execute(statement).fetchall()

    return query


def _mysql_query(database: str) -> Query:
    def query(statement: str) -> list[tuple[Any, ...]]:
        connection = pymysql.connect(**MYSQL, database=database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            connection.close()

    return query


@pytest.fixture(scope="module", params=ENGINES)
def shop(request: pytest.FixtureRequest) -> tuple[str, dict[str, int], Query]:
    """(engine, rows per table as returned by the builder, a query function) per engine."""
    engine = request.param
    if engine == "sqlite":
        path, counts = request.getfixturevalue("sqlite_shop")
        return engine, counts, _sqlite_query(path)
    if engine == "postgresql":
        schema, counts = request.getfixturevalue("postgresql_shop")
        return engine, counts, _postgresql_query(schema)
    database, counts = request.getfixturevalue("mysql_shop")
    return engine, counts, _mysql_query(database)


def _column(query: Query, table: str, column: str) -> list[Any]:
    return [row[0] for row in query(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")]


def test_every_table_exists_with_the_row_count_the_builder_reports(shop):
    engine, counts, query = shop
    for table, base_rows in BASE_ROWS.items():
        assert counts[table] == base_rows
    assert counts["currencies"] >= 5 and counts["countries"] >= 5
    assert sum(counts.values()) > 10_000
    for table, expected in counts.items():
        assert query(f"SELECT COUNT(*) FROM {table}")[0][0] == expected, (engine, table)


def test_card_numbers_pass_luhn_and_come_in_several_formats(shop):
    _, _, query = shop
    cards = _column(query, "payments", "card_number")
    assert all(luhn.is_valid(re.sub(r"[ -]", "", card)) for card in cards)
    assert any(" " in card for card in cards) and any("-" in card for card in cards)
    assert any(card.isdigit() for card in cards)


def test_order_numbers_include_luhn_passing_ones_as_a_tricky_negative(shop):
    _, _, query = shop
    order_numbers = _column(query, "orders", "order_number")
    passing = sum(luhn.is_valid(number) for number in order_numbers)
    assert 0.3 < passing / len(order_numbers) < 0.8


def test_employee_bank_details_are_valid(shop):
    _, _, query = shop
    assert all(iban.is_valid(value) for value in _column(query, "employees", "iban"))
    assert all(rtn.is_valid(value) for value in _column(query, "employees", "routing_number"))
    accounts = _column(query, "employees", "bank_account_number")
    assert all(value.isdigit() and 8 <= len(value) <= 12 for value in accounts)


def test_national_ids_are_valid_for_each_customers_country(shop):
    _, _, query = shop
    validators = {
        "US": lambda value: re.fullmatch(r"\d{3}-\d{2}-\d{4}", value) and ssn.is_valid(value),
        "GB": lambda value: NINO.fullmatch(value) is not None,
        "DE": idnr.is_valid,
        "FR": nir.is_valid,
        "ES": dni.is_valid,
        "IT": codicefiscale.is_valid,
        "NL": bsn.is_valid,
    }
    rows = query("SELECT country, ssn FROM customers")
    assert {country for country, _ in rows} == set(validators)
    invalid = [(country, value) for country, value in rows if not validators[country](value)]
    assert invalid == []


def test_secrets_look_like_the_real_formats(shop):
    _, _, query = shop
    api_keys = _column(query, "employees", "api_key")
    assert api_keys and all(
        re.fullmatch(r"AKIA[A-Z0-9]{16}|ghp_[A-Za-z0-9]{36}", key) for key in api_keys
    )
    hashes = _column(query, "employees", "password_hash")
    assert all(re.fullmatch(r"\$2b\$12\$[./A-Za-z0-9]{53}", value) for value in hashes)
    tokens = _column(query, "access_log", "session_token")
    assert all(token.startswith("eyJ") and token.count(".") == 2 for token in tokens)


def test_access_log_has_ipv4_and_ipv6_clients(shop):
    _, _, query = shop
    addresses = _column(query, "access_log", "client_ip")
    assert any(":" in address for address in addresses)
    assert any(re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", address) for address in addresses)


def test_ticket_bodies_mix_health_mentions_with_plain_complaints(shop):
    _, _, query = shop
    bodies = _column(query, "support_tickets", "body")
    health = [body for body in bodies if re.search(r"diabetes|insulin|asthma|pregnan", body)]
    assert 0.1 < len(health) / len(bodies) < 0.5


def test_every_engine_holds_the_same_customers(shop, sqlite_shop):
    _, _, query = shop
    reference = _sqlite_query(sqlite_shop[0])
    statement = "SELECT email FROM customers ORDER BY id"
    assert query(statement) == reference(statement)


def test_customer_profiles_carry_awkward_values(shop):
    _, _, query = shop
    assert query("SELECT COUNT(*) FROM customer_profiles WHERE legacy_fax IS NOT NULL")[0][0] == 0
    lengths = [row[0] for row in query("SELECT LENGTH(bio) FROM customer_profiles")]
    assert max(lengths) >= HUGE_TEXT_CHARS * 0.9
    thumbnails = _column(query, "customer_profiles", "thumbnail")
    assert all(bytes(value).startswith(b"\x89PNG") for value in thumbnails)


def test_postgresql_profiles_use_jsonb_arrays_and_bytea(postgresql_shop):
    schema, _ = postgresql_shop
    query = _postgresql_query(schema)
    types = dict(query(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = 'customer_profiles'"
    ))  # fmt: skip
    assert types["preferences"] == "jsonb"
    assert types["interests"] == "ARRAY"
    assert types["thumbnail"] == "bytea"
    preferences, interests = query("SELECT preferences, interests FROM customer_profiles LIMIT 1")[
        0
    ]
    assert isinstance(preferences, dict) and isinstance(interests, list)


def test_mysql_profiles_use_json_blob_and_longtext(mysql_shop):
    database, _ = mysql_shop
    types = dict(_mysql_query(database)(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{database}' AND table_name = 'customer_profiles'"
    ))  # fmt: skip
    # MariaDB stores JSON as LONGTEXT with a JSON_VALID check.
    assert types["preferences"] in ("json", "longtext")
    assert types["thumbnail"] == "blob"
    assert types["bio"] == "longtext"


def test_sqlite_keeps_latin1_bytes_stored_as_text(sqlite_shop):
    path, counts = sqlite_shop
    assert counts["legacy_contacts"] == 50
    connection = sqlite3.connect(path)
    connection.text_factory = bytes
    try:
        rows = connection.execute(
            "SELECT name FROM legacy_contacts WHERE typeof(name) = 'text'"
        ).fetchall()
    finally:
        connection.close()
    undecodable = 0
    for (name,) in rows:
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert len(rows) == 50 and 0 < undecodable < 50


def test_expected_tags_and_non_sensitive_columns_name_real_columns_without_overlap():
    real = {
        f"{table.name}.{name}" for table in shop_tables(scale=0.05) for name, _ in table.columns
    }
    assert set(SHOP_EXPECTED_TAGS) <= real
    assert real >= SHOP_NON_SENSITIVE
    assert not set(SHOP_EXPECTED_TAGS) & SHOP_NON_SENSITIVE
    assert set().union(*SHOP_EXPECTED_TAGS.values()) <= TAG_NAMES


def test_the_same_seed_builds_the_same_rows_and_another_seed_does_not():
    first = [table.rows for table in shop_tables(seed=3, scale=0.05)]
    assert first == [table.rows for table in shop_tables(seed=3, scale=0.05)]
    assert first != [table.rows for table in shop_tables(seed=4, scale=0.05)]


def test_scale_shrinks_every_data_table(tmp_path):
    counts = shop_sqlite_create(tmp_path / "small.sqlite3", scale=0.1)
    assert counts["customers"] == 200 and counts["orders"] == 300 and counts["warehouses"] == 2


def test_sqlite_build_at_full_scale_takes_seconds_not_minutes(tmp_path):
    started = time.perf_counter()
    shop_sqlite_create(tmp_path / "timed.sqlite3")
    # The target is under 3 s; the bound leaves room for a loaded CI machine.
    assert time.perf_counter() - started < 6
