"""MCP benchmark: one run_query tool call vs the same statement with psycopg through the agent,
and a reviewer's approval → the waiting tool call's result.

    .venv/bin/python bench/mcp.py [--calls 200] [--holds 20]

Same setup as bench/approvals.py (whose helpers it uses): its own database
(`warden_bench_mcp`), channels-redis on `redis://127.0.0.1:6379/5`, Warden served by uvicorn
in a subprocess (MCP mounted at /mcp/), a real agent (`python -m agent --hold-wait 30`) in
front of an upstream PostgreSQL whose schema `held` needs approval.

1. Overhead: in alternating rounds, the same statement through a persistent psycopg
   connection to the agent, and as an MCP `run_query` call on a persistent MCP session
   (streamable HTTP, and stdio via `python -m warden_mcp`), the MCP SDK's own client. A
   third session (stdio, `WARDEN_MCP_ROUTE_SECONDS=0`) opens every call on the control plane
   before running it (warden_mcp.routes): the cost the route cache takes off the call.
   Overhead = MCP p50/p95 minus psycopg p50/p95. Target: p95 overhead < 15 ms.
2. Approval: a `run_query` with `wait_for_approval` on a new held table per run; once the
   request is pending, t0 = just before a reviewer's `POST …/approve/`; latency = the tool
   call returning its rows. Target: p95 < 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's directory comes first on sys.path and its name would hide
# the MCP SDK (`mcp`); the bench needs the SDK, so the directory goes.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
_spec = importlib.util.spec_from_file_location("bench_approvals", ROOT / "bench/approvals.py")
assert _spec is not None and _spec.loader is not None
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/warden_bench_mcp"
STATEMENT = "SELECT g, 'row ' || g AS label FROM generate_series(1, 10) g"
OVERHEAD_TARGET_MS = 15.0
APPROVAL_TARGET_MS = 150.0
CALL_TIMEOUT = 30.0
T = TypeVar("T")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


async def _bounded(what: str, call: Awaitable[T], seconds: float = CALL_TIMEOUT) -> T:
    """``call``'s result, or the bench stops naming what did not answer in time."""
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except TimeoutError:
        raise SystemExit(f"{what}: no answer within {seconds:g} s") from None


async def _overhead(base_url: str, agent_port: int, token: str, calls: int) -> dict:
    import psycopg

    from tests.integration.mcp_clients import mcp_session

    dsn = (
        f"host=127.0.0.1 port={agent_port} user=bench-copilot password={token} "
        f"dbname={shared.HOLD_DATASOURCE} sslmode=disable"
    )
    samples: dict[str, list[float]] = {"psycopg": [], "http": [], "stdio": [], "stdio-open": []}
    arguments = {"datasource": shared.HOLD_DATASOURCE, "sql": STATEMENT}
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as direct,
        mcp_session("http", base_url, token) as http,
        mcp_session("stdio", base_url, token) as stdio,
        mcp_session("stdio", base_url, token, env={"WARDEN_MCP_ROUTE_SECONDS": "0"}) as opening,
    ):
        for index in range(calls + 10):  # the first 10 warm up
            started = time.perf_counter()
            await (await direct.execute(STATEMENT)).fetchall()
            direct_ms = (time.perf_counter() - started) * 1000
            timings = {"psycopg": direct_ms}
            for name, session in (("http", http), ("stdio", stdio), ("stdio-open", opening)):
                started = time.perf_counter()
                result = await _bounded(name, session.call_tool("run_query", arguments))
                timings[name] = (time.perf_counter() - started) * 1000
                if result.is_error or result.structured_content["row_count"] != 10:
                    raise SystemExit(f"{name}: {result}")
            if index >= 10:
                for name, value in timings.items():
                    samples[name].append(value)
    return samples


async def _approvals(base_url: str, tokens: dict[str, str], first: int, runs: int) -> list[float]:
    import httpx
    from asgiref.sync import sync_to_async

    from approvals.models import AccessRequest
    from tests.integration.mcp_clients import mcp_session

    pending_of = sync_to_async(
        lambda sql: AccessRequest.objects.filter(statement=sql, state="pending").first()
    )
    samples: list[float] = []
    headers = {"Authorization": f"Bearer {tokens['reviewer']}"}
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as reviewer,
        mcp_session("http", base_url, tokens["bot"]) as session,
    ):
        for index in range(first, first + runs + 1):  # the first run warms up
            sql = f"SELECT id, amount FROM held.t{index:02d} ORDER BY id"
            arguments = {
                "datasource": shared.HOLD_DATASOURCE,
                "sql": sql,
                "wait_for_approval": True,
                "wait_seconds": 30,
            }
            call = asyncio.ensure_future(session.call_tool("run_query", arguments))
            deadline = time.monotonic() + 10
            while (pending := await pending_of(sql)) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if pending is None:
                raise SystemExit(f"no access request was filed for {sql!r}")
            await asyncio.sleep(0.3)  # the agent long-polls the request, as in real life
            started = time.time()
            response = await reviewer.post(
                f"/api/v1/access-requests/{pending.pk}/approve/", json={"comment": "bench"}
            )
            result = await call
            answered = time.time()
            rows = (result.structured_content or {}).get("rows")
            if response.status_code != 200 or result.is_error or len(rows or []) != 5:
                raise SystemExit(
                    f"run {index} failed: {response.status_code} {response.text} {result}"
                )
            if index > first:
                samples.append((answered - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--holds", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=shared.DEFAULT_REDIS_URL)
    args = parser.parse_args()

    env = shared._environment(args.database_url, args.redis_url)
    shared._create_database(args.database_url)
    shared._setup_django(env)
    from django.core.management import call_command

    from governance.models import AgentInstance

    call_command("migrate", verbosity=0)
    shared._fixtures(1)
    upstream = shared._upstream_database(args.database_url, args.holds + 1)
    tokens = shared._hold_fixtures(upstream, args.holds + 1)
    AgentInstance.objects.all().delete()
    port = shared._free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = shared._start_server(env, port)
    try:
        with tempfile.TemporaryDirectory(prefix="warden-bench-agent-") as state_dir:
            agent, agent_port = shared._start_agent(
                base_url, tokens["agent"], upstream, Path(state_dir)
            )
            try:
                deadline = time.monotonic() + 20
                while not AgentInstance.objects.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                overhead = asyncio.run(_overhead(base_url, agent_port, tokens["bot"], args.calls))
                approvals = asyncio.run(_approvals(base_url, tokens, 0, args.holds))
            finally:  # before its state directory goes: it holds its journal there
                agent.terminate()
                agent.wait(timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"MCP benchmark — {args.calls} paired calls, {args.holds} approvals; `{STATEMENT}`")
    print(f"{'measure':<56}{'p50 ms':>9}{'p95 ms':>9}{'n':>6}")
    rows = [
        ("psycopg through the agent (reference)", overhead["psycopg"]),
        ("MCP run_query, streamable HTTP (/mcp/)", overhead["http"]),
        ("MCP run_query, stdio (python -m warden_mcp)", overhead["stdio"]),
        ("  the same, every call opened before it runs", overhead["stdio-open"]),
        ("approve API call → waiting run_query returns rows", approvals),
    ]
    for label, samples in rows:
        p50, p95 = _percentiles(samples)
        print(f"{label:<56}{p50:>9.1f}{p95:>9.1f}{len(samples):>6}")
    base50, base95 = _percentiles(overhead["psycopg"])
    for name in ("http", "stdio", "stdio-open"):
        p50, p95 = _percentiles(overhead[name])
        verdict = "meets" if p95 - base95 < OVERHEAD_TARGET_MS else "MISSES"
        print(
            f"{name} overhead p50 {p50 - base50:.1f} ms, p95 {p95 - base95:.1f} ms: {verdict} "
            f"the target of {OVERHEAD_TARGET_MS:.0f} ms"
        )
    p95 = _percentiles(approvals)[1]
    verdict = "meets" if p95 < APPROVAL_TARGET_MS else "MISSES"
    target = f"{APPROVAL_TARGET_MS:.0f} ms"
    print(f"approval → tool result p95 {p95:.1f} ms {verdict} the target of {target}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
