"""What the MySQL analyser knows by name: character sets and SQL modes that keep the
agent's reading of the text the server's, file functions, the SHOW forms that list only
schema or settings, and the statements sqlglot keeps as text (by their first words)."""

from __future__ import annotations

import re

# Character sets in which every byte below 0x80 is that ASCII character: the agent reads
# the text as the server does.  (gbk, big5, sjis… may hide a backslash inside a character.)
SAFE_CHARSETS = frozenset({"utf8", "utf8mb3", "utf8mb4", "latin1", "ascii", "binary"})
# sql_mode flags that change how the server splits text into tokens.
# PIPES_AS_CONCAT (|| as concatenation) and HIGH_NOT_PRECEDENCE (NOT a < b as (NOT a) < b)
# change how it groups them; the combination modes include ANSI_QUOTES and PIPES_AS_CONCAT.
UNSAFE_SQL_MODES = frozenset(
    {
        "ANSI_QUOTES",
        "NO_BACKSLASH_ESCAPES",
        "ANSI",
        "PIPES_AS_CONCAT",
        "HIGH_NOT_PRECEDENCE",
        "DB2",
        "MAXDB",
        "MSSQL",
        "ORACLE",
        "POSTGRESQL",
    }
)
CHARSET_SETTINGS = frozenset(
    {
        "character_set_client",
        "character_set_connection",
        "collation_connection",
        "character_set_results",
    }
)
SERVER_FILE_FUNCTIONS = frozenset({"load_file", "sys_exec", "sys_eval"})
# SHOW forms that list schema or settings; others (PROCESSLIST, ENGINE … STATUS, BINLOG
# EVENTS, WARNINGS that quote values…) are opaque.
SAFE_SHOW = frozenset(
    {
        "TABLES",
        "FULL TABLES",
        "DATABASES",
        "SCHEMAS",
        "COLUMNS",
        "FIELDS",
        "INDEX",
        "INDEXES",
        "KEYS",
        "VARIABLES",
        "SESSION VARIABLES",
        "GLOBAL VARIABLES",
        "STATUS",
        "SESSION STATUS",
        "GLOBAL STATUS",
        "COLLATION",
        "CHARACTER SET",
        "CHARSET",
        "TABLE STATUS",
        "ENGINES",
        "CREATE TABLE",
        "CREATE DATABASE",
        "CREATE SCHEMA",
        "CREATE VIEW",
        "GRANTS",
        "PLUGINS",
        "TRIGGERS",
        "PRIVILEGES",
    }
)
# Statements sqlglot keeps as text (exp.Command), by their first words.
ROLE_COMMANDS = re.compile(
    r"^\s*((create|drop|alter|rename)\s+(user|role)|set\s+(default\s+)?role|set\s+password)\b",
    re.IGNORECASE,
)
GRANT_COMMANDS = re.compile(r"^\s*(grant|revoke)\b", re.IGNORECASE)
HARMLESS_COMMANDS = re.compile(
    r"^\s*(savepoint|release\s+savepoint|rollback\s+to|unlock\s+tables|lock\s+tables)\b",
    re.IGNORECASE,
)
RENAME_TABLE = re.compile(r"^\s*rename\s+table\b", re.IGNORECASE)
CALL_STATEMENT = re.compile(r"^\s*call\b", re.IGNORECASE)
REPLACE_STATEMENT = re.compile(r"^(\s*)replace\b", re.IGNORECASE)
FILE_TRANSFER = re.compile(r"\b(into\s+(outfile|dumpfile)|load\s+(data|xml))\b", re.IGNORECASE)
EXECUTABLE_COMMENT = re.compile(r"/\*[mM]?!")
