"""Benchmark: every page an auditor or admin opens, with 1M audit events and 100k columns.

    .venv/bin/python bench/pages.py [--events 1000000] [--columns 100000]
                                    [--database warden_bench_pages] [--only LABEL]

Uses its own Warden database ``warden_bench_pages`` on the local PostgreSQL (created,
migrated and filled on first use, then reused: a second run only migrates and times; give
each work tree its own --database, since migrate applies that tree's migrations). Events go
in through the real append path (audit.services.events_append_count: hashed, chained,
COPY, counted in the same transaction) in batches of 5,000, spread over 30 days, 20
identities and four decisions.
Columns come from bench/catalog.py's filler. Each page is fetched through Django's test
client (view, queries, template) RUNS times; p50 and p95 are printed beside a reference
measured in the same run: the raw SQL of one page of the trail (the 50 newest events).
With --buffers each page's SELECTs are also run once under EXPLAIN (ANALYZE, BUFFERS) and
the shared blocks they touched are printed: unlike the times, independent of machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import catalog  # noqa: E402

DATABASE = "warden_bench_pages"
RUNS = 20
BATCH = 5_000
IDENTITIES = [f"user_{index:02d}" for index in range(20)]
DECISIONS = ("allow", "allow", "allow", "mask", "mask", "deny", "hold")
COLUMN_TAGS = {
    "public.customers.email": ["PII.Email"],
    "public.customers.phone": ["PII.Phone"],
}
# A retired datasource: 20 events among the oldest 100k, a tag and a datasource no recent
# event has (the trail filtered by either must not walk every newer event to find them).
LEGACY_EVERY, LEGACY_BEFORE = 5_000, 100_000
LEGACY_TAGS = {"legacy.people.ssn": ["PII.SSN"]}


def _events(start_index: int, count: int, first_day: datetime, days: int) -> list[dict[str, Any]]:
    span = days * 86_400
    events = []
    for index in range(start_index, start_index + count):
        decision = DECISIONS[index % len(DECISIONS)]
        read = index % 3 == 0
        details: dict[str, Any] = {
            "statement": f"SELECT email, phone FROM public.customers WHERE id = {index % 997}",
            "fingerprint": f"fp{index % 50:04d}",
            "kind": "select",
            "rule": "rule:7:mask-pii" if decision == "mask" else "",
            "rows": 1,
            "tables_read": ["public.customers"],
            "columns_read": sorted(COLUMN_TAGS) if read else ["public.customers.id"],
        }
        if read:
            details["column_tags"] = COLUMN_TAGS
            details["tags"] = ["PII.Email", "PII.Phone"]
            details["masked_columns"] = ["public.customers.email"] if decision == "mask" else []
        legacy = index < LEGACY_BEFORE and index % LEGACY_EVERY == 7
        if legacy:
            details.update(column_tags=LEGACY_TAGS, tags=["PII.SSN"], masked_columns=[])
        events.append(
            {
                "id": str(uuid.uuid4()),
                "actor": IDENTITIES[index % len(IDENTITIES)],
                "actor_kind": "user",
                "action": "query.executed",
                "occurred_at": first_day + timedelta(seconds=index * span // 1_000_000 % span),
                "datasource_name": "bench-legacy" if legacy else "bench-shop",
                "decision": decision,
                "details": details,
                "target_type": "statement",
                "target_repr": details["statement"][:80],
                "source_address": "10.1.2.3",
            }
        )
    return events


def fill_events(wanted: int) -> None:
    from django.db import transaction

    from audit.models import AuditEvent
    from audit.services import events_append_count

    stored = AuditEvent.objects.count()
    if stored >= wanted:
        return
    started = time.perf_counter()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=29)
    for offset in range(stored, wanted, BATCH):
        with transaction.atomic():
            events_append_count(entries=_events(offset, min(BATCH, wanted - offset), first_day, 30))
        if offset and offset % 100_000 == 0:
            print(f"  {offset:,} events …", flush=True)
    with psycopg.connect(
        f"host=127.0.0.1 user=postgres dbname={DATABASE}", autocommit=True
    ) as conn:
        conn.execute("ANALYZE")
    elapsed = time.perf_counter() - started
    print(f"appended {wanted - stored:,} events in {elapsed:.1f} s (hash, chain, COPY, counts)")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(call: Any) -> list[float]:
    call()  # warm the caches once, as a page a person reloads
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def blocks_touched(client: Any, url: str) -> int:
    """Shared buffers (hit + read) of the SELECTs one fetch of the page runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    blocks = 0
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if not query["sql"].startswith("SELECT"):
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query['sql']}")
            plan = cursor.fetchone()[0][0]["Plan"]
            blocks += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return blocks


def pages() -> dict[str, str]:
    from audit.models import AuditEvent
    from governance.models import Column

    middle = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    event = AuditEvent.objects.order_by("-sequence").only("id").first()
    column = Column.objects.order_by("id").only("id").first()
    # The catalog's own "next →" link from the middle of the catalog (keyset, ?after=<id>).
    middle_column = Column.objects.order_by("sort_key").only("id")[Column.objects.count() // 2]
    return {
        "home dashboard": "/",
        "audit trail, newest": "/audit/",
        "audit trail, deep page (keyset)": f"/audit/?before={(middle or 2) // 2}",
        "audit trail, actor=user_07": "/audit/?actor=user_07",
        "audit trail, decision=deny": "/audit/?decision=deny",
        "audit trail, tag=PII.Email": "/audit/?tag=PII.Email",
        "audit trail, tag=PII.SSN (old only)": "/audit/?tag=PII.SSN",
        "audit trail, tag=none (no match)": "/audit/?tag=PII.None",
        "audit trail, datasource=bench-legacy": "/audit/?datasource=bench-legacy",
        "audit trail, datasource=none": "/audit/?datasource=none",
        "audit trail, datasource+actor": "/audit/?datasource=bench-shop&actor=user_07",
        "audit trail, tag+decision": "/audit/?tag=PII.SSN&decision=allow",
        "audit trail, channel=mcp (none)": "/audit/?channel=mcp",
        "audit event detail": f"/audit/events/{event.pk}/" if event else "/audit/",
        "audit dashboard, 30 days": "/audit/dashboard/",
        "audit dashboard, actor=user_03": "/audit/dashboard/?actor=user_03",
        "audit dashboard, tag=PII.Email": "/audit/dashboard/?tag=PII.Email",
        "audit dashboard, channel=mcp (none)": "/audit/dashboard/?channel=mcp",
        "audit dashboard, datasource=legacy": "/audit/dashboard/?datasource=bench-legacy",
        "audit chain status": "/audit/chain/",
        "catalog page 1": "/catalog/",
        "catalog page 1000": "/catalog/?page=1000",
        "catalog deep page (keyset)": f"/catalog/?after={middle_column.pk}",
        "catalog last page": "/catalog/?last=1",
        "catalog search 'column_05'": "/catalog/?q=column_05",
        "column detail": f"/catalog/columns/{column.pk}/" if column else "/catalog/",
        "datasources": "/datasources/",
        "scans": "/scans/",
        "policies": "/policies/",
        "approvals inbox": "/approvals/",
        "API audit events": "/api/v1/audit/events/?limit=50",
        "API audit events, tag=PII.SSN": "/api/v1/audit/events/?tag=PII.SSN",
        "API audit events, channel=mcp (none)": "/api/v1/audit/events/?channel=mcp",
        "API columns": "/api/v1/columns/?limit=50&offset=90000",
        "API columns, keyset (next link)": f"/api/v1/columns/?limit=50&after={middle_column.pk}",
    }


def main() -> None:
    global DATABASE
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=100_000)
    # A seeded database is kept and reused; a name of its own keeps parallel work trees apart.
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--only", default="", help="time only pages whose label contains this")
    parser.add_argument("--buffers", action="store_true", help="also print blocks touched")
    args = parser.parse_args()
    DATABASE = args.database
    catalog.DATABASE = DATABASE
    catalog.ENVIRONMENT["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
    catalog.ENVIRONMENT["WARDEN_DATA_DIR"] = f"/tmp/{DATABASE}-data"
    catalog.prepare()
    catalog.fill(args.columns, database=DATABASE)
    fill_events(args.events)
    from django.contrib.auth.models import Group
    from django.test import Client

    from audit.models import AuditEvent
    from governance.models import Column, User

    admin, _ = User.objects.get_or_create(username="bench_pages_admin")
    admin.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(admin)
    print(
        f"\n== {AuditEvent.objects.count():,} events, {Column.objects.count():,} columns; "
        f"{RUNS} runs per page through the full Django view; load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'page':<36} {'p50 ms':>8} {'p95 ms':>8}" + (f" {'blocks':>8}" if args.buffers else ""))
    slowest = 0.0
    for label, url in pages().items():
        if args.only not in label:
            continue

        def get(url: str = url) -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        p50, p95 = percentiles(timed(get))
        slowest = max(slowest, p95)
        blocks = f" {blocks_touched(client, url):8d}" if args.buffers else ""
        print(f"{label:<36} {p50:8.1f} {p95:8.1f}{blocks}", flush=True)
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}") as raw:

        def reference() -> None:
            raw.execute("SELECT * FROM audit_auditevent ORDER BY sequence DESC LIMIT 50").fetchall()

        p50, p95 = percentiles(timed(reference))
    print(f"{'reference: raw SQL, 50 newest events':<36} {p50:8.1f} {p95:8.1f}")
    print(f"slowest page p95: {slowest:.1f} ms (target < 300 ms)")


if __name__ == "__main__":
    main()
