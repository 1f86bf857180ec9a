"""Running one statement through the datasource's agent as the caller.

The MCP server logs in to the agent like psql would (user = the caller's Warden identity,
password = the caller's token), so the agent applies guardrails, masking, holds and audit
exactly as for any client. This module only bounds what comes back: rows and bytes are
capped (streamed, and the rest cancelled upstream, so an oversized result costs neither
memory nor database time), a statement past its timeout is cancelled through the agent
(CancelRequest, forwarded upstream), and a hold is reported as soon as the agent's notice
names the access request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from mcp.server.mcpserver.exceptions import ToolError

HELD_NOTICE = re.compile(r"held for approval: request (\d+) \(review at (\S+)\)")
HELD_ERROR = re.compile(r"request (\d+)")
# TLS to the agent as libpq's sslmode; prefer uses it whenever the agent has a certificate.
AGENT_SSLMODE = os.environ.get("WARDEN_MCP_AGENT_SSLMODE", "prefer")
_IDLE_PER_CALLER = 4


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_bytes: int
    timeout: float


@dataclass(frozen=True)
class Held:
    request_id: int
    review_url: str = ""


class HeldStatement(Exception):
    """The agent refused the statement at once, naming the access request it filed."""

    def __init__(self, held: Held, message: str) -> None:
        super().__init__(message)
        self.held = held


@dataclass
class _Run:
    """What one execution saw, filled in as messages arrive."""

    held: Held | None = None
    held_seen: asyncio.Event = field(default_factory=asyncio.Event)
    waited: bool = False


def json_value(value: Any) -> Any:
    """A result value as JSON: text for what JSON has no type for."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal | UUID | datetime | date | time | timedelta):
        return str(value) if not isinstance(value, datetime | date | time) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return str(value)


def refusal_text(error: psycopg.Error) -> str:
    """SQLSTATE, message, detail and hint: what a model needs to act on the error."""
    diag = error.diag
    parts = [f"SQLSTATE {error.sqlstate or 'unknown'}: {diag.message_primary or error}"]
    if diag.message_detail:
        parts.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"hint: {diag.message_hint}")
    return "; ".join(parts)


class AgentConnections:
    """Idle connections to agents, per (address, identity, token): a tool call reuses one
    instead of paying the agent's login round trip to the control plane each time."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, str], list[psycopg.AsyncConnection[Any]]] = {}

    async def acquire(
        self, address: str, identity: str, token: str, datasource: str
    ) -> psycopg.AsyncConnection[Any]:
        idle = self._idle.get((address, identity, token), [])
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        host, _, port = address.rpartition(":")
        try:
            return await psycopg.AsyncConnection.connect(
                host=host.strip("[]"),
                port=int(port),
                user=identity,
                password=token,
                dbname=datasource,
                sslmode=AGENT_SSLMODE,
                connect_timeout=10,
                application_name="warden-mcp",
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise ToolError(f"the Warden agent at {address} refused the login: {exc}") from exc

    async def release(
        self, key: tuple[str, str, str], connection: psycopg.AsyncConnection[Any]
    ) -> None:
        idle = self._idle.setdefault(key, [])
        healthy = (
            not connection.closed
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if healthy and len(idle) < _IDLE_PER_CALLER:
            idle.append(connection)
        else:
            await connection.close()

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                await connection.close()
        self._idle.clear()


def _type_name(connection: psycopg.AsyncConnection[Any], oid: int) -> str:
    info = connection.adapters.types.get(oid)
    return info.name if info is not None else f"oid {oid}"


async def _collect(
    connection: psycopg.AsyncConnection[Any], sql: str, limits: Limits
) -> dict[str, Any]:
    rows: list[list[Any]] = []
    size, truncated = 0, False
    cursor = connection.cursor()
    async with contextlib.aclosing(cursor.stream(sql)) as stream:  # type: ignore[type-var]
        async for row in stream:
            values = [json_value(value) for value in row]
            row_bytes = len(json.dumps(values, ensure_ascii=False).encode())
            if len(rows) >= limits.max_rows or size + row_bytes > limits.max_bytes:
                truncated = True  # leaving the stream cancels the rest upstream
                break
            rows.append(values)
            size += row_bytes
    columns = [
        {"name": column.name, "type": _type_name(connection, column.type_code)}
        for column in cursor.description or []
    ]
    return {
        "columns": columns,
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated,
        "command": cursor.statusmessage or "",
    }


async def statement_run(
    pool: AgentConnections,
    *,
    address: str,
    identity: str,
    token: str,
    datasource: str,
    sql: str,
    limits: Limits,
    on_held: Callable[[Held], Awaitable[float]],
) -> dict[str, Any]:
    """Run ``sql`` through the agent. When the agent holds it and keeps the connection open
    (``--hold-wait``), ``on_held`` says how many more seconds to wait for the review (0:
    stop waiting now; the statement is then cancelled and HeldStatement raised)."""
    key = (address, identity, token)
    connection = await pool.acquire(address, identity, token, datasource)
    run = _Run()
    loop = asyncio.get_running_loop()

    def notice(diagnostic: psycopg.errors.Diagnostic) -> None:
        found = HELD_NOTICE.search(diagnostic.message_primary or "")
        if found and run.held is None:
            run.held = Held(int(found.group(1)), found.group(2))
            # libpq may call this where the event loop would not notice a plain set()
            loop.call_soon_threadsafe(run.held_seen.set)

    connection.add_notice_handler(notice)
    try:
        return await _supervised(connection, sql, limits, run, on_held)
    finally:
        connection.remove_notice_handler(notice)
        await pool.release(key, connection)


async def _supervised(
    connection: psycopg.AsyncConnection[Any],
    sql: str,
    limits: Limits,
    run: _Run,
    on_held: Callable[[Held], Awaitable[float]],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout
    work = asyncio.ensure_future(_collect(connection, sql, limits))
    held_seen = asyncio.ensure_future(run.held_seen.wait())
    try:
        while not work.done():
            waiters = {work} if held_seen.done() else {work, held_seen}
            # FIRST_COMPLETED: the default (ALL_COMPLETED) would sit out the whole timeout
            # after a statement that finished without being held.
            await asyncio.wait(
                waiters,
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if work.done():
                break
            if held_seen.done() and run.held is not None and not run.waited:
                run.waited = True
                extra = await on_held(run.held)
                if extra <= 0:
                    await _cancel(connection, work)
                    raise HeldStatement(run.held, "held for approval")
                deadline = max(deadline, loop.time() + extra)
                continue
            await _cancel(connection, work)
            raise ToolError(
                f"cancelled after {limits.timeout:g} s (timeout_seconds): the statement was "
                "stopped in the database (SQLSTATE 57014); narrow it or raise timeout_seconds"
            )
        return _finished(work, run)
    finally:
        held_seen.cancel()


def _finished(work: asyncio.Future[dict[str, Any]], run: _Run) -> dict[str, Any]:
    try:
        return work.result()
    except psycopg.Error as exc:
        text = refusal_text(exc)
        held = run.held
        if held is None and "held for approval" in text:
            found = HELD_ERROR.search(text)
            held = Held(int(found.group(1))) if found else None
        if held is not None and exc.sqlstate == "42501":
            raise HeldStatement(held, text) from exc
        raise ToolError(text) from exc


async def _cancel(connection: psycopg.AsyncConnection[Any], work: asyncio.Future[Any]) -> None:
    """Cancel through the agent (it forwards the CancelRequest upstream), then let the
    query finish with its 57014 so the connection is usable again."""
    with contextlib.suppress(psycopg.Error):
        await connection.cancel_safe(timeout=5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(work), timeout=10)
    if not work.done():
        work.cancel()
        await connection.close()
