"""Connectors to the organisation's databases, one module per engine."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from governance.connectors.base import (
    ColumnInfo,
    ConnectionSettings,
    Connector,
    ConnectorError,
    TableInfo,
)
from governance.crypto import decrypt_secret
from governance.models import DataSource, Engine

__all__ = ["ColumnInfo", "Connector", "ConnectorError", "TableInfo", "connector_for"]


def connector_for(datasource: DataSource) -> Connector:
    from governance.connectors.mysql import MySQLConnector
    from governance.connectors.postgresql import PostgresConnector
    from governance.connectors.sqlite import SQLiteConnector

    connection_settings = ConnectionSettings(
        engine=datasource.engine,
        host=datasource.host,
        port=datasource.port,
        database=datasource.database,
        username=datasource.username,
        password=decrypt_secret(datasource.password_encrypted),
        options=datasource.options or {},
        connect_timeout=settings.SCAN_CONNECT_TIMEOUT,
        statement_timeout_ms=settings.SCAN_STATEMENT_TIMEOUT_MS,
    )
    engines: dict[str, Callable[[ConnectionSettings], Connector]] = {
        Engine.POSTGRESQL: PostgresConnector,
        Engine.MYSQL: MySQLConnector,
        Engine.SQLITE: SQLiteConnector,
    }
    if datasource.engine not in engines:
        raise ConnectorError(f"Unsupported engine {datasource.engine!r}.")
    return engines[datasource.engine](connection_settings)
