"""Server catalogs that tell more than any column: other sessions and credentials.

Through the agent every statement runs as the datasource's upstream role, so what that role
may read in the server's own catalogs, every Warden identity could read: the statement text
other people are running (with the literals they typed: e-mails, card numbers), the text
of every statement the server has recorded, client addresses and certificate names, and,
where the role may, password hashes and the passwords stored in user mappings and
subscriptions.  None of that is a governed column, so the bundle cannot mask it; reading
these catalogs is refused unless a rule allows the identity that catalog
(``PolicyEngine._private_catalogs``).

psql's ``\\d`` family and the metadata queries of DBeaver and pgAdmin read pg_class,
pg_attribute, pg_namespace, pg_roles and the like, none of which is listed here.

Each protocol's analyser records the private catalogs a statement reads
(``StatementInfo.private_catalogs``, as (schema, name)); a rule allowing that table, its
schema or the datasource lets an identity read it.  PostgreSQL's are matched by name in any
schema and named under ``pg_catalog`` for rules; MySQL's are whole schemas (mysql,
performance_schema, sys: user and password tables, statement history, threads) and the
information_schema tables that are not schema metadata (PROCESSLIST, INNODB_TRX, ...), and
``SHOW [FULL] PROCESSLIST``; MySQL names are matched in lower case.
"""

from __future__ import annotations

from collections.abc import Iterable

# Relations (matched by name in any schema: pg_stat_statements lives where the extension
# was installed) and what they reveal.
PRIVATE_RELATIONS = frozenset(
    {
        # Other sessions' statement text, users, client addresses.
        "pg_stat_activity",
        "pg_stat_replication",
        "pg_stat_wal_receiver",  # the primary's connection string
        "pg_stat_ssl",  # client certificate names of every session
        "pg_stat_gssapi",  # Kerberos principals of every session
        # Statement statistics keep the text of every statement run.
        "pg_stat_statements",
        "pg_stat_monitor",
        # Credentials.
        "pg_authid",  # password hashes
        "pg_shadow",
        "pg_user_mapping",  # user-mapping options: remote user and password
        "pg_user_mappings",
        "pg_subscription",  # subconninfo may hold a password
    }
)
# Functions behind those views (the views are thin wrappers around them).
PRIVATE_FUNCTIONS = frozenset(
    {
        "pg_stat_get_activity",
        "pg_stat_get_backend_activity",
        "pg_stat_get_backend_client_addr",
        "pg_stat_get_backend_client_port",
        "pg_stat_get_backend_userid",
        "pg_stat_get_wal_receiver",
        "pg_stat_statements",
        "pg_stat_monitor",
    }
)


def private_catalog_reads(relation_names: Iterable[str], functions: Iterable[str]) -> list[str]:
    """The private catalogs (relations and functions) a statement reads, sorted."""
    found = {name for name in relation_names if name in PRIVATE_RELATIONS}
    found |= {f"{function}()" for function in functions if function in PRIVATE_FUNCTIONS}
    return sorted(found)


# Schemas whose tables hold other sessions' statement text, credentials or value statistics.
MYSQL_PRIVATE_SCHEMAS = frozenset({"mysql", "performance_schema", "sys"})
# information_schema tables that describe the schema only; the rest (PROCESSLIST,
# INNODB_TRX/LOCKS, COLUMN_STATISTICS, OPTIMIZER_TRACE…) carry statement text or values.
MYSQL_METADATA_TABLES = frozenset(
    {
        "tables",
        "columns",
        "schemata",
        "statistics",
        "key_column_usage",
        "referential_constraints",
        "table_constraints",
        "check_constraints",
        "views",
        "routines",
        "parameters",
        "triggers",
        "events",
        "character_sets",
        "collations",
        "collation_character_set_applicability",
        "engines",
        "plugins",
        "partitions",
        "column_privileges",
        "table_privileges",
        "schema_privileges",
        "user_privileges",
        "session_variables",
        "global_variables",
        "session_status",
        "global_status",
        "keywords",
        "sql_functions",
        "enabled_roles",
        "applicable_roles",
    }
)


def is_mysql_private_catalog(schema: str, name: str) -> bool:
    """Whether MySQL's ``schema.name`` (lower case) is a private catalog."""
    return schema in MYSQL_PRIVATE_SCHEMAS or (
        schema == "information_schema" and name not in MYSQL_METADATA_TABLES
    )
