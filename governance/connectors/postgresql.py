from __future__ import annotations

import psycopg
from psycopg import sql

from governance.connectors.base import (
    ColumnInfo,
    ConnectionSettings,
    ConnectorError,
    TableInfo,
)

_INTROSPECT = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint,
       a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.attnum
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
  AND has_schema_privilege(n.oid, 'USAGE')
ORDER BY n.nspname, c.relname, a.attnum
"""
# Above this many estimated rows a table is sampled with TABLESAMPLE instead of LIMIT.
_TABLESAMPLE_THRESHOLD = 50_000


class PostgresConnector:
    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._connection: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        if self._connection is None:
            s = self.settings
            try:
                self._connection = psycopg.connect(
                    host=s.host or "127.0.0.1",
                    port=s.port or 5432,
                    dbname=s.database,
                    user=s.username or None,
                    password=s.password or None,
                    connect_timeout=s.connect_timeout,
                    autocommit=True,
                    options=f"-c statement_timeout={s.statement_timeout_ms}",
                    application_name="warden-scanner",
                )
            except psycopg.OperationalError as exc:
                raise ConnectorError(_explain(exc, s)) from exc
            self._connection.execute("SET default_transaction_read_only = on")
        return self._connection

    def test(self) -> str:
        row = self._connect().execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0]}" if row else "PostgreSQL"

    def introspect(self) -> list[TableInfo]:
        rows = self._connect().execute(_INTROSPECT).fetchall()
        tables: dict[tuple[str, str], dict] = {}
        for schema, name, relkind, reltuples, column, data_type, nullable, attnum in rows:
            entry = tables.setdefault(
                (schema, name),
                {
                    "kind": "view" if relkind in ("v", "m") else "table",
                    "rows": reltuples if reltuples is not None and reltuples >= 0 else None,
                    "columns": [],
                },
            )
            entry["columns"].append(ColumnInfo(column, data_type, bool(nullable), int(attnum)))
        return [
            TableInfo(schema, name, e["kind"], e["rows"], tuple(e["columns"]))
            for (schema, name), e in tables.items()
        ]

    def sample(self, table: TableInfo, column_names: list[str], limit: int) -> list[tuple]:
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in column_names)
        relation = sql.Identifier(table.schema_name, table.name)
        estimate = table.row_estimate or 0
        if table.kind == "table" and estimate > _TABLESAMPLE_THRESHOLD:
            # Read ~3x the wanted rows' worth of pages; SYSTEM sampling reads whole pages.
            percent = min(100.0, max(0.01, 300.0 * limit / estimate))
            query = sql.SQL("SELECT {} FROM {} TABLESAMPLE SYSTEM ({}) LIMIT {}").format(
                columns, relation, sql.Literal(percent), sql.Literal(limit)
            )
        else:
            query = sql.SQL("SELECT {} FROM {} LIMIT {}").format(
                columns, relation, sql.Literal(limit)
            )
        try:
            cursor = self._connect().cursor(binary=False)
            return cursor.execute(query).fetchall()
        except psycopg.Error as exc:
            raise ConnectorError(
                f"sampling {table.schema_name}.{table.name} failed: {exc}"
            ) from exc

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _explain(exc: psycopg.OperationalError, s: ConnectionSettings) -> str:
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return f"Authentication failed for user {s.username!r}: check the username and password."
    if "does not exist" in lowered and "database" in lowered:
        return f"Database {s.database!r} does not exist on {s.host}:{s.port or 5432}."
    if "connection refused" in lowered:
        return f"Connection refused by {s.host}:{s.port or 5432}: is PostgreSQL listening there?"
    if "timeout" in lowered or "could not translate host name" in lowered:
        return f"Cannot reach {s.host}:{s.port or 5432}: {message}"
    return f"Cannot connect to PostgreSQL at {s.host}:{s.port or 5432}: {message}"
