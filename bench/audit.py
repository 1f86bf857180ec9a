"""Audit trail benchmark: agent-batch ingest and chain verification on PostgreSQL.

    .venv/bin/python bench/audit.py [--events 1000000] [--batch 500] [--http-events 100000]

Uses its own database (`warden_bench_audit` on the local PostgreSQL, created and migrated
on first run; `--database-url` to change) and empties its audit table first. Prints, side by
side with a reference measured in the same process:

- ingest through the service (validate, resolve tags, hash, COPY) vs a plain COPY of the
  same rows without validation or hashing;
- ingest through the HTTP endpoint (Django test client, DRF, JSON) in batches;
- verification (server-side cursor, recompute every hash) vs fetching the same rows
  without hashing; each verification runs in a fresh subprocess so its peak RSS
  (resource.getrusage) is its own, for two chain lengths, to show memory is flat.

Targets: ingest >= 20k events/s, verification >= 100k events/s, memory flat in N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/warden_bench_audit"


def _setup_django(database_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdef")
    os.environ.setdefault("WARDEN_DATA_DIR", "/tmp/warden-bench-data")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def _create_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


DERIVED_TABLES = (
    "audit_auditdaycount, audit_auditdaytagcount, audit_auditdaycolumnread, audit_auditeventtag"
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _empty_audit_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        # and what appends derive from events (counts, tag index): a rerun starts from nothing
        cursor.execute(f"TRUNCATE audit_auditevent, audit_auditcheckpoint, {DERIVED_TABLES}")
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def _catalog_and_token() -> Any:
    from django.utils import timezone

    from governance.models import AccessToken, Column, ColumnTag, DataSource, Table, Tag, User

    now = timezone.now()
    source, _ = DataSource.objects.get_or_create(
        name="bench-shop", defaults={"engine": "postgresql", "database": "shop"}
    )
    table, _ = Table.objects.get_or_create(
        datasource=source,
        schema_name="public",
        name="customers",
        defaults={"first_seen_at": now, "last_seen_at": now},
    )
    for ordinal, (name, tag) in enumerate([("email", "PII.Email"), ("phone", "PII.Phone")]):
        column, _ = Column.objects.get_or_create(
            table=table,
            name=name,
            defaults={
                "data_type": "text",
                "ordinal": ordinal,
                "first_seen_at": now,
                "last_seen_at": now,
            },
        )
        tag_row = Tag.objects.filter(name=tag).first()
        if tag_row:
            ColumnTag.objects.get_or_create(
                column=column, tag=tag_row, defaults={"source": "scan", "state": "confirmed"}
            )
    for name in ("alice", "bob", "copilot"):
        User.objects.get_or_create(
            username=name, defaults={"is_service_account": name == "copilot"}
        )
    owner, _ = User.objects.get_or_create(
        username="bench-agent", defaults={"is_service_account": True}
    )
    from governance.tokens import token_create

    AccessToken.objects.filter(user=owner).delete()
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_superuser": True})
    return token_create(actor=admin, user=owner, name="bench", is_agent=True, datasources=[source])


def _agent_events(count: int, start: datetime) -> list[dict[str, Any]]:
    identities = ("alice", "bob", "copilot")
    decisions = ("allow", "allow", "mask", "deny")
    return [
        {
            "id": str(uuid.uuid4()),
            "time": (start + timedelta(milliseconds=index)).isoformat(),
            "identity": identities[index % 3],
            "datasource": "bench-shop",
            "client_address": "10.1.2.3",
            "fingerprint": f"fp{index % 50:04d}",
            "statement": "SELECT email, phone FROM public.customers WHERE id = ?",
            "kind": "select",
            "tables_read": ["public.customers"],
            "tables_written": [],
            "columns_read": ["public.customers.email", "public.customers.phone"],
            "masked_columns": ["public.customers.email"] if index % 4 == 2 else [],
            "decision": decisions[index % 4],
            "rule": "rule:7:mask-pii",
            "rows": 1,
            "duration_ms": 1.25,
        }
        for index in range(count)
    ]


def _reference_copy(events: list[dict[str, Any]]) -> float:
    """Plain COPY of the same rows (no validation, no hashing) into a scratch table."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_reference")
        cursor.execute(
            "CREATE TABLE bench_reference (LIKE audit_auditevent INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
    columns = (
        "id, sequence, occurred_at, recorded_at, actor, actor_kind, action, target_type, "
        "target_id, target_repr, datasource_name, decision, details, source_address, prev_hash, "
        "hash"
    )
    started = time.perf_counter()
    sequence = 0
    for offset in range(0, len(events), 500):
        with transaction.atomic():
            raw = connection.connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY bench_reference ({columns}) FROM STDIN") as copy,
            ):
                for event in events[offset : offset + 500]:
                    sequence += 1
                    copy.write_row(
                        (
                            event["id"],
                            sequence,
                            event["time"],
                            event["time"],
                            event["identity"],
                            "user",
                            "query.executed",
                            "statement",
                            event["fingerprint"],
                            event["statement"],
                            event["datasource"],
                            event["decision"],
                            json.dumps(event),
                            event["client_address"],
                            "",
                            uuid.uuid4().hex * 2,
                        )
                    )
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_reference")
    return elapsed


def _ingest_service(token: Any, count: int, batch: int, start: datetime) -> float:
    from audit.ingest import agent_events_ingest

    elapsed = 0.0
    chunk = 50_000  # generate inputs in chunks so the benchmark itself stays small
    for chunk_start in range(0, count, chunk):
        events = _agent_events(
            min(chunk, count - chunk_start), start + timedelta(seconds=chunk_start)
        )
        started = time.perf_counter()
        for offset in range(0, len(events), batch):
            agent_events_ingest(token=token, events=events[offset : offset + batch])
        elapsed += time.perf_counter() - started
    return elapsed


def _ingest_http(secret: str, count: int, batch: int, start: datetime) -> float:
    from django.test import Client

    client = Client()
    events = _agent_events(count, start)
    bodies = [json.dumps({"events": events[i : i + batch]}) for i in range(0, count, batch)]
    # Warm-up: the first request imports the API stack; not part of steady-state ingest.
    warm = _agent_events(batch, start - timedelta(days=1))
    client.post(
        "/api/v1/agent/audit",
        json.dumps({"events": warm}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    started = time.perf_counter()
    for body in bodies:
        response = client.post(
            "/api/v1/agent/audit",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        assert response.status_code == 200, response.content[:300]
    return time.perf_counter() - started


def verify_child(to_sequence: int, reference: bool) -> None:
    """Runs in a subprocess: one verification (or reference fetch), prints a JSON line."""
    from django.db import connection, transaction

    from audit.verification import chain_walk, event_rows

    started = time.perf_counter()
    if reference:
        with transaction.atomic():
            rows = sum(1 for _row in event_rows(1, to_sequence))
        ok = True
    else:
        report = chain_walk(to_sequence=to_sequence)
        rows, ok = report.checked, report.ok
    elapsed = time.perf_counter() - started
    print(json.dumps({"rows": rows, "ok": ok, "seconds": elapsed, "rss_mb": _peak_rss_mb()}))
    del connection


class Launcher:
    """Starts the verification processes from a small helper started before ingest.

    On Linux a process inherits, through fork and exec, its parent's peak RSS (the
    benchmark's own, several hundred MB after generating a million events), which would hide
    the verifier's. The helper stays small, so each child's getrusage peak is its own.
    """

    def __init__(self) -> None:
        self.helper = subprocess.Popen(
            [sys.executable, __file__, "--launcher"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, command: list[str]) -> dict:
        assert self.helper.stdin and self.helper.stdout
        self.helper.stdin.write(json.dumps(command) + "\n")
        self.helper.stdin.flush()
        return json.loads(self.helper.stdout.readline())

    def close(self) -> None:
        assert self.helper.stdin
        self.helper.stdin.close()
        self.helper.wait()


def launcher_loop() -> None:
    for line in sys.stdin:
        output = subprocess.run(json.loads(line), check=True, capture_output=True, text=True)
        print(output.stdout.strip().splitlines()[-1], flush=True)


def _verify_in_subprocess(
    launcher: Launcher, args: argparse.Namespace, to_sequence: int, reference: bool
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--database-url",
        args.database_url,
        "--verify-child",
        str(to_sequence),
    ]
    if reference:
        command.append("--reference")
    return launcher.run(command)


def batch_warmup(args: argparse.Namespace) -> int:
    """Events the HTTP warm-up request added to the chain."""
    return args.batch if args.http_events else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--http-events", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--verify-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--launcher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.launcher:
        launcher_loop()
        return

    if args.verify_child is not None:
        _setup_django(args.database_url)
        verify_child(args.verify_child, args.reference)
        return

    launcher = Launcher()
    _create_database(args.database_url)
    _setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _empty_audit_table()
    token, secret = _catalog_and_token()
    start = datetime(2026, 11, 1, tzinfo=UTC)

    print(
        f"audit benchmark on {args.database_url}: {args.events:,} events, batches of "
        f"{args.batch}; {os.cpu_count()} CPUs shared with other work, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    reference_n = min(args.events, 200_000)
    reference_s = _reference_copy(_agent_events(reference_n, start))
    _empty_audit_table()
    service_s = _ingest_service(token, args.events, args.batch, start)
    http_n = args.http_events
    http_s = _ingest_http(secret, http_n, args.batch, start + timedelta(days=1)) if http_n else 0.0
    total = args.events + http_n
    print("\ningest (events/s)")
    print(
        f"  reference: plain COPY, no validation/hashing   {reference_n / reference_s:>10,.0f}"
        f"   ({reference_n:,} rows)"
    )
    print(
        f"  service:   agent_events_ingest               {args.events / service_s:>10,.0f}"
        f"   ({args.events:,} events in {service_s:.1f}s)"
    )
    if http_n:
        print(
            f"  HTTP:      POST /api/v1/agent/audit          {http_n / http_s:>10,.0f}"
            f"   ({http_n:,} events in {http_s:.1f}s)"
        )

    total += batch_warmup(args)
    print(f"  (load average now {os.getloadavg()[0]:.1f})")
    print(f"\nverification (events/s, fresh process each; chain holds {total:,} events)")
    _verify_in_subprocess(
        launcher, args, total, reference=True
    )  # warm the table into the page cache
    small = max(total // 10, 1)
    for length in (small, total):
        fetch = _verify_in_subprocess(launcher, args, length, reference=True)
        walk = _verify_in_subprocess(launcher, args, length, reference=False)
        assert walk["ok"] and walk["rows"] == length, walk
        print(
            f"  {length:>9,} events: reference fetch {fetch['rows'] / fetch['seconds']:>9,.0f}"
            f"  | chain_walk {walk['rows'] / walk['seconds']:>9,.0f}"
            f" ({walk['seconds']:.1f}s)  | peak RSS fetch {fetch['rss_mb']:.0f} MB,"
            f" verify {walk['rss_mb']:.0f} MB"
        )
    launcher.close()


if __name__ == "__main__":
    main()
