from __future__ import annotations

import sqlite3
from pathlib import Path

from governance.connectors.base import (
    ColumnInfo,
    ConnectionSettings,
    ConnectorError,
    TableInfo,
)

_RANDOM_ROWID_THRESHOLD = 50_000


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteConnector:
    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            path = Path(self.settings.database)
            if not path.is_file():
                raise ConnectorError(f"SQLite database file {str(path)!r} does not exist.")
            try:
                self._connection = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, timeout=self.settings.connect_timeout
                )
                # Non-UTF-8 text must not abort a scan: keep undecodable bytes visible.
                self._connection.text_factory = lambda raw: raw.decode("utf-8", "replace")
                self._connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                self._connection = None
                raise ConnectorError(
                    f"{str(path)!r} is not a readable SQLite database: {exc}"
                ) from exc
        return self._connection

    def _query(self, statement: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._connect().execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise ConnectorError(f"SQLite query failed: {exc}") from exc

    def test(self) -> str:
        return f"SQLite {self._query('SELECT sqlite_version()')[0][0]}"

    def introspect(self) -> list[TableInfo]:
        tables = []
        for name, kind in self._query(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ):
            columns = tuple(
                ColumnInfo(col_name, (col_type or "").lower(), not notnull, cid + 1)
                for cid, col_name, col_type, notnull, _default, _pk in self._query(
                    f"PRAGMA table_info({_quote(name)})"
                )
            )
            estimate = None
            if kind == "table":
                try:
                    estimate = self._query(f"SELECT max(rowid) FROM {_quote(name)}")[0][0] or 0
                except ConnectorError:  # WITHOUT ROWID tables
                    estimate = None
            tables.append(TableInfo("main", name, kind, estimate, columns))
        return tables

    def sample(self, table: TableInfo, column_names: list[str], limit: int) -> list[tuple]:
        columns = ", ".join(_quote(name) for name in column_names)
        relation = _quote(table.name)
        if table.kind == "table" and (table.row_estimate or 0) > _RANDOM_ROWID_THRESHOLD:
            return self._query(
                f"SELECT {columns} FROM {relation} WHERE rowid >= "
                f"(abs(random()) % (SELECT max(rowid) FROM {relation})) LIMIT ?",
                (limit,),
            )
        return self._query(f"SELECT {columns} FROM {relation} LIMIT ?", (limit,))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
