"""Real source databases for scan tests: a fresh PostgreSQL database, MariaDB database or
SQLite file per test, filled with realistic fake data, dropped afterwards."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pymysql
from faker import Faker

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def people_rows(count: int, seed: int = 11) -> list[tuple]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return [
        (
            index + 1,
            fake.name(),
            fake.email(),
            fake.phone_number(),
            fake.ssn(),
            fake.credit_card_number(),
            fake.date_of_birth(minimum_age=18, maximum_age=90),
            fake.bothify("SKU-????-####"),
            fake.random_int(1, 50),
        )
        for index in range(count)
    ]


PEOPLE_COLUMNS = (
    "id",
    "full_name",
    "email",
    "phone",
    "ssn",
    "card_number",
    "date_of_birth",
    "sku",
    "quantity",
)


def _require(service: str, exc: Exception) -> None:
    raise AssertionError(f"{service} must be running on this machine for this test: {exc}") from exc


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its name."""
    name = f"warden_src_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        _require("PostgreSQL on 127.0.0.1:5432", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_people(database: str, count: int = 150) -> None:
    with psycopg.connect(
        f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True
    ) as conn:
        conn.execute(
            "CREATE TABLE people (id int primary key, full_name text, email varchar(200), "
            "phone text, ssn text, card_number text, date_of_birth date, sku text, quantity int)"
        )
        conn.execute("CREATE TABLE products (id int primary key, sku text, price numeric(10,2))")
        with conn.cursor().copy(f"COPY people ({', '.join(PEOPLE_COLUMNS)}) FROM STDIN") as copy:
            for row in people_rows(count):
                copy.write_row(row)
        conn.execute(
            "INSERT INTO products SELECT g, 'P-' || g, g * 1.5 FROM generate_series(1, 50) g"
        )
        conn.execute("ANALYZE")


@contextmanager
def mysql_database() -> Iterator[str]:
    name = f"warden_src_{uuid.uuid4().hex[:10]}"
    try:
        admin = pymysql.connect(**MYSQL, autocommit=True)
    except pymysql.err.OperationalError as exc:
        _require("MariaDB on 127.0.0.1:3306", exc)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def mysql_people(database: str, count: int = 150) -> None:
    with (
        pymysql.connect(**MYSQL, database=database, autocommit=True) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(
            "CREATE TABLE people (id int primary key, full_name varchar(200), email varchar(200), "
            "phone varchar(50), ssn varchar(20), card_number varchar(30), date_of_birth date, "
            "sku varchar(40), quantity int)"
        )
        cursor.executemany(
            f"INSERT INTO people ({', '.join(PEOPLE_COLUMNS)}) VALUES ({', '.join(['%s'] * 9)})",
            people_rows(count),
        )


def sqlite_people(path: Path, count: int = 150) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE people (id integer primary key, full_name text, email text, phone text, "
            "ssn text, card_number text, date_of_birth date, sku text, quantity integer)"
        )
        conn.executemany(
            f"INSERT INTO people VALUES ({', '.join(['?'] * 9)})",
            [(*row[:6], row[6].isoformat(), *row[7:]) for row in people_rows(count)],
        )
    return path


def postgres_datasource(actor, *, name: str, database: str):
    """A Warden datasource for a database on the local PostgreSQL."""
    from governance.models import Engine
    from governance.services import datasource_create

    return datasource_create(
        actor=actor,
        name=name,
        engine=Engine.POSTGRESQL,
        host="127.0.0.1",
        port=5432,
        database=database,
        username="postgres",
    )


def mysql_datasource(actor, *, name: str, database: str, password: str = ""):
    """A Warden datasource for a database on the local MariaDB."""
    from governance.models import Engine
    from governance.services import datasource_create

    return datasource_create(
        actor=actor,
        name=name,
        engine=Engine.MYSQL,
        host="127.0.0.1",
        port=3306,
        database=database,
        username="root",
        password=password,
    )
