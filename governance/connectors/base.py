"""The interface every datasource engine implements: test, introspect, sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class ConnectorError(Exception):
    """A datasource problem worth showing to a person as it is (host, auth, database...)."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str
    is_nullable: bool
    ordinal: int


@dataclass(frozen=True)
class TableInfo:
    schema_name: str
    name: str
    kind: str  # "table" or "view"
    row_estimate: int | None
    columns: tuple[ColumnInfo, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ConnectionSettings:
    engine: str
    host: str
    port: int | None
    database: str
    username: str
    password: str
    options: dict[str, Any]
    connect_timeout: int
    statement_timeout_ms: int


class Connector(Protocol):
    def test(self) -> str:
        """Connect and return the server version; raise ConnectorError with a clear reason."""
        ...

    def introspect(self) -> list[TableInfo]: ...

    def sample(self, table: TableInfo, column_names: list[str], limit: int) -> list[tuple]:
        """Up to `limit` rows of those columns, chosen without reading the whole table."""
        ...

    def close(self) -> None: ...
