"""Requests per second of one web process: `warden serve` (uvicorn, one process) on PostgreSQL.

    .venv/bin/python bench/web.py [--seconds 10] [--concurrency 16]

The sizing figure of docs/deployment.md ("per web process"). A database of its own
(`warden_bench_web`, created afresh each run) is filled by `warden warden_demo --migrate
--no-scan` (the demo's people, datasources and policies); one `python -m warden serve`
process serves it on a free port. Then, for each endpoint in turn, `--concurrency` asyncio
clients (httpx, keep-alive) send requests back to back for `--seconds`:

* `GET /healthz`: the process alive, no database (the floor of the ASGI stack);
* `GET /api/v1/datasources/`: an authenticated API list (token lookup, permission, one
  page of rows, DRF serialisation).

Printed per endpoint: requests/s (200 answers only; any other answer is counted and
shown), latency p50/p95, and `uptime`'s load average beside it. The clients run on the same
cores as the server, so the figure is a lower bound for a dedicated host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from tests import processes  # noqa: E402  (real processes, as tests/topology starts them)

DATABASE = "warden_bench_web"
# A demo admin's token that may read the API (personal tokens default to query + requests).
TOKEN_CODE = (
    "from governance.models import User; from governance.tokens import token_create; "
    "admin = User.objects.get(username='admin'); "
    "print(token_create(actor=admin, user=admin, name='bench', scopes=['api:read'])[1])"
)


async def _client(
    client: httpx.AsyncClient, path: str, until: float, latencies: list[float], others: list[int]
) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        response = await client.get(path)
        if response.status_code == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            others.append(response.status_code)


async def _load(
    base_url: str, path: str, token: str, seconds: float, concurrency: int
) -> dict[str, object]:
    latencies: list[float] = []
    others: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:
        await client.get(path)  # warm: the first request imports and connects
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(_client(client, path, until, latencies, others) for _ in range(concurrency))
        )
        elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "path": path,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "ok": len(latencies),
        "other_statuses": sorted(set(others)),
        "load_average": os.getloadavg(),
    }


def _warden(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "warden", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"warden {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warden-bench-web-") as scratch:
        env = processes.clean_env(
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            DATABASE_URL=processes.database_create(DATABASE),
            SECRET_KEY=secrets.token_urlsafe(40),
            WARDEN_DATA_DIR=scratch,
            WARDEN_DEMO_SHOP_URL=processes.database_create(f"{DATABASE}_shop"),
        )
        try:
            _warden(env, "warden_demo", "--migrate", "--no-scan")
            token = _warden(env, "shell", "-c", TOKEN_CODE).strip().splitlines()[-1]
            port = processes.free_port()
            serve = [sys.executable, "-m", "warden", "serve", "--port", str(port)]
            server = processes.Process(
                "web", [*serve, "--log-level", "warning"], env=env, cwd=ROOT, log_dir=Path(scratch)
            )
            base_url = f"http://127.0.0.1:{port}"
            try:
                processes.wait_until(
                    lambda: processes.answers(f"{base_url}/healthz"),
                    what="warden serve",
                    timeout=120,
                    process=server,
                )
                for path in ("/healthz", "/api/v1/datasources/"):
                    figure = asyncio.run(
                        _load(base_url, path, token, args.seconds, args.concurrency)
                    )
                    print(json.dumps(figure))
            finally:
                server.stop()
        finally:
            processes.database_drop(DATABASE)
            processes.database_drop(f"{DATABASE}_shop")


if __name__ == "__main__":
    main()
