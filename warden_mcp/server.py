"""The MCP tools: one MCPServer, whichever transport carries it.

A transport supplies ``caller()``: the WardenAPI of whoever is calling (stdio: the token
it was started with; HTTP: the bearer token of the request). Every tool first opens the
call on the control plane (audit, channel ``mcp``; the datasource checked against the
caller), then does its work as the caller. Errors are tool errors whose text a model can
act on: the SQLSTATE, the guardrail or rule, "held: request N".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from warden_client.operations import request_state_words
from warden_mcp.controlplane import WardenAPI
from warden_mcp.routes import Routes
from warden_mcp.statements import (
    AgentConnections,
    Held,
    HeldStatement,
    Limits,
    statement_run,
)

INSTRUCTIONS = """\
Warden governs this organisation's databases. Every statement you run goes through Warden's
enforcement agent under your own identity: sensitive columns may come back masked, some
statements are refused (the error names the guardrail or rule), and some are held until a
human reviewer approves them. Start with list_datasources, find data with search_catalog and
describe_table (they say what the policy does to each column for you), preview with
explain_statement, then run_query. If something is held, either wait for the review
(wait_for_approval) or tell the user the review URL."""

logger = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 2.0
MAX_WAIT_SECONDS = 3600.0

Datasource = Annotated[str, Field(description="Datasource name, as list_datasources shows it")]


def _held_result(held: Held, state: str, message: str) -> dict[str, Any]:
    return {
        "status": "held" if state == "pending" else state,
        "request_id": held.request_id,
        "review_url": held.review_url,
        "message": message,
    }


def _review_comment(request: dict[str, Any]) -> str:
    reviews = [r for r in request.get("reviews") or [] if r.get("decision") == "deny"]
    if not reviews:
        return ""
    review = reviews[-1]
    return f" by {review.get('reviewer')}: {review.get('comment') or '(no comment)'}"


class WardenTools:
    """The tool implementations, bound to a way of finding the caller."""

    def __init__(self, caller: Callable[[], WardenAPI]) -> None:
        self.caller = caller
        self.connections = AgentConnections()
        self.routes = Routes()

    # ------------------------------------------------------------ catalog

    async def list_datasources(self) -> dict[str, Any]:
        """List the datasources you may query, with their engine and the Warden agent that
        serves each (address and whether it is online). A datasource without a live agent
        cannot be queried right now."""
        api = self.caller()
        await api.call_opened("list_datasources", {})
        return {"datasources": await api.datasources()}

    async def search_catalog(
        self,
        datasource: Datasource,
        text: Annotated[str, Field(description="Part of a table or column name")] = "",
        tag: Annotated[str, Field(description="A classification tag, e.g. PII.Email")] = "",
        min_sensitivity: Annotated[
            Literal["", "public", "internal", "confidential", "restricted"],
            Field(description="Only columns at or above this sensitivity"),
        ] = "",
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Search a datasource's catalog by name, tag or sensitivity. Each column comes with
        its type, tags, sensitivity and its effect for you: allow, mask (with the method),
        deny, or needs_approval (a statement reading it is held for a reviewer)."""
        arguments = {"datasource": datasource, "text": text, "tag": tag, "limit": limit}
        api = self.caller()
        await api.call_opened("search_catalog", {**arguments, "min_sensitivity": min_sensitivity})
        params = {
            "datasource": datasource,
            "q": text,
            "tag": tag,
            "min_sensitivity": min_sensitivity,
            "limit": limit,
        }
        return await api.catalog({k: v for k, v in params.items() if v not in ("", None)})

    async def describe_table(
        self,
        datasource: Datasource,
        table: Annotated[str, Field(description="schema.table, or a table name (public first)")],
    ) -> dict[str, Any]:
        """Describe a table: its columns, types, tags and what the policy does to each column
        for you (allow / mask with method / deny / needs_approval)."""
        api = self.caller()
        await api.call_opened("describe_table", {"datasource": datasource, "table": table})
        return await api.table(datasource, table)

    async def explain_statement(
        self,
        datasource: Datasource,
        sql: Annotated[str, Field(description="One SQL statement", max_length=100_000)],
    ) -> dict[str, Any]:
        """Say what Warden would do with a statement for you, without running it: the action
        (allow, mask, deny, hold), the rule or guardrail, the columns read and which come
        back masked and how."""
        api = self.caller()
        await api.call_opened("explain_statement", {"datasource": datasource, "sql": sql})
        return await api.explain(datasource, sql)

    # ------------------------------------------------------------ statements

    async def run_query(
        self,
        datasource: Datasource,
        sql: Annotated[str, Field(description="One SQL statement", max_length=100_000)],
        ctx: Context,
        max_rows: Annotated[int, Field(ge=1, le=10_000)] = 200,
        max_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024,
        timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30,
        wait_for_approval: Annotated[
            bool, Field(description="If held for approval, wait for the reviewer's decision")
        ] = False,
        wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] = 600,
    ) -> dict[str, Any]:
        """Run one SQL statement (read or write) on a datasource, as you, through Warden's
        enforcement agent. Returns column names and types and the rows, masked where the
        policy says so, at most max_rows rows / max_bytes bytes ("truncated": true when more
        existed). A statement longer than timeout_seconds is cancelled in the database. A
        refused statement is an error naming the SQLSTATE and the rule or guardrail. A
        statement that needs approval returns status "held" with the access request id and
        review URL, or, with wait_for_approval, waits (progress notifications) for the
        decision and returns the rows, or the denial with the reviewer's comment."""
        api = self.caller()
        opened = await self.routes.open(api, datasource, {"datasource": datasource, "sql": sql})
        limits = Limits(max_rows, max_bytes, timeout_seconds)
        progress = _Progress(ctx)

        async def on_held(held: Held) -> float:
            if not wait_for_approval:
                return 0.0
            progress.start(held)
            return wait_seconds

        try:
            result = await statement_run(
                self.connections,
                address=opened["agent"]["address"],
                identity=opened["identity"],
                token=api.token,
                datasource=opened["datasource"]["name"],
                sql=sql,
                limits=limits,
                on_held=on_held,
            )
        except HeldStatement as held:
            return await self._held(api, held, progress, wait_for_approval, wait_seconds)
        finally:
            progress.stop()
        return {"status": "ok", **result}

    async def _held(
        self,
        api: WardenAPI,
        held: HeldStatement,
        progress: _Progress,
        wait: bool,
        wait_seconds: float,
    ) -> dict[str, Any]:
        """The agent answered with a hold: report it, or wait on the control plane (an agent
        without --hold-wait refuses at once; the decision still comes, pushed)."""
        request = await api.access_request(held.held.request_id)
        ref = Held(held.held.request_id, held.held.review_url or request.get("review_url", ""))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (wait_seconds if wait else 0)
        if wait and request["state"] == "pending":
            progress.start(ref)
        while request["state"] == "pending" and (left := deadline - loop.time()) > 0:
            request = await api.access_request(ref.request_id, wait=min(left, 60.0))
        progress.stop()
        state = request["state"]
        if state == "pending":
            return _held_result(
                ref, state, f"held: request {ref.request_id} awaits a reviewer at {ref.review_url}"
            )
        if state == "approved":
            return _held_result(
                ref,
                state,
                f"request {ref.request_id} was approved; run the statement again (the agent "
                "applies the grant within its bundle poll interval)",
            )
        raise ToolError(
            f"held: request {ref.request_id} was {request_state_words(state)}"
            f"{_review_comment(request)}; "
            "the statement was not run"
        )

    # ------------------------------------------------------------ access requests

    async def request_access(
        self,
        datasource: Datasource,
        level: Literal["read", "read_unmasked", "write"],
        reason: Annotated[str, Field(min_length=1, max_length=2000)],
        duration_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)],
        tables: Annotated[list[str], Field(description="schema.table names")] = [],  # noqa: B006
        columns: Annotated[list[str], Field(description="schema.table.column names")] = [],  # noqa: B006
        tags: Annotated[list[str], Field(description="tag names, e.g. PII.Email")] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Ask reviewers for access: a scope (tables, columns and/or tags), a level (read =
        masked, read_unmasked, write), a reason and a duration. Returns the request id,
        its state and review URL; follow it with get_access_request."""
        scope = {"tables": tables, "columns": columns, "tags": tags}
        body = {
            "datasource": datasource,
            "scope": scope,
            "level": level,
            "reason": reason,
            "duration_minutes": duration_minutes,
        }
        api = self.caller()
        await api.call_opened("request_access", body)
        return _request_summary(await api.access_request_create(body))

    async def get_access_request(
        self,
        request_id: Annotated[int, Field(ge=1)],
        ctx: Context,
        wait_seconds: Annotated[
            float, Field(ge=0, le=MAX_WAIT_SECONDS, description="Wait this long for a decision")
        ] = 0,
    ) -> dict[str, Any]:
        """Read an access request's state (pending, approved, denied = rejected by a
        reviewer, expired, cancelled), with reviews and the grant; with wait_seconds, wait
        (progress notifications) until a reviewer decides."""
        api = self.caller()
        await api.call_opened(
            "get_access_request", {"request_id": request_id, "wait_seconds": wait_seconds}
        )
        request = await api.access_request(request_id)
        progress = _Progress(ctx)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        if request["state"] == "pending" and wait_seconds > 0:
            progress.start(Held(request_id, request.get("review_url", "")))
        try:
            while request["state"] == "pending" and (left := deadline - loop.time()) > 0:
                request = await api.access_request(request_id, wait=min(left, 60.0))
        finally:
            progress.stop()
        return _request_summary(request)


def _request_summary(request: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "state", "datasource", "scope", "level", "reason", "duration_minutes")
    summary = {key: request.get(key) for key in keys}
    summary["review_url"] = request.get("review_url", "")
    summary["reviews"] = [
        {k: review.get(k) for k in ("reviewer", "decision", "comment")}
        for review in request.get("reviews") or []
    ]
    grant = request.get("grant")
    summary["grant"] = (
        {k: grant.get(k) for k in ("id", "level", "expires_at", "scope")} if grant else None
    )
    return summary


class _Progress:
    """MCP progress notifications while a call waits for a reviewer (every 2 s)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None

    def start(self, held: Held) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._tick(held))

    async def _tick(self, held: Held) -> None:
        waited = 0.0
        message = f"held for approval: request {held.request_id} (review at {held.review_url})"
        while True:
            try:
                await self.ctx.report_progress(waited, None, message)
            except Exception:  # a client that ignores progress is fine
                logger.debug("progress notification failed", exc_info=True)
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            waited += PROGRESS_EVERY_SECONDS

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


def build_server(caller: Callable[[], WardenAPI]) -> tuple[MCPServer, WardenTools]:
    tools = WardenTools(caller)
    server = MCPServer("warden", instructions=INSTRUCTIONS, version="1.0")
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    for method, hints in (
        (tools.list_datasources, reads),
        (tools.search_catalog, reads),
        (tools.describe_table, reads),
        (tools.explain_statement, reads),
        (tools.run_query, ToolAnnotations(destructive_hint=True, open_world_hint=False)),
        (tools.request_access, ToolAnnotations(read_only_hint=False, open_world_hint=False)),
        (tools.get_access_request, reads),
    ):
        server.add_tool(method, annotations=hints, structured_output=True)
    return server, tools
