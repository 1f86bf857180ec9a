from __future__ import annotations

import random

import pymysql
import pymysql.cursors

from governance.connectors.base import (
    ColumnInfo,
    ConnectionSettings,
    ConnectorError,
    TableInfo,
)

_INTROSPECT = """
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, t.TABLE_ROWS,
       c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'YES', c.ORDINAL_POSITION
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE()
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""
_RANDOM_RANGE_THRESHOLD = 50_000


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


class MySQLConnector:
    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._connection: pymysql.connections.Connection | None = None

    def _connect(self) -> pymysql.connections.Connection:
        if self._connection is None:
            s = self.settings
            try:
                self._connection = pymysql.connect(
                    host=s.host or "127.0.0.1",
                    port=s.port or 3306,
                    user=s.username or "root",
                    password=s.password,
                    database=s.database,
                    connect_timeout=s.connect_timeout,
                    read_timeout=max(1, s.statement_timeout_ms // 1000),
                    charset="utf8mb4",
                    autocommit=True,
                )
            except pymysql.err.OperationalError as exc:
                raise ConnectorError(_explain(exc, s)) from exc
        return self._connection

    def _query(self, statement: str, params: tuple = ()) -> list[tuple]:
        try:
            with self._connect().cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        except pymysql.err.MySQLError as exc:
            raise ConnectorError(
                f"MySQL query failed: {exc.args[-1] if exc.args else exc}"
            ) from exc

    def test(self) -> str:
        return f"MySQL/MariaDB {self._query('SELECT VERSION()')[0][0]}"

    def introspect(self) -> list[TableInfo]:
        tables: dict[tuple[str, str], dict] = {}
        for schema, name, table_type, rows, column, data_type, nullable, ordinal in self._query(
            _INTROSPECT
        ):
            entry = tables.setdefault(
                (schema, name),
                {"kind": "view" if table_type == "VIEW" else "table", "rows": rows, "columns": []},
            )
            entry["columns"].append(ColumnInfo(column, data_type, bool(nullable), int(ordinal)))
        return [
            TableInfo(schema, name, e["kind"], e["rows"], tuple(e["columns"]))
            for (schema, name), e in tables.items()
        ]

    def _integer_primary_key(self, table: TableInfo) -> str | None:
        rows = self._query(
            "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA "
            "AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME "
            "WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.CONSTRAINT_NAME = 'PRIMARY'",
            (table.schema_name, table.name),
        )
        if len(rows) == 1 and rows[0][1] in {"int", "bigint", "mediumint", "smallint", "tinyint"}:
            return rows[0][0]
        return None

    def sample(self, table: TableInfo, column_names: list[str], limit: int) -> list[tuple]:
        columns = ", ".join(_quote(name) for name in column_names)
        relation = f"{_quote(table.schema_name)}.{_quote(table.name)}"
        key = None
        if table.kind == "table" and (table.row_estimate or 0) > _RANDOM_RANGE_THRESHOLD:
            key = self._integer_primary_key(table)
        if key is None:
            return self._query(f"SELECT {columns} FROM {relation} LIMIT {int(limit)}")
        low, high = self._query(f"SELECT MIN({_quote(key)}), MAX({_quote(key)}) FROM {relation}")[0]
        if low is None:
            return []
        # A random key range read through the clustered index: bounded, never a full scan.
        start = random.randint(int(low), max(int(low), int(high) - limit))
        return self._query(
            f"SELECT {columns} FROM {relation} WHERE {_quote(key)} >= %s "
            f"ORDER BY {_quote(key)} LIMIT {int(limit)}",
            (start,),
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _explain(exc: pymysql.err.OperationalError, s: ConnectionSettings) -> str:
    code = exc.args[0] if exc.args else None
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    where = f"{s.host or '127.0.0.1'}:{s.port or 3306}"
    if code == 1045:
        return f"Authentication failed for user {s.username!r}: check the username and password."
    if code == 1049:
        return f"Database {s.database!r} does not exist on {where}."
    if code in (2003, 2005, 2013):
        return f"Cannot reach MySQL/MariaDB at {where}: {detail}"
    return f"Cannot connect to MySQL/MariaDB at {where}: {detail}"
