"""Audit of MCP tool calls (channel ``mcp``).

Each tool call is one event with the caller's identity, the tool's name and its arguments,
SQL reduced to its normalised text (literals become ``$n``, as the agent audits statements)
so no value a model put in a statement is kept. The statements themselves are audited by
the agent that runs them: one query is never counted twice.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from pglast import parser

from audit.services import event_record
from governance.models import DataSource, User

CHANNEL = "mcp"
_MAX_TEXT = 300


def _redacted_sql(sql: str) -> str:
    try:
        return str(parser.normalize(sql))
    except parser.ParseError:
        return f"<statement that does not parse, {len(sql)} characters>"


def mcp_arguments_redacted(arguments: dict[str, Any]) -> dict[str, Any]:
    redacted: dict[str, Any] = {}
    for name, value in arguments.items():
        if name == "sql" and isinstance(value, str):
            redacted[name] = _redacted_sql(value)
        elif isinstance(value, str):
            redacted[name] = value[:_MAX_TEXT]
        elif isinstance(value, int | float | bool) or value is None:
            redacted[name] = value
        else:  # scopes and lists: their shape, not their size, matters for the trail
            redacted[name] = str(value)[:_MAX_TEXT]
    return redacted


def mcp_call_record(
    *,
    actor: User,
    tool: str,
    arguments: dict[str, Any],
    datasource: DataSource | str | None = None,
    decision: str = "allow",
    reason: str = "",
    source_address: str = "",
) -> None:
    details: dict[str, Any] = {
        "channel": CHANNEL,
        "tool": tool,
        "arguments": mcp_arguments_redacted(arguments),
    }
    if reason:
        details["reason"] = reason
    with transaction.atomic():
        event_record(
            actor=actor,
            action="mcp.tool_called",
            datasource=datasource,
            decision=decision,
            details=details,
            source_address=source_address,
        )
