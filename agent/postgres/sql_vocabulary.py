"""What the PostgreSQL analyser knows by name: functions and relations that read files,
run code or show other tables' data, the node types of role and grant statements, and the
settings the agent pins (with the checks that a statement keeps them)."""

from __future__ import annotations

from typing import Any

from pglast import ast

SERVER_FILE_FUNCTIONS = frozenset(
    {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "pg_stat_file",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_ls_logicalsnapdir",
        "pg_ls_logicalmapdir",
        "pg_ls_replslotdir",
    }
)
# Functions that run SQL given as a string or dump whole tables: their reads are invisible.
OPAQUE_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "dblink",
        "dblink_exec",
        "dblink_open",
        "dblink_fetch",
        "dblink_send_query",
        "dblink_get_result",
        "lo_get",
        "lo_open",
        "loread",
        "ts_stat",  # runs the query text it is given
        "ts_rewrite",
    }
)
# Functions that run SQL given to them as text.
SQL_TEXT_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "ts_stat",
        "ts_rewrite",
        "dblink",
        "dblink_exec",
        "dblink_open",
        "dblink_send_query",
    }
)
# Relations whose rows carry other tables' values (planner statistics): opaque reads.
STATISTICS_RELATIONS = frozenset(
    {
        "pg_stats",
        "pg_statistic",
        "pg_stats_ext",
        "pg_stats_ext_exprs",
        "pg_statistic_ext_data",
        "pg_largeobject",  # large objects hold whatever was written into them
    }
)
# Views that read server files.
SERVER_FILE_RELATIONS = frozenset(
    {"pg_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings"}
)
# Functions whose arguments end up stored where a later statement reads them back (settings,
# notifications, large objects, lock keys, sequences, replication origins and slots).
VALUE_SINK_FUNCTIONS = frozenset(
    {
        "set_config",
        "pg_notify",
        "lo_from_bytea",
        "lo_put",
        "lo_create",
        "lo_creat",
        "lowrite",
        "lo_truncate",
        "setval",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
        "pg_replication_origin_create",
        "pg_replication_origin_session_setup",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_logical_emit_message",
        "pg_stat_reset_single_table_counters",
    }
)
# Foreign data wrappers (file_fdw: files and programs on the server) and extensions.
FOREIGN_DATA_NODES = (
    ast.CreateExtensionStmt,
    ast.CreateFdwStmt,
    ast.CreateForeignServerStmt,
    ast.CreateForeignTableStmt,
    ast.CreateUserMappingStmt,
    ast.ImportForeignSchemaStmt,
    ast.AlterExtensionStmt,
    ast.AlterExtensionContentsStmt,
)
# Settings that change how the server splits statement text into tokens. The agent parses as
# PostgreSQL does with these values (pinned on every upstream connection); a session that
# changed them would read strings the agent reads as literals as SQL, and vice versa.
PINNED_SETTINGS = {"client_encoding": "UTF8", "standard_conforming_strings": "on"}
_PINNED_EQUIVALENTS = {
    "client_encoding": frozenset({"utf8", "utf-8", "unicode"}),
    "standard_conforming_strings": frozenset({"on", "true", "yes", "1"}),
}
ROLE_NODES = (
    ast.CreateRoleStmt,
    ast.AlterRoleStmt,
    ast.AlterRoleSetStmt,
    ast.DropRoleStmt,
    ast.ReassignOwnedStmt,
)
GRANT_NODES = (ast.GrantStmt, ast.GrantRoleStmt, ast.AlterDefaultPrivilegesStmt)
WRITE_KINDS = frozenset({"insert", "update", "delete", "merge", "copy_from", "ddl", "create_as"})


def constant_text(node: Any) -> str | None:
    """The text of a string or number constant (through casts); None when computed."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    value = getattr(node, "val", None) if isinstance(node, ast.A_Const) else None
    if isinstance(value, ast.String):
        return value.sval or ""
    if isinstance(value, ast.Integer):
        return str(value.ival)
    if isinstance(value, ast.Boolean):
        return "on" if value.boolval else "off"
    return None


def is_pinned_value(setting: str, value: str) -> bool:
    """Whether ``value`` (any spelling PostgreSQL accepts) is the value the agent pins."""
    if setting == "client_encoding":
        # PostgreSQL keeps only the letters and digits of an encoding name
        # (clean_encoding_name): asyncpg asks for "'utf-8'", which is UTF8.
        return _encoding_name(value) in {_encoding_name(v) for v in _PINNED_EQUIVALENTS[setting]}
    return value.strip().lower() in _PINNED_EQUIVALENTS[setting]


def _encoding_name(value: str) -> str:
    return "".join(c for c in value.lower() if c.isascii() and c.isalnum())


def pinned_value(setting: str, args: Any) -> bool:
    values = [constant_text(arg) for arg in args or ()]
    return len(values) == 1 and is_pinned_value(setting, values[0] or "")


def set_config_is_safe(args: Any) -> bool:
    args = list(args or ())
    name = constant_text(args[0]) if args else None
    if name is None:
        return False  # a name computed at run time could be anything
    setting = name.strip().lower()
    if setting not in PINNED_SETTINGS:
        return True
    return len(args) > 1 and pinned_value(setting, args[1:2])


def search_path_values(node: ast.VariableSetStmt) -> list[str] | None:
    values: list[str] = []
    for arg in node.args or ():
        value = getattr(arg, "val", None)
        if isinstance(value, ast.String):
            values.append(value.sval or "")
    return values or None
