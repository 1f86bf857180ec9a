"""One approval of a held statement, counted on the server: queries and CPU, not wall clock.

    .venv/bin/python bench/approve_profile.py [--runs 20] [--reviewers 20] [--profile STEP]

The load-independent companion of bench/approvals.py (whose wall-clock figures move with
whatever else the machine runs). The same set-up, in-process through Django's test client:
an agent files a held statement's access request, a reviewer (API token) approves it
(`POST /api/v1/access-requests/<id>/approve/`, with its after-commit work: decision push,
inbox rows to `--reviewers` reviewers over channels-redis, webhook and email tasks), then
the agent's two calls that follow: the request's state (its long-poll's answer) and the
policy bundle carrying the grant. Per step: SQL queries and process CPU time (median of
`--runs`); `--profile approve|state|bundle` prints cProfile's top functions of that step.

Uses its own database (`warden_bench_approve_profile`, created and migrated on first run)
and Redis database 12.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.approvals import (  # noqa: E402
    HOLD_DATASOURCE,
    _create_database,
    _environment,
)
from bench.approvals import _fixtures as bench_fixtures  # noqa: E402
from bench.approvals import _hold_fixtures as hold_fixtures  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/warden_bench_approve_profile"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
TABLES = 40
BUNDLE = "/api/v1/agent/bundle"


def _fixtures(reviewer_count: int) -> dict[str, Any]:
    """bench/approvals.py's: reviewers, a datasource whose schema `held` needs approval
    (catalogued, no upstream needed here), the agent's, the service account's and a
    reviewer's tokens."""
    from governance.models import DataSource, User

    bench_fixtures(reviewer_count)
    tokens = hold_fixtures("unused", TABLES)
    return {
        **tokens,
        "source": DataSource.objects.get(name=HOLD_DATASOURCE),
        "bot": User.objects.get(username="bench-copilot"),
    }


def _held_request(fixtures: dict[str, Any], index: int) -> int:
    from approvals.services import agent_request_submit

    access_request, _created = agent_request_submit(
        actor=fixtures["bot"],
        datasource=fixtures["source"],
        identity=fixtures["bot"].username,
        statement=f"SELECT id, amount FROM held.t{index % TABLES:02d} WHERE id > {index}",
        fingerprint="",
        scope={"tables": [f"held.t{index % TABLES:02d}"], "columns": [], "tags": []},
        level="read",
        reason="held by the Warden agent: held needs approval",
    )
    return access_request.pk


_queries = [0]


def _count_queries() -> None:
    """Count every connection's queries: under ASGI the view runs on another thread."""
    from django.db.backends.signals import connection_created

    def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        _queries[0] += 1
        return execute(sql, params, many, context)

    def wrap(sender: Any, connection: Any, **kwargs: Any) -> None:
        if counted not in connection.execute_wrappers:
            connection.execute_wrappers.append(counted)

    connection_created.connect(wrap, weak=False)


def _measured(call: Any, profiler: cProfile.Profile | None = None) -> tuple[Any, int, float]:
    """The response, its SQL queries and the process CPU (ms) one request took."""
    queries_before = _queries[0]
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    response = call()
    if profiler is not None:
        profiler.disable()
    cpu_ms = (time.process_time() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{response.status_code}: {response.content[:400]!r}")
    return response, _queries[0] - queries_before, cpu_ms


_deferred_tasks: list[tuple[Any, tuple]] = []


def _defer_tasks() -> None:
    """The approval's after-commit Celery tasks (webhook, email) run after its request, not
    on threads during it (bench/approvals.py's embedded mode), so each is counted apart."""
    from config import dispatch

    dispatch._run_in_thread = lambda task, args: _deferred_tasks.append((task, args))


def _deferred_tasks_run() -> float:
    started = time.process_time()
    while _deferred_tasks:
        task, args = _deferred_tasks.pop(0)
        task.apply(args=args, throw=True)
    return (time.process_time() - started) * 1000


class _Clients:
    """Requests through Django's ASGI handler on one event loop, as under uvicorn: a view's
    ``async_to_sync`` (channel layer sends) runs on that loop with its Redis connections.
    With a profiler the requests go through the WSGI-style test client instead, so the
    profiled thread is the one that runs the view (each channel layer send then makes a loop
    of its own, which the profile shows and uvicorn does not pay)."""

    def __init__(self, fixtures: dict[str, Any], profiling: bool) -> None:
        from django.test import AsyncClient, Client

        self.profiling = profiling
        self.runner = asyncio.Runner()
        kind = Client if profiling else AsyncClient
        # One client each: a new one loads the middleware again (WhiteNoise scans static files).
        self.reviewer = (kind(), {"Authorization": f"Bearer {fixtures['reviewer']}"})
        self.agent = (kind(), {"Authorization": f"Bearer {fixtures['agent']}"})

    def __call__(self, caller: tuple[Any, dict], method: str, *args: Any, **kwargs: Any) -> Any:
        client, headers = caller
        response = getattr(client, method)(*args, headers=headers, **kwargs)
        if self.profiling:
            return response
        return self.runner.run(response)


def _one_run(fixtures: dict[str, Any], index: int, profiled: str, profiler: Any) -> dict:
    request_id = _held_request(fixtures, index)
    _deferred_tasks_run()  # the new request's, not the approval's
    clients: _Clients = fixtures["clients"]
    approve, approve_queries, approve_cpu = _measured(
        lambda: clients(
            clients.reviewer,
            "post",
            f"/api/v1/access-requests/{request_id}/approve/",
            {"comment": "profile"},
            content_type="application/json",
        ),
        profiler if profiled == "approve" else None,
    )
    assert approve.json()["state"] == "approved", approve.json()
    tasks_cpu = _deferred_tasks_run()
    state, state_queries, state_cpu = _measured(
        lambda: clients(clients.agent, "get", f"/api/v1/agent/access-requests/{request_id}"),
        profiler if profiled == "state" else None,
    )
    grant_id = state.json()["grant"]["id"]
    bundle, bundle_queries, bundle_cpu = _measured(
        lambda: clients(clients.agent, "get", BUNDLE, {"datasource": HOLD_DATASOURCE}),
        profiler if profiled == "bundle" else None,
    )
    assert any(g["id"] == grant_id for g in bundle.json()["bundle"]["grants"])
    return {
        "approve": (approve_queries, approve_cpu),
        "approve's tasks": (None, tasks_cpu),
        "agent state": (state_queries, state_cpu),
        "agent bundle": (bundle_queries, bundle_cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument(
        "--profile", choices=["approve", "state", "bundle"], help="cProfile this step"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()

    env = _environment(args.database_url, args.redis_url)
    env["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    _create_database(args.database_url)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _count_queries()
    fixtures = _fixtures(args.reviewers)
    fixtures["clients"] = _Clients(fixtures, profiling=bool(args.profile))
    _defer_tasks()
    profiler = cProfile.Profile() if args.profile else None
    _one_run(fixtures, 0, "", None)  # warm-up: imports, templates, connections
    runs = [
        _one_run(fixtures, index, args.profile or "", profiler) for index in range(1, args.runs + 1)
    ]
    print(f"one approval of a held statement, {args.reviewers} reviewers, median of {args.runs}")
    print(f"{'step':<16}{'queries':>9}{'CPU ms':>9}")
    for step in runs[0]:
        counts = [run[step][0] for run in runs if run[step][0] is not None]
        queries = f"{statistics.median(counts):.0f}" if counts else "-"
        cpu = statistics.median(run[step][1] for run in runs)
        print(f"{step:<16}{queries:>9}{cpu:>9.1f}")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        print(out.getvalue())


if __name__ == "__main__":
    main()
