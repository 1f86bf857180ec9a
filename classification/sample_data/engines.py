"""The demo shop created on SQLite, PostgreSQL (COPY) and MariaDB (executemany)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from classification.sample_data.schema import ShopTable
from classification.sample_data.tables import shop_tables

# Column kinds, and how each engine spells them.
ENGINE_TYPES: dict[str, dict[str, str]] = {
    "postgresql": {
        "pk": "integer PRIMARY KEY",
        "int": "integer",
        "text": "text",
        "date": "date",
        "timestamp": "timestamp",
        "bool": "boolean",
        "money": "numeric(12,2)",
        "json": "jsonb",
        "text_array": "text[]",
        "binary": "bytea",
        "huge_text": "text",
    },
    "mysql": {
        "pk": "INT PRIMARY KEY",
        "int": "INT",
        "text": "VARCHAR(255)",
        "date": "DATE",
        "timestamp": "DATETIME",
        "bool": "TINYINT(1)",
        "money": "DECIMAL(12,2)",
        "json": "JSON",
        "text_array": "JSON",
        "binary": "BLOB",
        "huge_text": "LONGTEXT",
    },
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY",
        "int": "INTEGER",
        "text": "TEXT",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "bool": "BOOLEAN",
        "money": "NUMERIC",
        "json": "JSON",
        "text_array": "TEXT",
        "binary": "BLOB",
        "huge_text": "TEXT",
    },
}
# Free text that does not fit in VARCHAR(255) on MySQL.
_LONG_TEXT_COLUMNS = {"support_tickets.body", "access_log.user_agent", "access_log.session_token"}


def _column_type(engine: str, table: str, column: str, kind: str) -> str:
    if engine == "mysql" and f"{table}.{column}" in _LONG_TEXT_COLUMNS:
        return "TEXT"
    return ENGINE_TYPES[engine][kind]


def _quote(engine: str, name: str) -> str:
    return f"`{name}`" if engine == "mysql" else f'"{name}"'


def _create_table_sql(engine: str, table: ShopTable, qualified_name: str) -> str:
    columns = ", ".join(
        f"{_quote(engine, name)} {_column_type(engine, table.name, name, kind)}"
        for name, kind in table.columns
    )
    return f"CREATE TABLE {qualified_name} ({columns})"


def _plain_row(row: tuple[Any, ...], kinds: Sequence[str], *, engine: str) -> tuple[Any, ...]:
    """Values SQLite and PyMySQL can bind: JSON and arrays as text, dates as ISO text."""
    values: list[Any] = []
    for value, kind in zip(row, kinds, strict=True):
        if value is None:
            values.append(None)
        elif kind in ("json", "text_array"):
            values.append(json.dumps(value))
        elif engine == "sqlite" and kind in ("date", "timestamp"):
            values.append(value.isoformat(sep=" ") if kind == "timestamp" else value.isoformat())
        elif engine == "sqlite" and kind == "money":
            values.append(str(value))
        elif kind == "bool":
            values.append(int(value))
        else:
            values.append(value)
    return tuple(values)


# --- SQLite -------------------------------------------------------------------------------

# Latin-1 encoded names (invalid UTF-8) stored as TEXT, as legacy imports leave them.
_LATIN1_NAMES = ("José Müller", "Zoë Ørsted", "François Lefèvre", "Renée Dubois", "Jürgen Weiß")


def _sqlite_legacy_contacts(connection: sqlite3.Connection, gen: random.Random) -> int:
    connection.execute(
        'CREATE TABLE "legacy_contacts" (id INTEGER PRIMARY KEY, name TEXT, city TEXT)'
    )
    cities = ("München", "Orléans", "Málaga", "Göteborg", "Zürich")
    rows = 0
    for index in range(1, 51):
        name = gen.choice(_LATIN1_NAMES)
        city = gen.choice(cities)
        if index % 5 == 0:
            connection.execute(
                "INSERT INTO legacy_contacts VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT))",
                (index, name.encode("latin-1"), city.encode("latin-1")),
            )
        else:
            connection.execute("INSERT INTO legacy_contacts VALUES (?, ?, ?)", (index, name, city))
        rows += 1
    return rows


def shop_sqlite_create(path: str | Path, *, seed: int = 7, scale: float = 1.0) -> dict[str, int]:
    """Create (or recreate) the shop tables in a SQLite file; returns rows per table."""
    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    connection = sqlite3.connect(str(path))
    try:
        with connection:
            for table in tables:
                connection.execute(f'DROP TABLE IF EXISTS "{table.name}"')
                connection.execute(_create_table_sql("sqlite", table, f'"{table.name}"'))
                kinds = [kind for _, kind in table.columns]
                marks = ", ".join("?" for _ in kinds)
                connection.executemany(
                    f'INSERT INTO "{table.name}" VALUES ({marks})',
                    (_plain_row(row, kinds, engine="sqlite") for row in table.rows),
                )
                counts[table.name] = len(table.rows)
            connection.execute('DROP TABLE IF EXISTS "legacy_contacts"')
            counts["legacy_contacts"] = _sqlite_legacy_contacts(connection, random.Random(seed))
    finally:
        connection.close()
    return counts


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_COPY_TYPES = {
    "pk": "int4",
    "int": "int4",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp",
    "bool": "bool",
    "money": "numeric",
    "json": "jsonb",
    "text_array": "text[]",
    "binary": "bytea",
    "huge_text": "text",
}


def shop_postgresql_create(
    conninfo: str, *, schema: str = "public", seed: int = 7, scale: float = 1.0
) -> dict[str, int]:
    """Create (or recreate) the shop tables in ``schema``, filled with COPY."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in tables:
            relation = sql.Identifier(schema, table.name)
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(relation))
            connection.execute(
                _create_table_sql("postgresql", table, relation.as_string(connection))
            )
            kinds = [kind for _, kind in table.columns]
            json_positions = [index for index, kind in enumerate(kinds) if kind == "json"]
            copy_sql = sql.SQL("COPY {} FROM STDIN").format(relation)
            with connection.cursor().copy(copy_sql) as copy:
                copy.set_types([_PG_COPY_TYPES[kind] for kind in kinds])
                for row in table.rows:
                    if json_positions:
                        row = tuple(
                            Jsonb(value) if index in json_positions else value
                            for index, value in enumerate(row)
                        )
                    copy.write_row(row)
            counts[table.name] = len(table.rows)
        connection.execute("ANALYZE")
    return counts


def shop_drop_postgresql_schema(conninfo: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


# --- MySQL / MariaDB ----------------------------------------------------------------------


def _mysql_connect(
    host: str, port: int, user: str, password: str, database: str | None = None
) -> Any:
    import pymysql

    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        autocommit=False,
    )


def shop_mysql_create(
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    database: str,
    seed: int = 7,
    scale: float = 1.0,
) -> dict[str, int]:
    """Create the database if needed and (re)create the shop tables with executemany."""
    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    connection = _mysql_connect(host, port, user, password)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{database}`")
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS `{table.name}`")
                cursor.execute(_create_table_sql("mysql", table, f"`{table.name}`"))
                kinds = [kind for _, kind in table.columns]
                marks = ", ".join("%s" for _ in kinds)
                for batch in _batches(table.rows, 500):
                    cursor.executemany(
                        f"INSERT INTO `{table.name}` VALUES ({marks})",
                        [_plain_row(row, kinds, engine="mysql") for row in batch],
                    )
                counts[table.name] = len(table.rows)
        connection.commit()
    finally:
        connection.close()
    return counts


def _batches(rows: Sequence[tuple[Any, ...]], size: int) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def shop_drop_mysql_database(
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    database: str,
) -> None:
    connection = _mysql_connect(host, port, user, password)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        connection.close()
