"""The published OpenAPI contract holds: schemathesis fuzzes every operation of a live server.

One run per role (admin, reviewer, auditor, requester, and the enforcement agent's token),
all checks, positive and negative data, every phase including the stateful one that follows
the schema's links (create → read → update → delete), a fixed seed and a bounded number of
examples (tests/api/schemathesis.toml). Any failure fails the test with schemathesis's
report; the summary of each run is printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.world import contract_world
from tests.live import asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = str(Path(sys.executable).with_name("st"))
ALL_PHASES = ["--phases", "examples,coverage,fuzzing,stateful"]
SHORT = ["--phases", "examples,fuzzing", "--max-examples", "2"]
# Without admin rights most operations answer 403 at once: a short run per role proves that
# (and what each role may do) without the admin run's depth. The agent's token is refused
# outside its own endpoints, so its run covers those, in depth. The admin run fuzzes with
# positive and negative data and follows the links; the coverage phase's boundary values
# run for the agent's endpoints, where the payloads are hand-validated.
ROLE_SCOPES = {
    "agent": [*ALL_PHASES, "--include-path-regex", "/agent/"],
    "requester": SHORT,
    "reviewer": SHORT,
    "auditor": SHORT,
    "admin": ["--phases", "examples,fuzzing,stateful", "--max-examples", "6"],
}


def schemathesis_run(
    *, schema_file: Path, base_url: str, token: str, scope: list[str]
) -> tuple[int, str]:
    command = [
        ST,
        "--config-file",
        str(CONFIG),
        "run",
        str(schema_file),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--workers",
        "1",
        "--no-color",
        "--request-timeout",
        "30",
        *scope,
    ]
    # Run in the schema's directory: schemathesis keeps its cache next to where it runs.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=schema_file.parent
    )
    return done.returncode, done.stdout + done.stderr


def summary(output: str) -> str:
    """The lines schemathesis ends a run with (operations, test cases, failures, duration)."""
    lines = output.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "SUMMARY" in line), max(0, len(lines) - 12))
    return "\n".join(lines[start:])


def test_every_role_gets_what_the_schema_promises(tmp_path, admin, reviewer, auditor, requester):
    from drf_spectacular.generators import SchemaGenerator

    tokens = contract_world(
        tmp_path, admin=admin, reviewer=reviewer, auditor=auditor, requester=requester
    )
    schema_file = tmp_path / "openapi.json"
    schema = SchemaGenerator().get_schema(request=None, public=True)
    schema_file.write_text(json.dumps(schema, default=str))
    reports, failed = {}, {}
    with asgi_server() as base_url:
        for role, scope in ROLE_SCOPES.items():
            started = time.monotonic()
            returncode, output = schemathesis_run(
                schema_file=schema_file, base_url=base_url, token=tokens[role], scope=scope
            )
            reports[role] = f"{summary(output)}\n[{role}: {time.monotonic() - started:.1f} s]"
            if returncode != 0:
                failed[role] = output
    print("\n\n".join(f"== {role}\n{report}" for role, report in reports.items()))
    assert not failed, "\n\n".join(f"== {role}\n{output}" for role, output in failed.items())
